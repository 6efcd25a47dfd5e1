"""The child's whole life: a free loopback port, start, readiness, its log, and its end.

A child never outlives memprobe. Three layers make sure of it:

* the normal path: :class:`Child` is a context manager and :meth:`Child.stop` sends SIGTERM to
  the child's whole process group (gunicorn workers included), waits, then SIGKILLs it;
* the interpreter exiting without reaching a ``finally`` (SIGTERM to memprobe, an unhandled
  error in a thread): an ``atexit`` hook stops every child still registered;
* memprobe being killed outright (SIGKILL, OOM killer): on Linux each child asks the kernel to
  send it SIGTERM when its parent dies (``PR_SET_PDEATHSIG``), set by ``setpriv --pdeathsig``
  (util-linux) which then execs the real command, so no Python code runs between fork and exec.

Nothing it signals can be somebody else's: the leader is never reaped before its group has been
signalled for the last time (see :meth:`Child.stop`). Nothing it writes is left behind: a log it
created itself is removed at stop, its tail kept in memory.
"""
from __future__ import annotations

import atexit
import collections
import functools
import http.client
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
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

LOOPBACK = "127.0.0.1"
#: How long to wait for a child that may be exiting after requests to it failed (seconds).
EXIT_GRACE_S = 1.0
#: Lines of a removed log kept in memory for :meth:`Child.log_tail`.
KEPT_TAIL_LINES = 200
#: What servers print when their port is taken (Python's errno 98 text, uvicorn, gunicorn,
#: Django's runserver).
ADDRESS_IN_USE = re.compile(r"address already in use|errno 98|eaddrinuse|connection in use|"
                            r"port is already in use", re.I)

# Used only where setpriv lacks --pdeathsig: a fresh interpreter (no threads, so nothing can
# deadlock) sets the flag on itself, gives up if memprobe already died, and execs the command.
_TRAMPOLINE = ("import ctypes,os,sys\n"
               "ctypes.CDLL(None).prctl(1,15)\n"
               "os.getppid()==int(sys.argv[1]) or os._exit(1)\n"
               "os.execv(sys.argv[2],sys.argv[2:])")

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


@functools.cache
def _setpriv() -> str | None:
    """util-linux's setpriv if it knows ``--pdeathsig`` (2.33 and later)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    try:
        usage = subprocess.run([setpriv, "--help"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return setpriv if "--pdeathsig" in usage else None


def _pdeathsig_prefix() -> list[str]:
    """The argv prefix that makes the command die with memprobe: ``setpriv --pdeathsig TERM``
    (adds ~0.7 ms to a start here), else the Python trampoline (~15 ms), else nothing off Linux."""
    if not sys.platform.startswith("linux"):
        return []
    setpriv = _setpriv()
    if setpriv is not None:
        return [setpriv, "--pdeathsig", "TERM"]
    return [sys.executable, "-I", "-S", "-c", _TRAMPOLINE, str(os.getpid())]


def _resolve(program: str, env: Mapping[str, str], cwd: str | Path | None) -> str:
    """``program`` as a path the wrapper can exec; :class:`OSError` when there is none (the
    wrapper would only fail after starting, with an exit code instead of a reason)."""
    if os.sep in program:
        path = Path(cwd or ".", program) if not os.path.isabs(program) else Path(program)
        if not path.exists():
            raise FileNotFoundError(2, "No such file or directory")
        if not os.access(path, os.X_OK) or path.is_dir():
            raise PermissionError(13, "Permission denied")
        # Absolute but not resolved: a venv's python is a symlink, and resolving it would run
        # the base interpreter outside the venv.
        return os.path.abspath(path)
    found = shutil.which(program, path=env.get("PATH", os.defpath))
    if found is None:
        raise FileNotFoundError(2, "No such file or directory")
    return found


def _exit_code(info: os.waitid_result) -> int:
    """A ``waitid`` status as Popen's returncode: the exit code, or minus the signal."""
    return int(info.si_status) if info.si_code == os.CLD_EXITED else -int(info.si_status)


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
        self._pidfd: int | None = None
        self._held = False  # we saw the leader exit and have not reaped it: its pid is still ours
        self._lost = False  # someone reaped the leader behind our back (Popen.wait on .proc)
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
            program = _resolve(self.argv[0], env, self.cwd)
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
            # No preexec_fn: Python code between fork and exec can deadlock on a lock another
            # thread (rich's refresh) held at fork. start_new_session is done in C.
            self.proc = subprocess.Popen(
                [*_pdeathsig_prefix(), program, *self.argv[1:]],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=env,
                start_new_session=True,
            )
        except OSError as err:
            self._close_log()
            self._remove_log()
            raise TargetError(f"{self.name}: cannot start {self.argv[0]!r}: {err.strerror}") from None
        try:  # a pidfd lets exited(grace) sleep until the exit instead of polling
            self._pidfd = os.pidfd_open(self.proc.pid)
        except (AttributeError, OSError):
            self._pidfd = None
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
            self._wait_exit(delay)
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

    def _peek(self) -> bool:
        """Whether the leader has exited, *without reaping it* (``WNOWAIT``)."""
        proc = self.proc
        if proc is None:
            return False
        if proc.returncode is not None:
            return True
        try:
            info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            self._lost = True
            return True
        if info is None or info.si_pid == 0:
            return False
        # Popen then believes it reaped the child: its wait()/poll() return this code and will
        # never waitpid a pid that may no longer be ours. stop() reaps it.
        proc.returncode = _exit_code(info)
        self._held = True
        return True

    def _wait_exit(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` s (None: forever) for the leader to exit; whether it did."""
        if self._peek():
            return True
        if self._pidfd is not None:
            poller = select.poll()
            poller.register(self._pidfd, select.POLLIN)
            poller.poll(None if timeout is None else max(0, int(timeout * 1000)))
            return self._peek()
        deadline = None if timeout is None else time.monotonic() + timeout
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.01 if deadline is None else min(0.01, max(0.0, deadline - time.monotonic())))
            if self._peek():
                return True
        return self._peek()

    def exited(self, grace: float = 0.0) -> bool:
        """Whether the child has exited, waiting up to ``grace`` s for one on its way out.

        A dying process closes its sockets (the hammer sees resets) a moment before the kernel
        lets its parent reap it; on a busy machine that moment is long enough to call a crash
        anything else. Callers pass a grace only when requests have just failed.
        """
        if self.proc is None:
            return False
        return self._wait_exit(grace) if grace > 0 else self._peek()

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
                self._end(proc, timeout)
                self._stopped = True
                _live.discard(self)
                if self._pidfd is not None:
                    os.close(self._pidfd)
                    self._pidfd = None
                if self._own_log:
                    self._kept_tail = self.log_tail(KEPT_TAIL_LINES)
                self._close_log()
                self._remove_log()
            return proc.returncode

    def _end(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        # Why no signal here can reach a stranger: the group id is the leader's pid, and the
        # kernel does not reuse a pid while its process (a zombie included) has not been reaped,
        # nor while any process still has it as its group id. The leader is reaped only at the
        # end of this method, after the last killpg; until then every process in group ``pid``
        # is the leader or something it started. If the leader was reaped elsewhere (Popen.wait
        # on .proc, which this class never does once it has seen the exit), the pid may be
        # anyone's by now, so the group is left alone.
        if self._lost or (proc.returncode is not None and not self._held):
            return
        if not self._peek():
            _signal_group(proc.pid, signal.SIGTERM)
            if not self._wait_exit(timeout):
                _signal_group(proc.pid, signal.SIGKILL)
                self._wait_exit(None)
        if self._lost:
            return
        # Workers the child forked may outlive it (a master killed before its workers).
        _signal_group(proc.pid, signal.SIGKILL)
        try:
            os.waitpid(proc.pid, 0)
        except ChildProcessError:
            pass
        self._held = False

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


def start_server(argv_for: Callable[[int], Sequence[str]], *, name: str | Callable[[list[str]], str] = "",
                 path: str = "/", env: Mapping[str, str] | None = None, cwd: str | Path | None = None,
                 log_path: str | Path | None = None, ready_timeout: float = 30.0,
                 on_child: Callable[[Child], None] | None = None, retries: int = 3) -> Child:
    """Start the server ``argv_for(port)`` runs, on a free port of 127.0.0.1, and return it once
    ``path`` answers HTTP there (another port when the first was taken meanwhile: see
    :func:`start_on_free_port`). ``name``: how errors name it (a function of the argv, or by
    default the program's file name). ``on_child`` sees each attempt's :class:`Child` before it
    starts, so that whoever must stop it on an interrupt can hold it from the first moment.
    :class:`TargetError` when it exits first or does not answer within ``ready_timeout``."""

    def make(port: int) -> Child:
        argv = list(argv_for(port))
        label = name(argv) if callable(name) else name or Path(argv[0]).name
        child = Child(argv, name=label, url=f"http://{LOOPBACK}:{port}{path}", env=env, cwd=cwd,
                      log_path=log_path, ready_timeout=ready_timeout)
        if on_child is not None:
            on_child(child)
        return child

    return start_on_free_port(make, retries=retries)


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
