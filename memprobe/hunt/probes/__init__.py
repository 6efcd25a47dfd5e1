"""Probes: where the app runs and how it is read. The hunt protocol drives one of them.

A probe starts or reaches the app, sends it requests, reads the two signals (the traced heap
inside, USS outside) and, where it can see inside, names what grew. The protocol
(:mod:`memprobe.hunt.protocol`) is written once against :class:`Probe`; a new way to reach an
app is a new probe, not a new protocol.

* :class:`~memprobe.hunt.probes.child.AgentProbe`: the app in a child memprobe starts, with the
  agent inside (the default);
* :class:`~memprobe.hunt.probes.inprocess.InProcessProbe`: a WSGI app called in this process;
* :class:`~memprobe.hunt.probes.outside.OutsideProbe`: a server started from a command, read
  from outside only;
* :class:`~memprobe.hunt.probes.workers.WorkersProbe`: a Python server started from a command
  (gunicorn, uvicorn), with the agent injected into each worker; the protocol judges the server
  as a whole and the probe answers one result per process (:meth:`Probe.processes`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from memprobe.errors import MemprobeError
from memprobe.http.load import LoadResult
from memprobe.results.hunt import Holder, Reading, Site, WorkerResult


@dataclass
class AppInfo:
    """What a probe learnt when it reached the app."""

    kind: str | None
    framework: str | None = None
    #: the routes the app declares (Flask's url_map, Bottle's routes), hunted when none is given
    routes: list[str] = field(default_factory=list)
    startup_s: float = 0.0
    #: how reports name the target, when the probe knows better than the spec it was given
    label: str | None = None
    notes: list[str] = field(default_factory=list)


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
    def from_dict(cls, data: dict[str, Any]) -> Attribution:
        """From the agent's answer to ``attribute``."""
        return cls([Site.from_dict(s) for s in data.get("sites", [])], list(data.get("types", [])),
                   [Holder.from_dict(h) for h in data.get("holders", [])],
                   dict(data.get("timings_s", {})), data.get("allocator"))


class Probe(Protocol):
    """One way to reach an app and read it; see the module's docstring."""

    #: ``child``, ``in_process`` or ``outside`` (the result's ``settings.mode``)
    mode: str
    #: whether it sees inside the process (traced heap, sites, types, holders)
    sees_inside: bool
    #: the outside signal it reads: ``uss`` of one process, or ``pss`` summed over a server's
    memory: str

    @property
    def serving(self) -> int:
        """The processes that serve the requests, each warming up on its own (a server's
        workers; 1 for one process): the protocol sends each the warm-up one process gets."""

    def open(self) -> AppInfo:
        """Start or reach the app; raise TargetError when it cannot be."""

    def begin(self, route: str) -> None:
        """A new route: tracing restarts one frame deep, before its warm-up."""

    def send(self, route: str, n: int, first: int) -> LoadResult:
        """``n`` requests of ``route`` (``{n}`` numbered from ``first``); TargetError when the
        app died under them."""

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

    # Optional: ``rss_lines(route, requests, uss_per_request, first) -> (lines, note)``, a native
    # leak's lines by RSS (only a probe whose app memprobe serves itself has it).

    def processes(self) -> list[WorkerResult]:
        """After a route's rounds (and attribution): one result per process of a server
        hunted worker by worker, judged on its own; empty for a single process."""

    def failure(self, err: MemprobeError, phase: str) -> MemprobeError:
        """The error to report for ``err``, raised ``phase`` (``while hunting /x``): a crash
        of the app is named as one."""

    def close(self) -> None:
        """Stop what the probe started, leave what it reached as it was."""
