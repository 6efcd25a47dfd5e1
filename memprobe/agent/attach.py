"""Run Python source inside a CPython process that is already running, by pid.

On Python 3.14+ through :func:`sys.remote_exec`; below it the way pyrasite and ``memray attach``
do, through a debugger that stops the process and calls, on its stopped main thread,
``PyGILState_Ensure``, ``PyRun_SimpleString`` of a one-line bootstrap that execs a file, and
``PyGILState_Release``. gdb and lldb are both supported; which one works is decided by running
the real injection in a throwaway Python first (:func:`check_debugger`): on some kernels gdb
attaches but every function call it makes fails ("Couldn't write extended state status"), and a
failed call leaves the target wedged (measured: the GIL taken, never released), so a debugger is
never *tried* on the user's process.

The code is passed through a private directory (0700) that is removed afterwards; a bootstrap
file runs it and writes how it went next to it, so an exception inside the target comes back
as one line here. The bootstrap makes memprobe importable in the target by location (the
package memprobe runs from), without putting its source tree on the target's ``sys.path``; the
directories of memprobe's own dependencies go at the end of it (the target's packages win).

What can be refused before anything touches the target (:func:`inspect_target`): a pid that
does not exist (exit 3), a process that is not Python, another Python version than memprobe's,
ptrace forbidden by Yama or by another owner, no debugger (exit 4, with what to install or change).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from memprobe.errors import AgentError, EnvironmentProblem, TargetError
from memprobe.process.child import pid_alive

#: ``auto`` picks the first that works: sys.remote_exec where it exists, then gdb, then lldb.
METHODS = ("auto", "sys.remote_exec", "gdb", "lldb")
DEBUGGERS = ("gdb", "lldb")
INSTALL = "apt-get install -y gdb lldb"
#: Where memprobe's package lives: the target imports it from here.
PACKAGE_DIR = str(Path(__file__).resolve().parents[1])
#: What the debugger gets beyond the code's own timeout before it is killed.
_KILL_GRACE_S = 15.0
_SAFE_PATH = re.compile(r"[\w./+-]+")

# Runs inside the target, compiled from a file: no name of it is left in the target's __main__.
_BOOT = '''\
def _memprobe_boot(code_path, result_path, want, package_dir, dependencies):
    import importlib.util, os, sys, traceback
    try:
        if tuple(sys.version_info[:2]) != want:
            raise RuntimeError("the target runs Python %d.%d, memprobe %d.%d"
                               % (sys.version_info[:2] + want))
        known = sys.modules.get("memprobe")
        if known is None:
            spec = importlib.util.spec_from_file_location(
                "memprobe", os.path.join(package_dir, "__init__.py"),
                submodule_search_locations=[package_dir])
            module = importlib.util.module_from_spec(spec)
            sys.modules["memprobe"] = module
            spec.loader.exec_module(module)
        elif os.path.dirname(getattr(known, "__file__", "") or "") != package_dir:
            raise RuntimeError("the target already imported another memprobe, from %s"
                               % getattr(known, "__file__", "?"))
        for path in dependencies:  # last: the target's own packages win
            if path not in sys.path:
                sys.path.append(path)
        with open(code_path, "rb") as f:
            code = compile(f.read(), "<memprobe attach>", "exec")
        exec(code, {"__name__": "__memprobe_attach__", "__builtins__": __builtins__})
        outcome = "ok\\n"
    except BaseException as err:
        last = traceback.format_exception_only(type(err), err)[-1].strip()
        outcome = "error\\n" + last + "\\n" + traceback.format_exc()
    with open(result_path + ".part", "w") as f:
        f.write(outcome)
    os.replace(result_path + ".part", result_path)

'''


@dataclass(frozen=True)
class TargetProcess:
    """What /proc says about a pid before anything attaches to it."""

    pid: int
    exe: str
    uid: int
    #: major, minor of its Python
    python: tuple[int, int]


@dataclass(frozen=True)
class DebuggerCheck:
    """Whether a debugger can run code in a throwaway Python here, and what that cost."""

    name: str
    ok: bool
    seconds: float
    reason: str = ""


@dataclass
class Injection:
    """How one :func:`run_in` went."""

    pid: int
    method: str
    #: wall time of the injection itself (debugger attach to detach, or until the code ran)
    seconds: float
    #: why the method was chosen: the checks of the debuggers tried, in order
    checks: list[DebuggerCheck] = field(default_factory=list)


def inspect_target(pid: int) -> TargetProcess:
    """The pid's executable, owner and Python version; TargetError when it does not exist,
    EnvironmentProblem when it is not Python or not this memprobe's Python."""
    proc = Path(f"/proc/{pid}")
    try:
        maps = (proc / "maps").read_text(encoding="utf-8", errors="replace")
        exe = os.readlink(proc / "exe")
        uid = int(next(line.split()[1] for line in (proc / "status").read_text().splitlines()
                       if line.startswith("Uid:")))
    except FileNotFoundError:
        raise TargetError(f"no process has pid {pid}") from None
    except PermissionError:
        raise EnvironmentProblem(f"cannot read /proc/{pid}: it belongs to another user; "
                                 "run memprobe as that user or as root") from None
    version = _python_version(maps, exe)
    if version is None:
        name = Path(exe).name or "?"
        raise EnvironmentProblem(f"pid {pid} ({name}) is not a Python process: no libpython "
                                 f"and no python executable in /proc/{pid}/maps")
    mine = (sys.version_info[0], sys.version_info[1])
    if version != mine:
        raise EnvironmentProblem(
            f"pid {pid} runs Python {version[0]}.{version[1]} and memprobe runs on "
            f"{mine[0]}.{mine[1]}: run memprobe with Python {version[0]}.{version[1]} "
            f"(python{version[0]}.{version[1]} -m pip install memprobe)")
    return TargetProcess(pid, exe, uid, version)


def _python_version(maps: str, exe: str) -> tuple[int, int] | None:
    found = re.search(r"/libpython(\d)\.(\d+)", maps)
    if found is None:
        found = re.fullmatch(r"python(\d)\.(\d+)", Path(exe).name)
    if found is not None:
        return int(found[1]), int(found[2])
    if re.fullmatch(r"python\d?", Path(exe).name):  # a python3 that is not a link: ask it
        try:
            out = subprocess.run([exe, "-S", "-c", "import sys; print(*sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30, check=True).stdout
            major, minor = out.split()
            return int(major), int(minor)
        except (OSError, subprocess.SubprocessError, ValueError):
            return None
    return None


def check_ptrace(target: TargetProcess) -> None:
    """EnvironmentProblem, with what to change, when this process may not trace ``target``."""
    root = os.geteuid() == 0
    if not root and target.uid != os.getuid():
        raise EnvironmentProblem(f"pid {target.pid} belongs to uid {target.uid}: run memprobe "
                                 "as that user or as root")
    try:
        scope = int(Path("/proc/sys/kernel/yama/ptrace_scope").read_text())
    except (OSError, ValueError):  # no Yama: classic ptrace rules, same user is enough
        scope = 0
    if scope == 1 and not root:
        raise EnvironmentProblem("ptrace is limited to child processes (kernel.yama.ptrace_scope"
                                 "=1): sudo sysctl kernel.yama.ptrace_scope=0, or run memprobe as root")
    if scope == 2 and not root:
        raise EnvironmentProblem("ptrace needs CAP_SYS_PTRACE (kernel.yama.ptrace_scope=2): "
                                 "run memprobe as root")
    if scope >= 3:
        raise EnvironmentProblem("ptrace is disabled on this machine (kernel.yama.ptrace_scope=3,"
                                 " only a reboot resets it): memprobe cannot attach here")
    tracer = _tracer(target.pid)
    if tracer:
        raise EnvironmentProblem(f"pid {target.pid} is already traced by pid {tracer} "
                                 "(a debugger or strace): detach it first")


def _tracer(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("TracerPid:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def run_in(pid: int, code: str, *, timeout: float = 60.0, method: str = "auto") -> Injection:
    """Run ``code`` (Python source) inside the live process ``pid`` and wait until it ran.

    The code runs once, on the target's main thread holding the GIL, with memprobe importable;
    it must return quickly (start a thread for anything long). An exception it raises comes
    back as AgentError's one line. The target is left running, nothing stays attached to it,
    and the files that carried the code are removed.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    target = inspect_target(pid)
    chosen, checks = choose_method(method, target)
    t0 = time.monotonic()
    _inject(chosen, target, code, timeout)
    return Injection(pid, chosen, time.monotonic() - t0, checks)


def choose_method(method: str, target: TargetProcess) -> tuple[str, list[DebuggerCheck]]:
    """The method to use for ``target``, and the debugger checks that decided it."""
    remote = hasattr(sys, "remote_exec")
    if method == "sys.remote_exec" or (method == "auto" and remote):
        if not remote:
            raise EnvironmentProblem("sys.remote_exec needs Python 3.14 or newer; memprobe runs on "
                                     f"{sys.version_info[0]}.{sys.version_info[1]}")
        return "sys.remote_exec", []
    check_ptrace(target)
    wanted = DEBUGGERS if method == "auto" else (method,)
    present = [name for name in wanted if shutil.which(name)]
    if not present:
        what = " or ".join(wanted)
        raise EnvironmentProblem(f"attaching to a running Python needs {what} on PATH: {INSTALL}")
    checks = []
    for name in present:
        check = check_debugger(name)
        checks.append(check)
        if check.ok:
            return name, checks
    why = "; ".join(f"{c.name}: {c.reason}" for c in checks)
    raise EnvironmentProblem(f"no debugger here can run code in a Python process ({why})"
                             + ("" if len(present) == len(DEBUGGERS) or method != "auto"
                                else f": {INSTALL}"))


_CHECKS: dict[str, DebuggerCheck] = {}


def check_debugger(name: str) -> DebuggerCheck:
    """Whether ``name`` can run code in a Python process here, found by doing it in a throwaway
    Python (once per memprobe process): a failed call can leave a process wedged, so the
    user's own process is never where a debugger is tried."""
    if name in _CHECKS:
        return _CHECKS[name]
    t0 = time.monotonic()
    scratch = subprocess.Popen(
        [sys.executable, "-S", "-c", "import time; print('ready', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        assert scratch.stdout is not None
        scratch.stdout.readline()  # the interpreter is initialised: the GIL calls are safe
        pid = scratch.pid
        version = (sys.version_info[0], sys.version_info[1])
        _inject(name, TargetProcess(pid, sys.executable, os.getuid(), version), "pass", 60.0)
        check = DebuggerCheck(name, True, time.monotonic() - t0)
    except (TargetError, EnvironmentProblem) as err:
        check = DebuggerCheck(name, False, time.monotonic() - t0, str(err))
    finally:
        scratch.kill()
        scratch.wait()
        if scratch.stdout is not None:
            scratch.stdout.close()
    _CHECKS[name] = check
    return check


def _inject(method: str, target: TargetProcess, code: str, timeout: float) -> None:
    folder = tempfile.mkdtemp(prefix="memprobe-attach-")  # 0700
    try:
        code_path = os.path.join(folder, "code.py")
        boot_path = os.path.join(folder, "boot.py")
        result_path = os.path.join(folder, "result")
        if not _SAFE_PATH.fullmatch(boot_path):
            raise EnvironmentProblem(f"the temporary directory {folder} has characters a debugger "
                                     "command cannot carry: set TMPDIR to a plain path")
        Path(code_path).write_text(code, encoding="utf-8")
        call = (f"\n_memprobe_boot({code_path!r}, {result_path!r}, {target.python!r}, "
                f"{PACKAGE_DIR!r}, {dependency_dirs()!r})\n")
        Path(boot_path).write_text(_BOOT + call, encoding="utf-8")
        if os.geteuid() == 0 and target.uid != 0:  # root attaching to a user's process
            for path in (folder, code_path, boot_path):
                os.chown(path, target.uid, -1)
        if method == "sys.remote_exec":
            sys.remote_exec(target.pid, boot_path)  # type: ignore[attr-defined,unused-ignore]
            if not _wait_for(result_path, target.pid, timeout):
                raise TargetError(f"pid {target.pid} did not run the injected code within "
                                  f"{timeout:g} s (its main thread never reached Python code)")
        else:
            _debugger(method, target.pid, boot_path, timeout)
        try:
            outcome = Path(result_path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TargetError(f"pid {target.pid} did not run the bootstrap (it could not read "
                              f"{boot_path}?)") from None
        status, _, detail = outcome.partition("\n")
        if status != "ok":
            raise AgentError(f"the code injected into pid {target.pid} raised "
                             f"{detail.splitlines()[0] if detail else '?'}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def dependency_dirs() -> list[str]:
    """Where memprobe's own dependencies (psutil, guppy3...) are installed: put at the end of the
    target's ``sys.path``, so that a target whose environment lacks them can still import
    them, and one that has them uses its own."""
    return [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))
            and os.path.isdir(p)]


def _wait_for(path: str, pid: int, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if os.path.exists(path):
            return True
        if not pid_alive(pid):
            raise TargetError(f"pid {pid} exited before the injected code ran")
        time.sleep(0.02)
    return False


def _bootstrap_line(boot_path: str) -> str:
    """The one line of Python the debugger passes to PyRun_SimpleString (its own dict, so the
    target's ``__main__`` gains no name)."""
    return (f"exec(compile(open('{boot_path}','rb').read(),'{boot_path}','exec'),"
            "{'__name__':'__memprobe_boot__'})")


def debugger_argv(name: str, pid: int, boot_path: str, timeout: float) -> list[str]:
    """The debugger's command line: attach, Ensure/Run/Release, print the result, detach."""
    line = _bootstrap_line(boot_path)
    if name == "lldb":
        # One expression, so one inferior call: either all three run or none does. lldb
        # interrupts and unwinds it after -t microseconds.
        expr = ("int $g = ((int(*)(void))PyGILState_Ensure)(); "
                f"int $r = ((int(*)(const char*))PyRun_SimpleString)(\"{line}\"); "
                "((void(*)(int))PyGILState_Release)($g); $r")
        return ["lldb", "--batch", "--no-lldbinit", "-p", str(pid),
                "-o", f"expr -t {int(timeout * 1e6)} -- {expr}", "-o", "process detach"]
    # gdb: separate calls, each guarded, so the GIL is released whenever it was taken and the
    # code never runs without it.
    return ["gdb", "-batch", "-nx", "-nw", "-p", str(pid),
            "-ex", "set $g = -1", "-ex", "set $r = -2",
            "-ex", "set $g = (int)PyGILState_Ensure()",
            "-ex", f"set $r = $g >= 0 ? (int)PyRun_SimpleString(\"{line}\") : -3",
            "-ex", "set $ignored = $g >= 0 ? ((int(*)(int))PyGILState_Release)($g) : 0",
            "-ex", 'printf "MEMPROBE-RC %d\\n", $r', "-ex", "detach"]


def _debugger(name: str, pid: int, boot_path: str, timeout: float) -> None:
    argv = debugger_argv(name, pid, boot_path, timeout)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout + _KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: the debugger and what it spawned
        proc.communicate()
        raise TargetError(f"{name} did not finish within {timeout + _KILL_GRACE_S:g} s and was "
                          f"killed; pid {pid} was detached") from None
    finally:
        # lldb sometimes leaves the process stopped when it exits (memray does the same).
        try:
            os.kill(pid, signal.SIGCONT)
        except OSError:
            pass
    rc = _result_code(name, output)
    if rc == 0:
        return
    if rc is not None and rc != -3:
        return  # the bootstrap ran and raised before writing its result: the caller says so
    raise _debugger_failure(name, pid, output)


def _result_code(name: str, output: str) -> int | None:
    pattern = r"MEMPROBE-RC (-?\d+)" if name == "gdb" else r"^\(int\) \$\d+ = (-?\d+)"
    found = re.search(pattern, output, re.MULTILINE)
    return int(found[1]) if found else None


def _debugger_failure(name: str, pid: int, output: str) -> Exception:
    """The one line that says why the debugger could not run the code."""
    gone = not pid_alive(pid)
    if "No such process" in output or (gone and "attach failed" in output):
        return TargetError(f"no process has pid {pid}")
    if "Operation not permitted" in output:
        return EnvironmentProblem(f"{name} may not trace pid {pid} (Operation not permitted): "
                                  "check kernel.yama.ptrace_scope, the process's owner, or run as root")
    if re.search(r"undeclared identifier 'PyGILState_Ensure'|No symbol \"PyGILState_Ensure\"",
                 output):
        return EnvironmentProblem(f"{name} finds no Python symbols in pid {pid} "
                                  "(a Python without exported symbols?)")
    errors = [ln.strip() for ln in output.splitlines()
              if re.search(r"error|Couldn't|cannot|failed", ln, re.IGNORECASE)
              and "auto-load" not in ln and "safe-path" not in ln]
    if errors:
        return TargetError(f"{name} could not run code in pid {pid}: {errors[0]}")
    if gone:
        return TargetError(f"pid {pid} exited while {name} was attached")
    detail = (output.strip().splitlines() or ["no output"])[-1]
    return TargetError(f"{name} could not run code in pid {pid}: {detail}")
