"""The child's whole life: a free loopback port, start, readiness, its log, and its end.

A child never outlives memprobe. Three layers make sure of it:

* the normal path: :class:`Child` is a context manager and :meth:`Child.stop` sends SIGTERM to
  the child's whole process group (gunicorn workers included), waits, then SIGKILLs it;
* the interpreter exiting without reaching a ``finally`` (SIGTERM to memprobe, an unhandled
  error in a thread): an ``atexit`` hook stops every child still registered;
* memprobe being killed outright (SIGKILL, OOM killer): on Linux each child asks the kernel to
  send it SIGTERM when its parent dies (``PR_SET_PDEATHSIG``).
"""
from __future__ import annotations

import atexit
import collections
import ctypes
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import IO, Mapping, Sequence
from urllib.parse import urlsplit

from memprobe.errors import TargetError

LOOPBACK = "127.0.0.1"
#: How long to wait for a child that may be exiting after requests to it failed (seconds).
EXIT_GRACE_S = 1.0

_PR_SET_PDEATHSIG = 1
try:  # resolved once here, because preexec_fn must not import or allocate much after fork
    _prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
except (OSError, AttributeError):  # pragma: no cover - exotic libc
    _prctl = None

_live: weakref.WeakSet[Child] = weakref.WeakSet()


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    """A server process memprobe started, with its log, its readiness check and its end.

    ``argv`` runs in a new session (its own process group) so that stopping it also stops any
    workers it forks. ``url`` is what readiness asks: the child is ready when an HTTP request to
    it gets any HTTP answer (a 404 is an answer; a refused connection is not).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str,
        url: str,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        log_path: str | Path | None = None,
        ready_timeout: float = 30.0,
    ) -> None:
        self.argv = list(argv)
        self.name = name
        self.url = url
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.ready_timeout = ready_timeout
        self.log_path = Path(log_path) if log_path else None
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_after_s: float | None = None
        self._log: IO[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        """The child's process id (it must have been started)."""
        if self.proc is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self.proc.pid

    def start(self) -> Child:
        """Start the child and wait until it answers HTTP; raise :class:`TargetError` if it
        exits first or does not answer within ``ready_timeout`` seconds."""
        if self.log_path is None:
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.name)  # a route or a path may be the name
            fd, name = tempfile.mkstemp(prefix=f"memprobe-{safe}-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except OSError as err:
            self._close_log()
            raise TargetError(f"{self.name}: cannot start {self.argv[0]!r}: {err.strerror}") from None
        _live.add(self)
        started = time.monotonic()
        try:
            self._wait_ready(started + self.ready_timeout)
        except BaseException:
            self.stop()
            raise
        self.ready_after_s = time.monotonic() - started
        return self

    def _wait_ready(self, deadline: float) -> None:
        parts = urlsplit(self.url)
        host, port = parts.hostname or LOOPBACK, parts.port or 80
        delay = 0.02
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise TargetError(
                    f"{self.name} exited with code {self.proc.returncode} before it answered HTTP",
                    self.log_tail(),
                )
            if answers_http(host, port, parts.path or "/"):
                return
            if time.monotonic() >= deadline:
                raise TargetError(
                    f"{self.name} did not answer HTTP on {self.url} within {self.ready_timeout:g} s",
                    self.log_tail(),
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def exited(self, grace: float = 0.0) -> bool:
        """Whether the child has exited, waiting up to ``grace`` s for one on its way out.

        A dying process closes its sockets (the hammer sees resets) a moment before the kernel
        lets its parent reap it; on a busy machine that moment is long enough to call a crash
        anything else. Callers pass a grace only when requests have just failed.
        """
        if self.proc is None:
            return False
        if grace > 0:
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        return self.proc.poll() is not None

    def alive(self) -> bool:
        """Whether the child is still running."""
        return self.proc is not None and not self.exited()

    def check_alive(self, grace: float = 0.0) -> None:
        """Raise :class:`TargetError` (with the log tail) if the child has died, waiting up to
        ``grace`` s for one that is exiting (see :meth:`exited`)."""
        if self.exited(grace):
            raise TargetError(
                f"{self.name} died (exit code {self.proc.returncode})",  # type: ignore[union-attr]
                self.log_tail(),
            )

    def log_tail(self, lines: int = 15) -> str:
        """The last ``lines`` lines the child wrote to stdout/stderr."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        if self._log is not None and not self._log.closed:
            self._log.flush()
        with open(self.log_path, "rb") as fh:
            tail = collections.deque(fh, maxlen=lines)
        return b"".join(tail).decode("utf-8", "replace")

    def stop(self, timeout: float = 5.0) -> int | None:
        """End the child's process group: SIGTERM, wait up to ``timeout`` s, then SIGKILL.

        Safe to call more than once and from an ``atexit`` hook. Returns the exit code.
        """
        with self._lock:
            proc = self.proc
            if proc is None:
                return None
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(proc.pid, signal.SIGKILL)
                    proc.wait()
            # Workers the child forked may outlive it (a master killed before its workers).
            _signal_group(proc.pid, signal.SIGKILL)
            _live.discard(self)
            self._close_log()
            return proc.returncode

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()

    def __enter__(self) -> Child:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        pid = self.proc.pid if self.proc else None
        return f"Child({self.name!r}, pid={pid}, url={self.url!r})"


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def answers_http(host: str, port: int, path: str = "/") -> bool:
    """Whether an HTTP GET of ``path`` gets any HTTP answer within 2 s."""
    conn = http.client.HTTPConnection(host, port, timeout=2.0)
    try:
        conn.request("GET", path.replace("{n}", "0"))
        conn.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


@atexit.register
def stop_all() -> None:
    """Stop every child still running (called at interpreter exit)."""
    for child in list(_live):
        child.stop(timeout=2.0)
