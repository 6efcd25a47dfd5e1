"""A process that dies with memprobe, in a process group of its own, and that group's end.

:func:`spawn` starts a command so that it never outlives memprobe: on Linux the kernel sends it
SIGTERM when memprobe dies (``PR_SET_PDEATHSIG``, set by ``setpriv --pdeathsig`` which then
execs the command, so no Python code runs between fork and exec). :func:`stop_group` ends the
whole group (workers the command forked included) and never signals a group whose leader has
already been reaped, since that pid may be anyone's by then. :class:`~memprobe.process.child.Child`
is built on both; use them directly when a process needs pipes of its own rather than a log.
"""
from __future__ import annotations

import functools
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# Used only where setpriv lacks --pdeathsig: a fresh interpreter (no threads, so nothing can
# deadlock) sets the flag on itself, gives up if memprobe already died, and execs the command.
_TRAMPOLINE = ("import ctypes,os,sys\n"
               "ctypes.CDLL(None).prctl(1,15)\n"
               "os.getppid()==int(sys.argv[1]) or os._exit(1)\n"
               "os.execv(sys.argv[2],sys.argv[2:])")

# Held from "is the leader still ours" to its reaping, so that two stops of one process (a
# close() racing an atexit hook) cannot signal a group the other has just released.
_reap_lock = threading.Lock()


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


def pdeathsig_prefix() -> list[str]:
    """The argv prefix that makes a command die with memprobe: ``setpriv --pdeathsig TERM``
    (adds ~0.7 ms to a start here), else a Python trampoline (~15 ms), else nothing off Linux.

    The command after it must be a path (see :func:`resolve_program`): the wrapper execs it."""
    if not sys.platform.startswith("linux"):
        return []
    setpriv = _setpriv()
    if setpriv is not None:
        return [setpriv, "--pdeathsig", "TERM"]
    return [sys.executable, "-I", "-S", "-c", _TRAMPOLINE, str(os.getpid())]


def resolve_program(program: str, env: Mapping[str, str], cwd: str | Path | None = None) -> str:
    """``program`` as a path the wrapper of :func:`pdeathsig_prefix` can exec (looked up on
    ``env``'s PATH); :class:`OSError` when there is none, since the wrapper would only fail
    after starting, with an exit code instead of a reason."""
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


def spawn(argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | Path | None = None,
          own_group: bool = True, **popen: Any) -> subprocess.Popen[bytes]:
    """Start ``argv`` so that it dies with memprobe, in a new session (its own process group,
    for :func:`stop_group`) unless ``own_group`` is False (a helper that its parent's group
    stop must reach). ``popen``: Popen's other arguments (``stdin``, ``stdout``, ...).
    :class:`OSError` when the program cannot be found or run.

    Stop it with :func:`stop_group` and wait for it with :func:`wait_exit`, never with
    ``proc.wait()`` meanwhile: a leader reaped elsewhere leaves its group unsignalled."""
    env = dict(os.environ if env is None else env)
    program = resolve_program(argv[0], env, cwd)
    # No preexec_fn: Python code between fork and exec can deadlock on a lock another thread
    # (rich's refresh) held at fork. start_new_session is done in C.
    return subprocess.Popen([*pdeathsig_prefix(), program, *argv[1:]], env=env, cwd=cwd,
                            start_new_session=own_group, **popen)


def _exit_code(info: os.waitid_result) -> int:
    """A ``waitid`` status as Popen's returncode: the exit code, or minus the signal."""
    return int(info.si_status) if info.si_code == os.CLD_EXITED else -int(info.si_status)


def _leader(proc: subprocess.Popen[Any]) -> bool | None:
    """Whether ``proc`` has exited, *without reaping it* (``WNOWAIT``): True, and its pid (so
    its group id) is still ours; False: it runs; None: it was reaped elsewhere."""
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return None
    if info is None or info.si_pid == 0:
        return False
    if proc.returncode is None:
        # Popen then believes it reaped the child: its wait()/poll() return this code and will
        # never waitpid a pid that may no longer be ours. stop_group() reaps it.
        proc.returncode = _exit_code(info)
    return True


def exited(proc: subprocess.Popen[Any]) -> bool:
    """Whether ``proc`` has exited; its ``returncode`` is then set, but it is not reaped (its
    group stays safe to signal until :func:`stop_group`)."""
    return _leader(proc) is not False


def wait_exit(proc: subprocess.Popen[Any], timeout: float | None) -> bool:
    """Wait up to ``timeout`` s (None: for ever) for ``proc`` to exit, without reaping it;
    whether it did."""
    if exited(proc):
        return True
    try:  # a pidfd sleeps until the exit instead of polling
        pidfd: int | None = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        pidfd = None
    if pidfd is not None:
        try:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            poller.poll(None if timeout is None else max(0, int(timeout * 1000)))
        finally:
            os.close(pidfd)
        return exited(proc)
    deadline = None if timeout is None else time.monotonic() + timeout
    while deadline is None or time.monotonic() < deadline:
        time.sleep(0.01 if deadline is None else min(0.01, max(0.0, deadline - time.monotonic())))
        if exited(proc):
            return True
    return exited(proc)


def stop_group(proc: subprocess.Popen[Any], timeout: float = 5.0) -> int | None:
    """End ``proc``'s process group: SIGTERM, wait up to ``timeout`` s for the leader, SIGKILL;
    then SIGKILL whatever is left of the group (workers that outlived their master) and reap
    the leader. Returns its exit code (None if it was reaped elsewhere). Safe to call again.

    Why no signal can reach a stranger: the group id is the leader's pid, and the kernel does
    not reuse a pid while its process (a zombie included) has not been reaped, nor while any
    process still has it as its group id. The leader is reaped only after the last signal;
    until then every process in the group is the leader or something it started. A leader
    reaped elsewhere (``proc.wait()``) leaves its pid free for anyone, so its group is left alone.
    """
    state = _leader(proc)
    if state is None:
        return proc.returncode
    if state is False:
        _signal_group(proc.pid, signal.SIGTERM)
        if not wait_exit(proc, timeout):
            _signal_group(proc.pid, signal.SIGKILL)
            wait_exit(proc, None)
    with _reap_lock:
        if _leader(proc) is None:
            return proc.returncode
        _signal_group(proc.pid, signal.SIGKILL)
        try:
            os.waitpid(proc.pid, 0)
        except ChildProcessError:
            pass
    return proc.returncode


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
