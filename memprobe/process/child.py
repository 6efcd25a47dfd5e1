"""The child's whole life: a free loopback port, start, readiness, its log, and its end.

A child never outlives memprobe. Three layers make sure of it:

* the normal path: :class:`Child` is a context manager and :meth:`Child.stop` sends SIGTERM to
  the child's whole process group (gunicorn workers included), waits, then SIGKILLs it;
* the interpreter exiting without reaching a ``finally`` (SIGTERM to memprobe, an unhandled
  error in a thread): an ``atexit`` hook stops every child still registered;
* memprobe being killed outright (SIGKILL, OOM killer): on Linux each child asks the kernel to
  send it SIGTERM when its parent dies (``PR_SET_PDEATHSIG``; see :mod:`memprobe.process.group`).

Nothing it signals can be somebody else's: the leader is never reaped before its group has been
signalled for the last time (see :func:`memprobe.process.group.stop_group`). Nothing it writes is left behind: a log it
created itself is removed at stop, its tail kept in memory.
"""
from __future__ import annotations

import atexit
import collections
import http.client
import os
import re
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import psutil

from memprobe.errors import TargetError
from memprobe.process.group import exited, resolve_program, spawn, stop_group, wait_exit

LOOPBACK = "127.0.0.1"
#: How long to wait for a child that may be exiting after requests to it failed (seconds).
EXIT_GRACE_S = 1.0
#: Lines of a removed log kept in memory for :meth:`Child.log_tail`.
KEPT_TAIL_LINES = 200
#: What servers print when their port is taken (Python's errno 98 text, uvicorn, gunicorn,
#: Django's runserver).
ADDRESS_IN_USE = re.compile(r"address already in use|errno 98|eaddrinuse|connection in use|"
                            r"port is already in use", re.I)

_live: weakref.WeakSet[Child] = weakref.WeakSet()


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it).

    Another process may take it before the child binds it: :func:`start_on_free_port` copes."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class PortTaken(TargetError):
    """The child could not bind its port: another process took it first."""


class Child:
    """A server process memprobe started, with its log, its readiness check and its end.

    ``argv`` runs in a new session (its own process group) so that stopping it also stops any
    workers it forks. ``url`` is what readiness asks: the child is ready when an HTTP request to
    it gets any HTTP answer (a 404 is an answer; a refused connection is not) and, with
    ``check_listener``, the port answering is one the child's own process tree listens on (not a
    server that took the port first).
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
        check_listener: bool = False,
    ) -> None:
        self.argv = list(argv)
        self.name = name
        self.url = url
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.ready_timeout = ready_timeout
        self.check_listener = check_listener
        self.log_path = Path(log_path) if log_path else None
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_after_s: float | None = None
        self._log: IO[bytes] | None = None
        self._own_log = False
        self._kept_tail: str | None = None
        self._stopped = False
        self._launched = 0.0
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        """The child's process id (it must have been started)."""
        if self.proc is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self.proc.pid

    @property
    def port(self) -> int:
        """The port of :attr:`url`."""
        return urlsplit(self.url).port or 80

    @property
    def returncode(self) -> int | None:
        """The exit code once the child has exited (minus the signal that killed it), else None."""
        return self.proc.returncode if self.proc is not None and self.exited() else None

    def start(self) -> Child:
        """Start the child and wait until it answers HTTP; raise :class:`TargetError` if it
        exits first or does not answer within ``ready_timeout`` seconds (:class:`PortTaken` when
        its log says its port was taken)."""
        return self.launch().wait_ready()

    def launch(self) -> Child:
        """Start the process without waiting for it to answer (:meth:`wait_ready` does), so that
        several can start at once. Call it from a thread that outlives the child: the kernel
        sends the death signal when the *thread* that started it ends."""
        if self.proc is not None:
            raise RuntimeError(f"{self.name} was already started")
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        try:
            resolve_program(self.argv[0], env, self.cwd)  # before the log: a typo leaves no file
        except OSError as err:
            raise TargetError(f"{self.name}: cannot start {self.argv[0]!r}: {err.strerror}") from None
        if self.log_path is None:
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.name)  # a route or a path may be the name
            fd, name = tempfile.mkstemp(prefix=f"memprobe-{safe}-", suffix=".log")
            os.close(fd)
            self.log_path, self._own_log = Path(name), True
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")
        try:
            self.proc = spawn(self.argv, env=env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                              stdout=self._log, stderr=subprocess.STDOUT)
        except OSError as err:
            self._close_log()
            self._remove_log()
            raise TargetError(f"{self.name}: cannot start {self.argv[0]!r}: {err.strerror}") from None
        _live.add(self)
        self._launched = time.monotonic()
        return self

    def wait_ready(self) -> Child:
        """Wait until the launched child answers HTTP (see :meth:`start`); any thread may wait.
        A child that fails is stopped."""
        if self.proc is None:
            raise RuntimeError(f"{self.name} has not been launched")
        try:
            self._wait_ready(self._launched + self.ready_timeout)
        except BaseException:
            self.stop()
            raise
        self.ready_after_s = time.monotonic() - self._launched
        return self

    def _wait_ready(self, deadline: float) -> None:
        parts = urlsplit(self.url)
        host, port = parts.hostname or LOOPBACK, parts.port or 80
        # Short polls: a start-up is ~0.1-0.3 s here, and a refused connect costs ~50 us; a
        # longer back-off added up to its own length to every start.
        delay = 0.01
        impostor = False
        while True:
            if self.exited():
                tail = self.log_tail()
                kind = PortTaken if ADDRESS_IN_USE.search(tail) else TargetError
                raise kind(f"{self.name} exited with code {self.returncode} before it answered HTTP",
                           tail)
            if answers_http(host, port, parts.path or "/"):
                if not self.check_listener or self._listens_on(port):
                    return
                impostor = True
                if ADDRESS_IN_USE.search(self.log_tail()):  # a server that retries the bind (gunicorn)
                    raise PortTaken(f"{self.name}: port {port} is taken by another process",
                                    self.log_tail())
            if time.monotonic() >= deadline:
                why = f" (port {port} answers, but for another process)" if impostor else ""
                raise TargetError(
                    f"{self.name} did not answer HTTP on {self.url} within {self.ready_timeout:g} s{why}",
                    self.log_tail(),
                )
            self.exited(delay)
            delay = min(delay * 1.5, 0.05)

    def _listens_on(self, port: int) -> bool:
        """Whether the child or one of its descendants listens on TCP ``port``."""
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return False
        for proc in procs:
            try:
                conns = proc.net_connections(kind="tcp")
            except psutil.NoSuchProcess:
                continue
            except psutil.AccessDenied:
                return True  # cannot tell: trust the answer, as without the check
            if any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in conns):
                return True
        return False

    def exited(self, grace: float = 0.0) -> bool:
        """Whether the child has exited, waiting up to ``grace`` s for one on its way out.

        A dying process closes its sockets (the hammer sees resets) a moment before the kernel
        lets its parent reap it; on a busy machine that moment is long enough to call a crash
        anything else. Callers pass a grace only when requests have just failed.
        """
        if self.proc is None:
            return False
        return wait_exit(self.proc, grace) if grace > 0 else exited(self.proc)

    def alive(self) -> bool:
        """Whether the child is still running."""
        return self.proc is not None and not self.exited()

    def check_alive(self, grace: float = 0.0) -> None:
        """Raise :class:`TargetError` (with the log tail) if the child has died, waiting up to
        ``grace`` s for one that is exiting (see :meth:`exited`)."""
        if self.exited(grace):
            raise TargetError(f"{self.name} died (exit code {self.returncode})", self.log_tail())

    def log_tail(self, lines: int = 15) -> str:
        """The last ``lines`` lines the child wrote to stdout/stderr (after :meth:`stop` removed
        a log of its own, the last :data:`KEPT_TAIL_LINES` of them are still known)."""
        if self._kept_tail is not None:
            return "".join(self._kept_tail.splitlines(keepends=True)[-lines:])
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
            if not self._stopped:
                stop_group(proc, timeout)
                self._stopped = True
                _live.discard(self)
                if self._own_log:
                    self._kept_tail = self.log_tail(KEPT_TAIL_LINES)
                self._close_log()
                self._remove_log()
            return proc.returncode

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()

    def _remove_log(self) -> None:
        if self._own_log and self.log_path is not None:
            try:
                self.log_path.unlink()
            except FileNotFoundError:
                pass

    def __enter__(self) -> Child:
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        pid = self.proc.pid if self.proc else None
        return f"Child({self.name!r}, pid={pid}, url={self.url!r})"


def start_on_free_port(make: Callable[[int], Child], *, retries: int = 3,
                       check_listener: bool = True) -> Child:
    """``make(port).start()`` on a free port, again on another one (up to ``retries`` more
    times) when another process took the port first (:class:`PortTaken`).

    ``free_port`` only knows the port was free when it looked; under ``pytest -n 2`` another
    worker's child can bind it before ours. ``check_listener`` (default) also refuses to call
    ready a child whose port is answered by someone else.
    """
    for attempt in range(retries + 1):
        child = make(free_port())
        child.check_listener = check_listener
        try:
            return child.start()
        except PortTaken:
            if attempt == retries:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


#: How a server is named in errors: a name, or a function of its argv ("": the program's file name).
Name = str | Callable[[list[str]], str]
#: Where a server's log goes: a path, a function of its port, or None for a temporary file.
LogPath = str | Path | Callable[[int], str | Path] | None


def server_child(argv_for: Callable[[int], Sequence[str]], port: int, *, name: Name = "", path: str = "/",
                 env: Mapping[str, str] | None = None, cwd: str | Path | None = None, log_path: LogPath = None,
                 ready_timeout: float = 30.0) -> Child:
    """The :class:`Child` that runs the server ``argv_for(port)`` on ``port`` of 127.0.0.1,
    ready when ``path`` answers there and the answer comes from its own process tree; not
    started. :func:`start_server` starts one; this is for callers that launch several at once
    and wait for them after (:meth:`Child.launch`, then :meth:`Child.wait_ready`)."""
    argv = list(argv_for(port))
    label = name(argv) if callable(name) else name or Path(argv[0]).name
    return Child(argv, name=label, url=f"http://{LOOPBACK}:{port}{path}", env=env, cwd=cwd,
                 log_path=log_path(port) if callable(log_path) else log_path, ready_timeout=ready_timeout,
                 check_listener=True)


def start_server(argv_for: Callable[[int], Sequence[str]], *, name: Name = "", path: str = "/",
                 env: Mapping[str, str] | None = None, cwd: str | Path | None = None, log_path: LogPath = None,
                 ready_timeout: float = 30.0, on_child: Callable[[Child], None] | None = None,
                 retries: int = 3) -> Child:
    """Start the server ``argv_for(port)`` runs, on a free port of 127.0.0.1, and return it once
    ``path`` answers HTTP there (another port when the first was taken meanwhile: see
    :func:`start_on_free_port`). ``name``: how errors name it (a function of the argv, or by
    default the program's file name); ``log_path`` may depend on the port. ``on_child`` sees
    each attempt's :class:`Child` before it starts, so that whoever must stop it on an
    interrupt can hold it from the first moment. :class:`TargetError` when it exits first or
    does not answer within ``ready_timeout``."""

    def make(port: int) -> Child:
        child = server_child(argv_for, port, name=name, path=path, env=env, cwd=cwd, log_path=log_path,
                             ready_timeout=ready_timeout)
        if on_child is not None:
            on_child(child)
        return child

    return start_on_free_port(make, retries=retries)


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
