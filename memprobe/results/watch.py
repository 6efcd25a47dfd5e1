"""What ``memprobe watch`` reads from a production server: one :class:`Window` per worker per
interval, the contract between the code inside the server (which counts each route's requests
and reads the heap cheaply, never tracing outside an attribution window) and the analysis in
the parent (which turns windows into bytes kept per request, per route, with an error bar).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memprobe.results.envelope import Envelope
from memprobe.results.hunt import Site


@dataclass(frozen=True)
class Window:
    """One worker's interval: the requests each route completed in it and the memory at its end.

    ``start`` and ``end`` are ``time.monotonic()`` seconds, one clock for every process of the
    machine (CLOCK_MONOTONIC). Heap readings are levels at ``end``, not deltas: the analysis
    differences them, so a lost window costs one difference, not a wrong one.
    """

    #: the worker (its pid; a respawned worker is another pid)
    pid: int
    start: float
    end: float
    #: route (as the framework names it, ``GET /items/<int:id>``) -> requests completed
    requests: dict[str, int] = field(default_factory=dict)
    #: ``sys.getallocatedblocks()`` at ``end``: Python's allocated blocks
    blocks: int | None = None
    #: bytes the C allocator has handed out at ``end`` (glibc ``mallinfo2().uordblks``), None
    #: where it cannot be read
    heap_bytes: int | None = None
    #: the worker's RSS and USS at ``end``, read from outside by the parent (None if not read)
    rss: int | None = None
    uss: int | None = None
    #: the most requests in flight at once during the window (1: requests never overlapped, so
    #: each request's own heap delta was exact)
    max_in_flight: int = 0
    #: per route, the heap deltas of single requests that ran alone (``blocks`` after minus
    #: before), kept only where requests did not overlap; bounded in length by the agent
    alone_deltas: dict[str, list[int]] = field(default_factory=dict)
    #: the worker's PSS at ``end``, read from outside like ``uss`` (None if not read)
    pss: int | None = None
    #: per route, beside each of its ``alone_deltas``, the route of the request that ran just
    #: before it ("" where none was seen): what that request left to be freed later is in the delta
    alone_after: dict[str, list[str]] = field(default_factory=dict)
    #: threads that served the window's requests (2 stands for 2 or more), and whether the app is
    #: asynchronous (ASGI): where either lets the process work on other connections between two
    #: requests, a request that ran alone in the app did not run alone in the process
    threads: int = 1
    asynchronous: bool = False

    @property
    def seconds(self) -> float:
        """The window's length."""
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the rolling report keeps the last windows)."""
        return {"pid": self.pid, "start": self.start, "end": self.end, "requests": dict(self.requests),
                "blocks": self.blocks, "heap_bytes": self.heap_bytes, "rss": self.rss, "uss": self.uss,
                "max_in_flight": self.max_in_flight,
                "alone_deltas": {k: list(v) for k, v in self.alone_deltas.items()}, "pss": self.pss,
                "alone_after": {k: list(v) for k, v in self.alone_after.items()}, "threads": self.threads,
                "asynchronous": self.asynchronous}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Window:
        """Read back what :meth:`to_dict` wrote (and what an agent sends)."""
        return cls(int(data["pid"]), float(data["start"]), float(data["end"]),
                   {str(k): int(v) for k, v in (data.get("requests") or {}).items()},
                   _int(data.get("blocks")), _int(data.get("heap_bytes")), _int(data.get("rss")),
                   _int(data.get("uss")), int(data.get("max_in_flight") or 0),
                   {str(k): [int(x) for x in v] for k, v in (data.get("alone_deltas") or {}).items()},
                   _int(data.get("pss")),
                   {str(k): [str(x) for x in v] for k, v in (data.get("alone_after") or {}).items()},
                   int(data.get("threads") or 1), bool(data.get("asynchronous")))


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _num(value: Any) -> float | None:
    """A float for JSON: None for None and for what JSON cannot hold (inf, nan)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _float(value: Any, default: float = math.inf) -> float:
    return default if value is None else float(value)


@dataclass
class PerRequest:
    """A figure with its standard error (inf: not known at all), in ``unit``: ``B`` or
    ``blocks`` per request, ``B/s`` per second."""

    value: float
    error: float
    unit: str = "B"

    def to_dict(self) -> dict[str, Any]:
        """``{"value", "error", "unit"}``; an unknown error is null."""
        return {"value": _num(round(self.value, 4)), "error": _num(round(self.error, 4)
                                                                    if math.isfinite(self.error) else None),
                "unit": self.unit}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> PerRequest | None:
        """Read back :meth:`to_dict`'s form (None stays None)."""
        if not data:
            return None
        return cls(_float(data.get("value"), 0.0), _float(data.get("error")), str(data.get("unit") or "B"))


@dataclass
class TracedRoute:
    """What one attribution window found for one route: its requests in the window, how many
    were traced, and over those the bytes and blocks still alive at each one's end that the
    route's handler allocated (the sum and the sum of squares of each request's bytes), the
    bytes allocated with no handler on the stack, the lines, and the containers that hold them."""

    route: str
    requests: int
    bytes: int
    count: int
    sites: list[Site] = field(default_factory=list)
    holders: list[dict[str, Any]] = field(default_factory=list)
    samples: int = 0
    bytes_sq: float = 0.0
    unrouted: int = 0
    unrouted_sq: float = 0.0

    @property
    def per_request(self) -> float:
        """Bytes its handler left alive per traced request of the route."""
        return self.bytes / self.samples if self.samples else math.inf

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"route": self.route, "requests": self.requests, "samples": self.samples, "bytes": self.bytes,
                "bytes_sq": self.bytes_sq, "count": self.count, "unrouted": self.unrouted,
                "unrouted_sq": self.unrouted_sq, "sites": [s.to_dict() for s in self.sites],
                "holders": list(self.holders)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TracedRoute:
        """Read back :meth:`to_dict`'s form (the agent sends it so)."""
        return cls(str(data["route"]), int(data.get("requests") or 0), int(data.get("bytes") or 0),
                   int(data.get("count") or 0), [Site.from_dict(x) for x in data.get("sites") or []],
                   [dict(h) for h in data.get("holders") or []], int(data.get("samples") or 0),
                   float(data.get("bytes_sq") or 0.0), int(data.get("unrouted") or 0),
                   float(data.get("unrouted_sq") or 0.0))


@dataclass
class TracedWindow:
    """One attribution window (:mod:`memprobe.agent.watch_trace`): which worker traced, for how
    long and how many requests, how deep, one request in how many, why it closed, what tracing
    cost, what it found."""

    pid: int
    seconds: float
    requests: dict[str, int]
    frames: int
    closed: str = "due"
    routes: list[TracedRoute] = field(default_factory=list)
    #: containers that grew during it (the roots scan's), each with ``routes``: how many
    #: entries each route's traced requests added
    holders: list[dict[str, Any]] = field(default_factory=list)
    traced_peak: int = 0
    tracemalloc_memory: int = 0
    timings_s: dict[str, float] = field(default_factory=dict)
    #: seconds since the watch began, when it closed (the parent's clock)
    at: float = 0.0
    #: one request in ``sample`` traced, ``share`` of the window's time at most
    sample: int = 1
    share: float = 1.0
    #: requests traced and kept, traced and dropped (another overlapped), seconds they took
    samples: int = 0
    overlapped: int = 0
    traced_s: float = 0.0
    #: what went wrong in its scans (it went on without them)
    errors: list[str] = field(default_factory=list)

    def route(self, name: str) -> TracedRoute | None:
        """The window's line for ``name``, if it saw the route."""
        return next((r for r in self.routes if r.route == name), None)

    def to_dict(self, findings: bool = True) -> dict[str, Any]:
        """JSON form; without ``findings`` only what the window was (for the report's list)."""
        out: dict[str, Any] = {"pid": self.pid, "seconds": self.seconds, "requests": dict(self.requests),
                               "frames": self.frames, "closed": self.closed, "sample": self.sample,
                               "share": self.share, "samples": self.samples, "overlapped": self.overlapped,
                               "traced_s": self.traced_s, "traced_peak": self.traced_peak,
                               "tracemalloc_memory": self.tracemalloc_memory, "timings_s": dict(self.timings_s),
                               "at": round(self.at, 3), "errors": list(self.errors)}
        if findings:
            out.update(routes=[r.to_dict() for r in self.routes], holders=list(self.holders))
        else:  # per route, what stayed: bytes and blocks (the sites and holders are the routes' lines')
            out["kept"] = {r.route: {"bytes": r.bytes, "count": r.count, "requests": r.requests,
                                     "samples": r.samples} for r in self.routes}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TracedWindow:
        """Read back :meth:`to_dict`'s form (the agent sends it so)."""
        return cls(int(data["pid"]), float(data.get("seconds") or 0.0),
                   {str(k): int(v) for k, v in (data.get("requests") or {}).items()}, int(data.get("frames") or 0),
                   str(data.get("closed") or "due"), [TracedRoute.from_dict(r) for r in data.get("routes") or []],
                   [dict(h) for h in data.get("holders") or []], int(data.get("traced_peak") or 0),
                   int(data.get("tracemalloc_memory") or 0),
                   {str(k): float(v) for k, v in (data.get("timings_s") or {}).items()}, float(data.get("at") or 0.0),
                   int(data.get("sample") or 1), float(data.get("share") or 1.0), int(data.get("samples") or 0),
                   int(data.get("overlapped") or 0), float(data.get("traced_s") or 0.0),
                   [str(e) for e in data.get("errors") or []])


@dataclass
class Attribution:
    """A route's attribution over the windows that saw it: bytes its handler's allocations left
    alive per traced request (the mean over every traced request, with its standard error), the
    lines and the holder (from the window where it kept most), and the windows' bounds."""

    windows: int
    #: the route's requests traced in them
    requests: int
    per_request: PerRequest
    sites: list[Site] = field(default_factory=list)
    holders: list[dict[str, Any]] = field(default_factory=list)
    #: e.g. ``2 windows in pid 4243, 4244: 40 s, 9,612 requests, 16 frames``
    bounds: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"windows": self.windows, "requests": self.requests, "bytes_per_request": self.per_request.to_dict(),
                "sites": [s.to_dict() for s in self.sites], "holders": list(self.holders), "bounds": self.bounds}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Attribution | None:
        """Read back :meth:`to_dict`'s form (None stays None)."""
        if not data:
            return None
        return cls(int(data.get("windows") or 0), int(data.get("requests") or 0),
                   PerRequest.from_dict(data.get("bytes_per_request")) or PerRequest(0.0, math.inf),
                   [Site.from_dict(x) for x in data.get("sites") or []], [dict(h) for h in data.get("holders") or []],
                   str(data.get("bounds") or ""))


#: the verdict words: hunt's, and the two that say the traffic did not decide
VERDICTS = ("leak", "bounded", "clean", "not enough traffic yet", "cannot be separated from route")


@dataclass
class RouteLine:
    """One route in one series (a worker's, or the server's when ``pid`` is None): its
    requests, their rate, what each kept, the verdict and why."""

    route: str
    requests: int
    #: requests per second over the series' span
    rate: float
    verdict: str
    reason: str = ""
    #: retained bytes per request (``bytes_from`` says what they rest on)
    bytes: PerRequest | None = None
    #: Python's allocated blocks kept per request
    blocks: PerRequest | None = None
    #: the worker's USS per request (pages: the honest, coarse one)
    uss: PerRequest | None = None
    #: ``alone`` (deltas of requests that ran alone) or ``regression`` (levels over windows)
    method: str = ""
    bytes_from: str = ""
    pid: int | None = None
    #: the route (or ``background growth``) this one cannot be told apart from
    partner: str | None = None
    #: what the attribution windows found for it (the server's line only)
    attribution: Attribution | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"route": self.route, "pid": self.pid, "requests": self.requests, "rate": round(self.rate, 3),
                "verdict": self.verdict, "reason": self.reason,
                "bytes_per_request": self.bytes.to_dict() if self.bytes else None,
                "blocks_per_request": self.blocks.to_dict() if self.blocks else None,
                "uss_per_request": self.uss.to_dict() if self.uss else None,
                "method": self.method, "bytes_from": self.bytes_from, "partner": self.partner,
                "attribution": self.attribution.to_dict() if self.attribution else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RouteLine:
        """Read back :meth:`to_dict`'s form."""
        return cls(str(data["route"]), int(data.get("requests") or 0), float(data.get("rate") or 0.0),
                   str(data["verdict"]), str(data.get("reason") or ""),
                   PerRequest.from_dict(data.get("bytes_per_request")),
                   PerRequest.from_dict(data.get("blocks_per_request")),
                   PerRequest.from_dict(data.get("uss_per_request")),
                   str(data.get("method") or ""), str(data.get("bytes_from") or ""),
                   _int(data.get("pid")), data.get("partner"), Attribution.from_dict(data.get("attribution")))


@dataclass
class WorkerLine:
    """One worker (one pid: a respawned worker is another line): its requests, memory now,
    growth, time to the limit and its own per-route lines."""

    pid: int
    first_seen: float
    last_seen: float
    requests: int
    windows: int
    rss: int | None = None
    uss: int | None = None
    pss: int | None = None
    #: USS when the worker's series began (its fresh size, for the recycling advice)
    uss_first: int | None = None
    #: True while it sends windows; False once replaced or gone
    alive: bool = True
    #: the memory signal's growth per second and per request served (all routes)
    growth_per_s: PerRequest | None = None
    growth_per_request: PerRequest | None = None
    #: seconds until its share of the limit at its slope, with the error (None: no limit, or no growth)
    time_to_limit_s: PerRequest | None = None
    routes: list[RouteLine] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"pid": self.pid, "first_seen": self.first_seen, "last_seen": self.last_seen,
                "requests": self.requests, "windows": self.windows, "rss": self.rss, "uss": self.uss,
                "pss": self.pss, "uss_first": self.uss_first, "alive": self.alive,
                "growth_per_s": self.growth_per_s.to_dict() if self.growth_per_s else None,
                "growth_per_request": self.growth_per_request.to_dict() if self.growth_per_request else None,
                "time_to_limit_s": self.time_to_limit_s.to_dict() if self.time_to_limit_s else None,
                "routes": [r.to_dict() for r in self.routes]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkerLine:
        """Read back :meth:`to_dict`'s form."""
        return cls(int(data["pid"]), float(data.get("first_seen") or 0), float(data.get("last_seen") or 0),
                   int(data.get("requests") or 0), int(data.get("windows") or 0), _int(data.get("rss")),
                   _int(data.get("uss")), _int(data.get("pss")), _int(data.get("uss_first")),
                   bool(data.get("alive", True)), PerRequest.from_dict(data.get("growth_per_s")),
                   PerRequest.from_dict(data.get("growth_per_request")),
                   PerRequest.from_dict(data.get("time_to_limit_s")),
                   [RouteLine.from_dict(r) for r in data.get("routes") or []])


@dataclass
class Timeline:
    """Per route, the cumulative bytes retained at window ends (the route's current estimate
    times its requests so far), beside the heap growth measured; at most a fixed number of
    points (older ones thinned)."""

    t: list[float] = field(default_factory=list)
    retained: dict[str, list[float]] = field(default_factory=dict)
    measured: list[float] = field(default_factory=list)
    #: what ``measured`` and ``retained`` are in: ``heap_bytes`` or ``blocks x 64 B``
    signal: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form (seconds since the watch began)."""
        return {"t": [round(x, 3) for x in self.t], "signal": self.signal,
                "retained": {k: [round(v, 1) for v in vs] for k, vs in self.retained.items()},
                "measured": [round(v, 1) for v in self.measured]}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Timeline:
        """Read back :meth:`to_dict`'s form."""
        data = data or {}
        return cls([float(x) for x in data.get("t") or []],
                   {str(k): [float(v) for v in vs] for k, vs in (data.get("retained") or {}).items()},
                   [float(v) for v in data.get("measured") or []], str(data.get("signal") or ""))


@dataclass
class CgroupReading:
    """The server's memory cgroup: the limit the OOM killer enforces, what it counts, and how
    often it struck. ``reason`` says why there is nothing (no cgroup files, no memory
    controller); sizes are bytes, ``limit`` None when unlimited."""

    version: int | None = None
    path: str = ""
    limit: int | None = None
    usage: int | None = None
    #: usage by kind: anon, file (page cache), kernel, sock, shmem...
    breakdown: dict[str, int] = field(default_factory=dict)
    #: memory.events (v2) or failcnt / oom_control (v1): oom, oom_kill, max, high...
    events: dict[str, int] = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"version": self.version, "path": self.path, "limit": self.limit, "usage": self.usage,
                "breakdown": dict(self.breakdown), "events": dict(self.events), "reason": self.reason}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> CgroupReading | None:
        """Read back :meth:`to_dict`'s form (None stays None)."""
        if data is None:
            return None
        return cls(_int(data.get("version")), str(data.get("path") or ""), _int(data.get("limit")),
                   _int(data.get("usage")), {str(k): int(v) for k, v in (data.get("breakdown") or {}).items()},
                   {str(k): int(v) for k, v in (data.get("events") or {}).items()}, str(data.get("reason") or ""))


@dataclass
class Advice:
    """The recycling advice, or why it is withheld (``given`` False, ``reason`` says why)."""

    given: bool
    reason: str
    #: e.g. ``--max-requests 4200 --max-requests-jitter 420``
    gunicorn: str = ""
    #: e.g. ``--limit-max-requests 4200``
    uvicorn: str = ""
    #: the share of each worker's budget the advice keeps it under
    share: float = 0.0
    budget_per_worker: int | None = None
    #: where the budget came from: ``cgroup`` or ``--budget``
    budget_from: str = ""
    #: the figures it rests on (the deciding worker, its growth per request with the error used,
    #: its fresh size)
    figures: dict[str, Any] = field(default_factory=dict)
    #: the server's projected seconds until its cgroup limit, with the error
    time_to_limit_s: PerRequest | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"given": self.given, "reason": self.reason, "gunicorn": self.gunicorn, "uvicorn": self.uvicorn,
                "share": self.share, "budget_per_worker": self.budget_per_worker, "budget_from": self.budget_from,
                "figures": dict(self.figures),
                "time_to_limit_s": self.time_to_limit_s.to_dict() if self.time_to_limit_s else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Advice | None:
        """Read back :meth:`to_dict`'s form (None stays None)."""
        if data is None:
            return None
        return cls(bool(data.get("given")), str(data.get("reason") or ""), str(data.get("gunicorn") or ""),
                   str(data.get("uvicorn") or ""), float(data.get("share") or 0.0),
                   _int(data.get("budget_per_worker")), str(data.get("budget_from") or ""),
                   dict(data.get("figures") or {}), PerRequest.from_dict(data.get("time_to_limit_s")))


@dataclass
class WatchResult:
    """The rolling report of ``memprobe watch``: the server's per-route lines, each worker's,
    the timeline, the cgroup, the advice and notes, behind the envelope."""

    routes: list[RouteLine] = field(default_factory=list)
    workers: list[WorkerLine] = field(default_factory=list)
    timeline: Timeline = field(default_factory=Timeline)
    cgroup: CgroupReading | None = None
    advice: Advice | None = None
    notes: list[str] = field(default_factory=list)
    #: what was watched and how (pid or command, interval...): the caller's
    settings: dict[str, Any] = field(default_factory=dict)
    windows: int = 0
    #: seconds watched
    duration_s: float = 0.0
    #: the attribution windows run so far (what each was; the findings are in the routes' lines)
    traced: list[TracedWindow] = field(default_factory=list)
    kind: str = "watch"
    envelope: Envelope = field(default_factory=Envelope)

    @property
    def verdict(self) -> str:
        """The server's worst route verdict: leak, bounded, clean, or undecided."""
        words = [r.verdict for r in self.routes]
        for word in ("leak", "bounded"):
            if word in words:
                return word
        if words and all(w == "clean" for w in words):
            return "clean"
        return "undecided"

    def to_dict(self) -> dict[str, Any]:
        """The envelope, then the report's keys."""
        return {**self.envelope.to_dict(self.kind, dict(self.settings), self.duration_s),
                "verdict": self.verdict, "windows": self.windows,
                "routes": [r.to_dict() for r in self.routes], "workers": [w.to_dict() for w in self.workers],
                "timeline": self.timeline.to_dict(),
                "cgroup": self.cgroup.to_dict() if self.cgroup else None,
                "advice": self.advice.to_dict() if self.advice else None, "notes": list(self.notes),
                "traced": [t.to_dict(findings=False) for t in self.traced]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WatchResult:
        """Read back :meth:`to_dict`'s form."""
        if "routes" not in data or "workers" not in data:
            raise KeyError("routes")
        return cls([RouteLine.from_dict(r) for r in data["routes"]],
                   [WorkerLine.from_dict(w) for w in data["workers"]], Timeline.from_dict(data.get("timeline")),
                   CgroupReading.from_dict(data.get("cgroup")), Advice.from_dict(data.get("advice")),
                   [str(n) for n in data.get("notes") or []], dict(data.get("settings") or {}),
                   int(data.get("windows") or 0), float(data.get("duration_s") or 0.0),
                   [TracedWindow.from_dict(t) for t in data.get("traced") or []], envelope=Envelope.from_dict(data))


def write_atomically(result: WatchResult, path: str | os.PathLike[str]) -> Path:
    """Write the report's JSON so that a reader (or a crash, an OOM kill, a SIGKILL) only ever
    sees a whole report: a temporary file in the same folder, flushed, then renamed over."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(result.to_dict(), fh, indent=1)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target
