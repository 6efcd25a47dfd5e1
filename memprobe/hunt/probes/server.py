"""What every probe of a server process shares: the child's life and the load sent to it."""
from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from memprobe.errors import MemprobeError, TargetError, UsageError
from memprobe.http.hammer import Hammer
from memprobe.http.load import LoadResult, LoadSender
from memprobe.http.locust_engine import LocustEngine, LocustHammer
from memprobe.process.child import EXIT_GRACE_S, LOOPBACK, Child, start_on_free_port
from memprobe.results.hunt import HuntSettings, WorkerResult

#: host names of a running server's ``--url`` that are loopback: the load goes nowhere else
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def loopback_base(url: str) -> str:
    """``url`` without its trailing slash, when it is an http URL on loopback (UsageError else)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK_NAMES:
        raise UsageError(f"--url must be an http URL on loopback (http://127.0.0.1:PORT), not {url!r}")
    return url.rstrip("/")


def send_load(url: str, n: int, first: int, settings: HuntSettings, engine: LocustEngine | None,
              mode: str = "keepalive") -> LoadResult:
    """``n`` requests to ``url`` (``{n}`` from ``first``) at the hunt's concurrency and timeout,
    by the native hammer or, when one was started, the Locust engine."""
    sender: LoadSender = (
        Hammer(url, n, concurrency=settings.concurrency, timeout=settings.timeout, first=first, mode=mode)
        if engine is None else
        LocustHammer(url, n, concurrency=settings.concurrency, timeout=settings.timeout, first=first, mode=mode,
                     engine=engine))
    return sender.run()


class ServerProbe:
    """A server memprobe started on 127.0.0.1:``port``, hammered with memprobe's own hammer.

    Subclasses start :attr:`child` in ``open()`` and read the signals their own way.
    """

    memory = "uss"
    #: A started Locust engine to send the load with (``--engine locust``); None: the native hammer.
    load_engine: LocustEngine | None = None

    def __init__(self, settings: HuntSettings, cwd: str | Path | None = None) -> None:
        self.settings = settings
        self.cwd = cwd
        self.port = 0
        self.child: Child | None = None

    @property
    def serving(self) -> int:
        """One process serves (a server hunted worker by worker says how many)."""
        return 1

    def url(self, route: str) -> str:
        """The URL of ``route`` on the server."""
        return f"http://{LOOPBACK}:{self.port}{route}"

    def send(self, route: str, n: int, first: int) -> LoadResult:
        """``n`` requests over ``settings.concurrency`` keep-alive connections."""
        load = send_load(self.url(route), n, first, self.settings, self.load_engine)
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


class CommandProbe(ServerProbe):
    """A server started from the user's command (``{port}`` in it becomes a free port), ready
    once ``ready_path`` answers."""

    def __init__(self, cmd: str, settings: HuntSettings, cwd: str | Path | None = None,
                 ready_path: str = "/") -> None:
        if "{port}" not in cmd:
            raise UsageError("--cmd must contain {port} where the server's port goes, e.g. "
                             "'gunicorn app:app -b 127.0.0.1:{port}'")
        super().__init__(settings, cwd)
        self.cmd = cmd
        self.ready_path = ready_path

    def start_command(self, env: Mapping[str, str] | None = None, log_path: Path | None = None) -> list[str]:
        """Start the command on a free port (another one if the port was taken in between) and
        wait until it answers; return the argv it was started with."""
        argv: list[str] = []

        def on_port(port: int) -> Child:
            nonlocal argv
            self.port = port
            argv = shlex.split(self.cmd.replace("{port}", str(port)))
            self.child = Child(argv, name=Path(argv[0]).name, url=self.url(self.ready_path), cwd=self.cwd,
                               env=env, log_path=log_path, ready_timeout=self.settings.ready_timeout)
            return self.child

        start_on_free_port(on_port)
        return argv
