"""Every way memprobe reaches and reads an app, each one line: a :class:`~memprobe.hunt.probes.Reach`
and a :class:`~memprobe.hunt.probes.Reader` put together in a :class:`ComposedProbe`.

=====================================  ==============================  ==============================
what the user gave                     how it is reached               how it is read
=====================================  ==============================  ==============================
``TARGET``                             a child memprobe starts         the agent it serves the app with
``cmd`` running Python                 the command, started            an agent injected in each worker
``cmd`` (any, or ``outside``)          the command, started            outside readings only
``pid`` + ``url``, one process         found running                   an agent attached to it
``pid`` + ``url``, a master            found running                   an agent attached to each worker
``pid`` started under ``memprobe run`` found running                   its agents, already listening
``pid`` + ``url`` + ``outside``        found running                   outside readings only
pytest's ``serve(cmd=...)``            adopted                         its agents, already listening
``hunt_in_process``                    called in this process          this process's heap
=====================================  ==============================  ==============================
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from memprobe.errors import MemprobeError
from memprobe.http.load import LoadResult
from memprobe.http.template import RequestTemplate
from memprobe.hunt.probes import AppInfo, Attribution, Reach, Reader, RssLines
from memprobe.hunt.probes.agent import OneAgent
from memprobe.hunt.probes.inprocess import InProcess, SelfReader
from memprobe.hunt.probes.outside import Outside
from memprobe.hunt.probes.reach import Running, Spawned
from memprobe.hunt.probes.workers import AgentPerWorker, is_python_command, run_channel, worker_pids
from memprobe.results.hunt import HuntSettings, Reading, WorkerResult

if TYPE_CHECKING:
    from memprobe.agent.channel import Channel
    from memprobe.http.locust_engine import LocustEngine
    from memprobe.process.child import Child


class ComposedProbe:
    """A :class:`~memprobe.hunt.probes.Probe` made of how the app is reached and how it is read."""

    def __init__(self, reach: Reach, reader: Reader) -> None:
        self.reach = reach
        self.reader = reader
        self.settings = reach.settings

    @property
    def mode(self) -> str:
        """The reader's mode (``settings.mode``)."""
        return self.reader.mode

    @property
    def sees_inside(self) -> bool:
        """Whether the reader sees inside the process."""
        return self.reader.sees_inside

    @property
    def memory(self) -> str:
        """The outside signal read: ``uss`` or ``pss``."""
        return self.reader.memory

    @property
    def serving(self) -> int:
        """The processes that serve the requests."""
        return self.reader.serving

    def open(self) -> AppInfo:
        """Start (or find) the app with what the reader needs, then let the reader in."""
        t0 = time.monotonic()
        launch = self.reader.launch()
        try:
            self.reach.open(launch)
        except MemprobeError as err:
            raise self.reader.start_failed(err) from None
        info = self.reader.connect(self.reach)
        info.startup_s = time.monotonic() - t0
        info.label = info.label or self.reach.label
        return info

    def send(self, route: str, n: int, first: int, *,
             requests: Sequence[RequestTemplate] | None = None) -> LoadResult:
        """``n`` requests, the way the reader needs them spread."""
        return self.reach.send(route, n, first, self.reader.connections, requests=requests)

    def begin(self, route: str) -> None:
        """A new route."""
        self.reader.begin(route)

    def read(self, done: int, baseline: bool = False) -> Reading:
        """The signals now."""
        return self.reader.read(done, baseline)

    def growth(self, done: int) -> None:
        """What grew, noted."""
        self.reader.growth(done)

    def deepen(self) -> None:
        """Deep tracebacks from now on."""
        self.reader.deepen()

    def attribute(self, requests: int, chains: bool = True) -> Attribution:
        """Sites, types and holders."""
        return self.reader.attribute(requests, chains)

    def rss_lines(self, route: str, requests: int, uss_per_request: float, first: int) -> RssLines | None:
        """A native leak's lines by RSS, where the reader serves the app itself."""
        return self.reader.rss_lines(route, requests, uss_per_request, first)

    def processes(self) -> list[WorkerResult]:
        """One result per process of a server read worker by worker."""
        return self.reader.processes()

    def failure(self, err: MemprobeError, phase: str) -> MemprobeError:
        """A crash of the app is named as one."""
        return self.reach.failure(err, phase)

    def close(self) -> None:
        """The reader lets go, the reach stops what it started, the reader's folders go."""
        try:
            self.reader.close()
        finally:
            try:
                self.reach.close()
            finally:
                self.reader.cleanup()


def child(target: str, settings: HuntSettings, engine: LocustEngine | None = None,
          ready_path: str = "/") -> ComposedProbe:
    """``target`` in a child memprobe starts, read through the agent that serves it."""
    agent = OneAgent.serving_target(target, settings)
    return ComposedProbe(Spawned(agent.argv_for, settings, target, ready_path=ready_path, engine=engine), agent)


def command(cmd: str, settings: HuntSettings, engine: LocustEngine | None = None,
            ready_path: str = "/") -> ComposedProbe:
    """The server ``cmd`` starts: an agent in each worker when it runs Python (unless
    ``settings.outside``), else read from outside."""
    reader: Reader = (AgentPerWorker.injecting(settings) if is_workers(settings) else Outside())
    return ComposedProbe(Spawned.command(cmd, settings, ready_path=ready_path, engine=engine), reader)


def running(pid: int, url: str, settings: HuntSettings, engine: LocustEngine | None = None) -> ComposedProbe:
    """A running server, read as ``settings.mode`` says (:func:`mode_of`): its agents if it
    was started under ``memprobe run``, else an agent attached to each of its workers
    (``workers``) or to it (``attached``); or from outside."""
    from memprobe.agent.channel import Channel

    reach = Running(pid, url, settings, engine=engine)
    channel = run_channel(pid)
    reader: Reader
    if settings.mode == "outside":
        reader = Outside()
    elif settings.mode == "workers":
        reader = (AgentPerWorker.listening(settings, Channel(channel)) if channel is not None
                  else AgentPerWorker.attaching(settings))
    else:
        reader = OneAgent.attaching(settings)
    return ComposedProbe(reach, reader)


def adopted(child: Child, channel: Channel, label: str, settings: HuntSettings) -> ComposedProbe:
    """A server started earlier with its agents armed (the pytest fixture's ``serve(cmd=...)``),
    hunted as it runs and left running."""
    return ComposedProbe(Spawned.adopt(child, settings, label), AgentPerWorker.listening(settings, channel))


def in_process(target: Any, settings: HuntSettings, *, method: str = "GET", body: bytes | None = None,
               headers: dict[str, str] | None = None, holders: bool = True) -> ComposedProbe:
    """A WSGI app called in this process, read on this process's heap."""
    return ComposedProbe(InProcess(target, settings, method=method, body=body, headers=headers),
                         SelfReader(settings, holders=holders, uss=bool(settings.uss)))


def is_workers(settings: HuntSettings) -> bool:
    """Whether a server started from ``settings.cmd`` is read worker by worker (a Python
    command, not ``outside``)."""
    return settings.cmd is not None and not settings.outside and is_python_command(settings.cmd, settings.cwd)


def mode_of(settings: HuntSettings) -> str:
    """The mode a hunt with these settings runs in (``settings.mode`` of its result)."""
    if settings.pid is not None:
        if settings.outside:
            return "outside"
        return "workers" if run_channel(settings.pid) is not None or worker_pids(settings.pid) else "attached"
    if settings.cmd is not None:
        return "workers" if is_workers(settings) else "outside"
    return settings.mode if settings.mode == "in_process" else "child"
