"""The exceptions memprobe expects, each carrying the exit code the CLI returns for it.

The CLI prints ``memprobe: <message>`` on one line to stderr for any of these and exits with
``exit_code``; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Documented process exit codes (README, "Exit codes")."""

    OK = 0
    #: The thing measured failed its bar: a leak was found, a limit was exceeded, a check failed.
    FAILED = 1
    USAGE = 2
    #: The target could not be started, never became ready, or died.
    TARGET = 3
    #: A missing optional dependency, a permission, a platform that lacks something.
    ENVIRONMENT = 4
    #: No leak found, but a route's readings could not have seen the leaks looked for (too
    #: few requests for the time given, too much noise): not "clean". A leak still exits 1.
    INCONCLUSIVE = 5
    #: No leak found, but a route answered only errors (401, 404, 5xx...): the code behind it was
    #: not run, so nothing the user meant was measured. Above INCONCLUSIVE; a leak still exits 1.
    ERRORS = 6


class MemprobeError(Exception):
    """Base of every expected failure; ``str(err)`` is the one line shown to the user.

    Its code is 3, not 1: a failure to measure must never read as a leak to a CI gate. Only a
    measurement that failed its bar exits 1, and no exception says that.
    """

    exit_code: ExitCode = ExitCode.TARGET
    #: the last lines the target wrote, when there was a process whose log memprobe kept
    log_tail: str = ""


class UsageError(MemprobeError):
    """The command line or an argument is wrong."""

    exit_code = ExitCode.USAGE


class TargetSpecError(UsageError):
    """A target spec that is not well formed (``app.py:create_app('x'``): the command line is
    wrong, whichever command took it."""


class TargetError(MemprobeError):
    """The target could not be imported, started, reached, or it died.

    ``log_tail`` holds the last lines the child wrote, when there was a child.
    """

    exit_code = ExitCode.TARGET

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


class AgentError(TargetError):
    """memprobe's agent inside the measured process failed on a request: the target could not
    be measured (exit 3, like a target that died; never the leak code)."""


class AgentLost(TargetError):
    """The agent in process ``pid`` (None when it never said hello) sent nothing at all, not
    even its heartbeat, for ``silent_s`` seconds while the parent waited for an answer: the
    process is stopped, or wedged in C code that holds the GIL. It may still be alive; the
    client that lost it answers nothing more."""

    def __init__(self, message: str, pid: int | None, silent_s: float, log_tail: str = "") -> None:
        super().__init__(message, log_tail)
        self.pid = pid
        self.silent_s = silent_s


class LoadEngineError(TargetError):
    """The load engine failed before the load was done: a Locust worker died or stopped
    answering, or the Locust master could not start. The count is incomplete, so nothing was
    measured: exit 3, never the leak code; ``log_tail`` holds the engine's last log lines."""


class EnvironmentProblem(MemprobeError):
    """Something the machine lacks: an optional package, a permission, a platform feature."""

    exit_code = ExitCode.ENVIRONMENT


class MissingDependency(EnvironmentProblem):
    """An optional package is not installed; the message names the pip command."""

    def __init__(self, what: str, pip_spec: str) -> None:
        super().__init__(f"{what} is not installed: pip install {pip_spec}")
        self.pip_spec = pip_spec
