"""What every probe of a server process shares: the child's life and the load sent to it."""
from __future__ import annotations

from pathlib import Path

from memprobe.errors import MemprobeError, TargetError
from memprobe.http.hammer import Hammer
from memprobe.http.load import LoadResult
from memprobe.process.child import EXIT_GRACE_S, LOOPBACK, Child
from memprobe.results.hunt import HuntSettings, WorkerResult


class ServerProbe:
    """A server memprobe started on 127.0.0.1:``port``, hammered with memprobe's own hammer.

    Subclasses start :attr:`child` in ``open()`` and read the signals their own way.
    """

    memory = "uss"

    def __init__(self, settings: HuntSettings, cwd: str | Path | None = None) -> None:
        self.settings = settings
        self.cwd = cwd
        self.port = 0
        self.child: Child | None = None

    def url(self, route: str) -> str:
        """The URL of ``route`` on the server."""
        return f"http://{LOOPBACK}:{self.port}{route}"

    def send(self, route: str, n: int, first: int) -> LoadResult:
        """``n`` requests over ``settings.concurrency`` keep-alive connections."""
        s = self.settings
        load = Hammer(self.url(route), n, concurrency=s.concurrency, timeout=s.timeout,
                      first=first).run()
        if load.answered < load.sent and self.child is not None:
            # Resets and refusals: the child may be on its way out.
            self.child.check_alive(grace=EXIT_GRACE_S if load.errors else 0.0)
        return load

    def processes(self) -> list[WorkerResult]:
        """One process: nothing per process beyond the route's own result."""
        return []

    def failure(self, err: MemprobeError, phase: str) -> MemprobeError:
        """A crash is named as a crash (with the log's tail), whatever failed first."""
        child = self.child
        if child is not None and child.proc is not None and child.exited(grace=EXIT_GRACE_S):
            return TargetError(f"the app died {phase} (exit code {child.proc.returncode})",
                               child.log_tail())
        return err

    def close(self) -> None:
        """Stop the server's whole process group."""
        if self.child is not None:
            self.child.stop()
