"""Probes: where the app runs and how it is read. The hunt protocol drives one of them.

A probe is two parts put together (:class:`~memprobe.hunt.probes.compose.ComposedProbe`):

* **how the app is reached** (:class:`Reach`, :mod:`memprobe.hunt.probes.reach`): a child
  memprobe starts, a server started from a command, a running server adopted by pid and URL,
  or the app called in this process (:mod:`memprobe.hunt.probes.inprocess`); it starts or finds
  the process, sends the requests, and says whether the app is still alive;
* **how it is read** (:class:`Reader`): one agent inside the process
  (:mod:`memprobe.hunt.probes.agent`), an agent in each worker of a server
  (:mod:`memprobe.hunt.probes.workers`), outside readings only
  (:mod:`memprobe.hunt.probes.outside`), or this very process's heap
  (:mod:`memprobe.hunt.probes.inprocess`).

Every way memprobe reaches an app is one line in :mod:`memprobe.hunt.probes.compose`; the
protocol (:mod:`memprobe.hunt.protocol`) is written once against :class:`Probe`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Protocol

from memprobe.agent.messages import AttributeAnswer
from memprobe.errors import MemprobeError
from memprobe.http.load import LoadResult
from memprobe.http.template import RequestTemplate
from memprobe.results.hunt import Holder, HuntSettings, Reading, Site, WorkerResult

#: A native leak's lines by RSS (:mod:`memprobe.agent.rsslines`) and a note, or None where the
#: reader cannot run the route's view itself.
RssLines = tuple[list[dict[str, Any]], Optional[str]]


@dataclass
class AppInfo:
    """What a probe learnt when it reached the app."""

    kind: str | None
    framework: str | None = None
    #: the routes the app declares (Flask's url_map, Django's URL resolver...), hunted when none is given
    routes: list[str] = field(default_factory=list)
    startup_s: float = 0.0
    #: how reports name the target, when the probe knows better than the spec it was given
    label: str | None = None
    notes: list[str] = field(default_factory=list)
    #: where ``routes`` came from, or that none could be found (noted when no route is given)
    routes_note: str = ""


@dataclass
class Attribution:
    """Where what grew came from: the growing allocation sites, types and holders."""

    sites: list[Site] = field(default_factory=list)
    types: list[dict[str, Any]] = field(default_factory=list)
    holders: list[Holder] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    #: what the allocators hold after the rounds (:func:`memprobe.agent.allocator.compare`)
    allocator: dict[str, Any] | None = None
    #: a native leak's lines, measured by RSS under memory_profiler's line profiler
    #: (:mod:`memprobe.agent.rsslines`; asked by the protocol after :meth:`Probe.attribute`)
    rss_lines: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, answer: AttributeAnswer) -> Attribution:
        """From the agent's answer to ``attribute``."""
        return cls(list(answer.sites), list(answer.types), list(answer.holders), dict(answer.timings_s),
                   answer.allocator)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attribution:
        """From the answer as sent (:class:`~memprobe.agent.messages.AttributeAnswer` reads it)."""
        return cls.of(AttributeAnswer.from_wire(data))


@dataclass
class Launch:
    """What a reader needs of a process a reach starts: its environment (None: memprobe's
    own) and where its log goes (None: a temporary file, removed at stop)."""

    env: Mapping[str, str] | None = None
    log_path: Path | None = None
    #: how errors name the process (None: its program's file name)
    name: str | None = None


class Reach(Protocol):
    """How the app is reached: started, adopted, or called in this process."""

    settings: HuntSettings
    #: how reports name the target
    label: str

    @property
    def pid(self) -> int:
        """The process that serves (a server's first process: gunicorn's arbiter...)."""

    @property
    def argv(self) -> list[str]:
        """The command line it was started with (the workers it asks for); empty if unknown."""

    def open(self, launch: Launch) -> None:
        """Start the app with ``launch`` (or find it running) and wait until it answers."""

    def send(self, route: str, n: int, first: int, connections: str = "keepalive", *,
             requests: Sequence[RequestTemplate] | None = None) -> LoadResult:
        """``n`` requests of ``route`` (``{n}`` numbered from ``first``) over keep-alive
        connections, or a new connection each (``connections="close"``: the kernel spreads
        them over a server's workers); ``requests``: the templates request number ``k`` is
        made from (``hunt --replay``) instead of the settings' one shape. TargetError when the
        app died under them."""

    def check_alive(self, grace: float = 0.0) -> None:
        """TargetError when the app has exited (waiting ``grace`` s for an exit under way)."""

    def log_tail(self) -> str:
        """The last lines the app wrote, where memprobe keeps its log."""

    def failure(self, err: MemprobeError, phase: str) -> MemprobeError:
        """The error to report for ``err``, raised ``phase``: a crash is named as one."""

    def close(self) -> None:
        """Stop what it started; leave what it found as it was."""


class Reader(Protocol):
    """How the app is read: inside (one agent, an agent per worker, this process) or outside."""

    #: ``child``, ``in_process``, ``outside``, ``workers`` or ``attached`` (``settings.mode``)
    mode: str
    #: whether it sees inside the process (traced heap, sites, types, holders)
    sees_inside: bool
    #: the outside signal it reads: ``uss`` of one process, or ``pss`` summed over a server's
    memory: str
    #: how the load should reach the server: ``keepalive`` or ``close`` (one connection a
    #: request, so that every worker gets its share)
    connections: str

    def launch(self) -> Launch:
        """What a process started for it needs (the agent armed in its environment)."""

    def connect(self, reach: Reach) -> AppInfo:
        """The app is up (or was found): reach its agents, or inject them; what the app is."""

    def start_failed(self, err: MemprobeError) -> MemprobeError:
        """The error to report when the reach could not start the app (the agent's own reason)."""

    @property
    def serving(self) -> int:
        """The processes that serve the requests, each warming up on its own."""

    def begin(self, route: str) -> None:
        """A new route: tracing restarts one frame deep."""

    def read(self, done: int, baseline: bool = False) -> Reading:
        """The signals after garbage collection, ``done`` requests after the baseline."""

    def growth(self, done: int) -> None:
        """Right after the measured rounds: note which containers and types grew."""

    def deepen(self) -> None:
        """The attribution round starts: deep tracebacks from now on."""

    def attribute(self, requests: int, chains: bool = True) -> Attribution:
        """Sites, types and holders of the attribution round."""

    def rss_lines(self, route: str, requests: int, uss_per_request: float, first: int) -> RssLines | None:
        """A native leak's lines by RSS, or None where it cannot run the view."""

    def processes(self) -> list[WorkerResult]:
        """One result per process of a server read worker by worker; empty for one process."""

    def close(self) -> None:
        """Stop reading: agents stopped inside or disconnected (before the reach closes)."""

    def cleanup(self) -> None:
        """Remove what it wrote (a channel folder), once the reach has closed."""


class Probe(Protocol):
    """One way to reach an app and read it: what :mod:`memprobe.hunt.protocol` calls."""

    settings: HuntSettings

    @property
    def mode(self) -> str:
        """``child``, ``in_process``, ``outside``, ``workers`` or ``attached`` (``settings.mode``)."""

    @property
    def sees_inside(self) -> bool:
        """Whether it sees inside the process (traced heap, sites, types, holders)."""

    @property
    def memory(self) -> str:
        """The outside signal it reads: ``uss`` of one process, or ``pss`` summed over a server's."""

    @property
    def serving(self) -> int:
        """The processes that serve the requests, each warming up on its own (a server's
        workers; 1 for one process): the protocol sends each the warm-up one process gets."""

    def open(self) -> AppInfo:
        """Start or reach the app; raise TargetError when it cannot be."""

    def begin(self, route: str) -> None:
        """A new route: tracing restarts one frame deep, before its warm-up."""

    def send(self, route: str, n: int, first: int, *,
             requests: Sequence[RequestTemplate] | None = None) -> LoadResult:
        """``n`` requests of ``route`` (``{n}`` numbered from ``first``), or of the templates
        ``requests`` (``hunt --replay``); TargetError when the app died under them."""

    def read(self, done: int, baseline: bool = False) -> Reading:
        """The signals after garbage collection, ``done`` requests after the baseline (the
        baseline itself also scans the roots and counts the types)."""

    def growth(self, done: int) -> None:
        """Right after the measured rounds: note which containers and types grew."""

    def deepen(self) -> None:
        """The attribution round starts: deep tracebacks from now on."""

    def attribute(self, requests: int, chains: bool = True) -> Attribution:
        """Sites (when deepened, over the ``requests`` since), types and holders; ``chains``
        False: no referrer chains from the sites' objects when no root grew (a native leak's
        traced sites are noise, and the search took 2-5 s)."""

    def rss_lines(self, route: str, requests: int, uss_per_request: float, first: int) -> RssLines | None:
        """A native leak's lines, by RSS: the route's view run under memory_profiler's line
        profiler (at least ``requests`` calls, ``{n}`` numbered from ``first``); None where the
        app is not served by memprobe itself."""

    def processes(self) -> list[WorkerResult]:
        """After a route's rounds (and attribution): one result per process of a server
        hunted worker by worker, judged on its own; empty for a single process."""

    def failure(self, err: MemprobeError, phase: str) -> MemprobeError:
        """The error to report for ``err``, raised ``phase`` (``while hunting /x``): a crash
        of the app is named as one."""

    def close(self) -> None:
        """Stop what the probe started, leave what it reached as it was."""
