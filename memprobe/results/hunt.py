"""The hunt's typed result: a :class:`HuntResult` of :class:`RouteResult` rounds, verdicts,
allocation sites and holders, as ``memprobe hunt --json`` writes it and ``report`` reads it back.
"""
from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass, field
from typing import Any

from memprobe.errors import ExitCode, MemprobeError
from memprobe.results.envelope import Envelope
from memprobe.results.hunt_settings import MODES, SIGNALS, UNTRACED_MODES, HuntSettings
from memprobe.units import format_rate

__all__ = ["VERDICTS", "MODES", "SIGNALS", "UNTRACED_MODES", "HuntSettings", "Rate", "Reading", "Fit", "Judgement",
           "Site", "Holder", "Judged", "WorkerResult", "RouteResult", "HuntResult", "memory_name",
           "rates_json", "readings_from", "HuntFailed", "HuntInterrupted"]

#: Verdicts, worst first: ``errors`` (the route answered only errors: nothing the user meant
#: was measured) and ``inconclusive`` (the readings could not have seen the leaks looked for)
#: rank above ``bounded``, as their exit codes do; :mod:`memprobe.hunt.evidence` gives them.
VERDICTS = ("leak", "errors", "inconclusive", "bounded", "clean")
_ORDER = {v: len(VERDICTS) - i for i, v in enumerate(VERDICTS)}
#: How reports name the outside signal (``RouteResult.memory``): a process's USS, or PSS summed
#: over a server's processes.
MEMORY_NAMES = {"uss": "USS", "pss": "PSS"}


def memory_name(memory: str) -> str:
    """``USS`` or ``PSS``: the outside signal's name in a report."""
    return MEMORY_NAMES.get(memory, memory.upper())


class Rate(float):
    """Bytes per request from a fitted slope: a float, so it compares with a limit as it is
    (``result.bytes_per_request["uss"] < 256``), that carries its standard error."""

    error: float

    def __new__(cls, value: float, error: float) -> Rate:
        rate = super().__new__(cls, value)
        rate.error = error
        return rate

    def to_dict(self) -> dict[str, float]:
        """The JSON form: ``{"value": ..., "error": ...}``."""
        return {"value": round(float(self), 2), "error": round(self.error, 2)}

    def __repr__(self) -> str:
        return f"Rate({float(self):.2f} ± {self.error:.2f})"

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Rate | None:
        """Read back :meth:`to_dict`'s form (None stays None)."""
        if not data:
            return None
        return cls(float(data["value"]), float(data.get("error") or 0.0))


def rates_json(rates: dict[str, Rate | None]) -> dict[str, dict[str, float] | None]:
    """``{"traced": Rate, "uss": Rate}`` as JSON."""
    return {name: (rate.to_dict() if rate is not None else None) for name, rate in rates.items()}


@dataclass(frozen=True)
class Reading:
    """One point of the series: requests done since the baseline, and the two signals (and,
    where the agent reads them, the interpreter's allocated blocks)."""

    requests: int
    traced: int | None
    uss: int | None
    #: ``sys.getallocatedblocks()`` after ``gc.collect()``: read traced or not (None where the
    #: agent is not inside, or in results written before it existed)
    blocks: int | None = None
    #: when it was read (seconds since the epoch; ``--mprof`` timelines); not compared
    t: float | None = field(default_factory=time.time, compare=False)


@dataclass
class Fit:
    """One signal's growth: least-squares slope (bytes/request) with its standard error, the
    growth above the previous peak in the early and late halves of the rounds (bytes/request),
    and the judgement of that signal alone."""

    slope: float
    error: float
    early: float
    late: float
    total: int
    verdict: str

    def to_dict(self, digits: int = 2) -> dict[str, Any]:
        """JSON form: ``value`` and ``error`` in bytes per request, and the model's numbers
        (to ``digits`` decimals: blocks per request need more than bytes)."""
        return {"value": round(self.slope, digits), "error": round(self.error, digits),
                "early": round(self.early, digits), "late": round(self.late, digits),
                "total_bytes": self.total, "verdict": self.verdict}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Fit | None:
        """Read back :meth:`to_dict`'s form (None stays None)."""
        if not data:
            return None
        return cls(float(data["value"]), float(data.get("error") or 0.0), float(data.get("early") or 0.0),
                   float(data.get("late") or 0.0), int(data.get("total_bytes") or 0),
                   str(data.get("verdict") or "clean"))


@dataclass
class Judgement:
    """The verdict of a series and the numbers behind it."""

    verdict: str
    kind: str | None
    traced: Fit | None
    uss: Fit | None
    reason: str
    #: the allocated blocks' fit, in blocks (not bytes) per request; None where not read
    blocks: Fit | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``blocks``, where the agent read them: its ``value``, ``error``, ``early``
        and ``late`` are blocks per request, ``total_bytes`` is blocks)."""
        out = {"verdict": self.verdict, "kind": self.kind, "reason": self.reason,
               "traced": self.traced.to_dict() if self.traced else None,
               "uss": self.uss.to_dict() if self.uss else None}
        if self.blocks:
            out["blocks"] = self.blocks.to_dict(digits=4)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], route: dict[str, Any] | None = None) -> Judgement:
        """Read back :meth:`to_dict`'s form. A route's ``model`` written without the fits
        (or without a model at all) falls back to the route's verdict and bytes per request."""
        route = route or {}
        model = data or {}
        fits: dict[str, Fit | None] = {}
        for name in ("traced", "uss"):
            fit = Fit.from_dict(model.get(name))
            if fit is None:
                rate = Rate.from_dict((route.get("bytes_per_request") or {}).get(name))
                fit = None if rate is None else Fit(float(rate), rate.error, 0.0, 0.0, 0, "clean")
            fits[name] = fit
        return cls(verdict=str(model.get("verdict") or route["verdict"]),
                   kind=model.get("kind", route.get("kind")),
                   traced=fits["traced"], uss=fits["uss"],
                   reason=str(model.get("reason") or route.get("reason") or ""),
                   blocks=Fit.from_dict(model.get("blocks")))


@dataclass
class Site:
    """An allocation site that grew: the user's line, its traceback, growth per request."""

    file: str
    line: int
    bytes_per_request: float
    count_per_request: float
    size_diff: int
    count_diff: int
    traceback: list[dict[str, Any]] = field(default_factory=list)
    user: bool = True
    code: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form (traceback oldest frame first; the user's frame has ``"user": true``)."""
        return {"file": self.file, "line": self.line,
                "bytes_per_request": round(self.bytes_per_request, 2),
                "count_per_request": round(self.count_per_request, 4),
                "size_diff": self.size_diff, "count_diff": self.count_diff,
                "user_code": self.user, "code": self.code, "traceback": self.traceback}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Site:
        """Read back what :meth:`to_dict` wrote (the agent sends sites this way too)."""
        return cls(str(data["file"]), int(data["line"]), float(data["bytes_per_request"]),
                   float(data["count_per_request"]), int(data.get("size_diff", 0)),
                   int(data.get("count_diff", 0)), list(data.get("traceback") or []),
                   bool(data.get("user_code", True)), str(data.get("code", "")))


@dataclass
class Holder:
    """A container that grew, named from a root: ``module h.py, global _cache (dict, 3,000
    entries)``; ``chain`` is the path from the root, one step an item."""

    description: str
    chain: list[str]
    type: str = ""
    entries_before: int = 0
    entries: int = 0
    entries_per_request: float = 0.0
    #: ``roots`` (a root's container grew), ``referrers`` (found back from the objects),
    #: ``outside-python`` (held where no Python object refers: a thread's context, C code), or
    #: ``not-found`` (no object made at the site is visible to the garbage collector)
    source: str = "roots"
    #: one sentence more: who holds it when no Python object does, what was searched
    note: str = ""
    #: what bounds it: ``cap`` (with ``by``, ``bytes_per_entry``, ``ceiling_bytes``,
    #: ``requests_to_cap``) or ``timers`` (with ``due_first_s``, ``due_last_s``)
    bounds: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Holder:
        """Build from the agent's answer (unknown keys ignored)."""
        names = set(inspect.signature(cls).parameters)
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"description": self.description, "chain": list(self.chain), "type": self.type,
                "entries_before": self.entries_before, "entries": self.entries,
                "entries_per_request": round(self.entries_per_request, 4), "source": self.source,
                "note": self.note, "bounds": self.bounds}


@dataclass
class Judged:
    """What a route and a worker share: a judgement on a series, and what grew (the sites that
    allocated it, the types that grew, the objects that hold them; empty when clean)."""

    judgement: Judgement
    readings: list[Reading]
    sites: list[Site]
    types: list[dict[str, Any]]
    holders: list[Holder]

    @property
    def verdict(self) -> str:
        """``leak``, ``bounded`` or ``clean`` (the judge's); for a route, also ``inconclusive``
        or ``errors`` (:mod:`memprobe.hunt.evidence`)."""
        return self.judgement.verdict

    @property
    def kind(self) -> str | None:
        """``python``, ``native``, ``mixed``, ``retention`` (bounded: the allocators keep
        freed memory) or None."""
        return self.judgement.kind

    @property
    def bytes_per_request(self) -> dict[str, Rate | None]:
        """``{"traced": Rate, "uss": Rate}``: each a float with ``.error`` (None for a signal
        not read), to the hundredth of a byte as JSON keeps it, so that a result and the same
        result read back render alike."""
        j = self.judgement
        return {name: (Rate(round(f.slope, 2), round(f.error, 2)) if f else None)
                for name, f in (("traced", j.traced), ("uss", j.uss))}

    def series_dict(self) -> dict[str, list[Any]]:
        """The readings as JSON keeps them: parallel lists (``blocks`` only where read, ``time``
        where the readings have one: a file written before it was kept reads back, and is
        written again, without it)."""
        out: dict[str, list[Any]] = {"requests": [r.requests for r in self.readings],
                                     "traced": [r.traced for r in self.readings],
                                     "uss": [r.uss for r in self.readings]}
        if any(r.blocks is not None for r in self.readings):
            out["blocks"] = [r.blocks for r in self.readings]
        if any(r.t is not None for r in self.readings):
            out["time"] = [None if r.t is None else round(r.t, 3) for r in self.readings]
        return out


def readings_from(data: dict[str, Any]) -> list[Reading]:
    """The readings of a route's or a worker's ``series``."""
    series = data.get("series") or {}
    xs = list(series.get("requests") or [])
    traced = list(series.get("traced") or [None] * len(xs))
    uss = list(series.get("uss") or [None] * len(xs))
    blocks = list(series.get("blocks") or [None] * len(xs))
    times = list(series.get("time") or [None] * len(xs))  # written since --mprof
    return [Reading(int(x), t, u, b, when) for x, t, u, b, when in zip(xs, traced, uss, blocks, times)]


@dataclass
class WorkerResult(Judged):
    """One process of a server hunted worker by worker: its own series (requests it served,
    its traced heap, its USS), verdict, sites and holders. ``role`` is ``master`` (the process
    that starts the workers and serves nothing: read from outside only) or ``worker``;
    ``respawned`` says, for a worker that died during the route, which pid took its place (and
    for that one, which it replaced); their rounds are never mixed."""

    pid: int
    role: str
    #: requests this process served during the measured rounds
    requests: int = 0
    respawned: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``respawned`` only where it applies)."""
        out: dict[str, Any] = {
            "pid": self.pid, "role": self.role, "requests": self.requests,
            "verdict": self.verdict, "kind": self.kind,
            "bytes_per_request": rates_json(self.bytes_per_request),
            "reason": self.judgement.reason, "model": self.judgement.to_dict(),
            "series": self.series_dict(),
            "sites": [s.to_dict() for s in self.sites], "types": list(self.types),
            "holders": [h.to_dict() for h in self.holders],
        }
        if self.respawned is not None:
            out["respawned"] = dict(self.respawned)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkerResult:
        """Read back what :meth:`to_dict` wrote."""
        return cls(pid=int(data["pid"]), role=str(data.get("role") or "worker"),
                   judgement=Judgement.from_dict(data.get("model") or {}, data), readings=readings_from(data),
                   sites=[Site.from_dict(x) for x in data.get("sites") or []],
                   types=[dict(t) for t in data.get("types") or []],
                   holders=[Holder.from_dict(h) for h in data.get("holders") or []],
                   requests=int(data.get("requests") or 0), respawned=data.get("respawned"))


@dataclass
class RouteResult(Judged):
    """One route's hunt: the series, the verdict and what grew; for a server hunted worker by
    worker, the whole server's (traced heap summed over the workers, PSS summed over its
    processes, per request any of them served) and one :class:`WorkerResult` per process."""

    route: str
    load: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    workers: list[WorkerResult] = field(default_factory=list)
    #: what the outside signal (``uss`` in the series and rates) is: ``uss`` of the process, or
    #: ``pss`` summed over a server's processes (pages a master shares with its workers are
    #: counted once)
    memory: str = "uss"
    #: what glibc's malloc and pymalloc held after the rounds, in use and free, what
    #: ``malloc_trim(0)`` gave back, and ``explanation``: one sentence (None when not read)
    allocator: dict[str, Any] | None = None
    #: a native leak's lines, measured by RSS (memory_profiler's line profiler over the route's
    #: view): ``file``, ``line``, ``code``, ``bytes_per_request``, ``rss_bytes``, ``hits``,
    #: ``calls``, ``view``, ``source: "rss"``
    rss_lines: list[dict[str, Any]] = field(default_factory=list)
    #: per signal (``traced``, ``uss``), the smallest leak in B/request this route's readings
    #: could have seen (:func:`memprobe.hunt.sequential.sensitivity`); None for a signal not read
    sensitivity: dict[str, float | None] = field(default_factory=dict)
    #: why the route stopped: ``leak``, ``clean``, ``bounded`` (the evidence decided),
    #: ``max_requests``, ``time_limit`` (the maximum ended it), ``fixed`` (rounds x requests)
    stopped_because: str | None = None
    #: the judge's own verdict (``clean``) when the evidence made it ``inconclusive`` or
    #: ``errors`` (:mod:`memprobe.hunt.evidence`); None when the verdict is the judge's
    judged: str | None = None
    #: for an inconclusive route, the settings that would get the evidence (``max_seconds``,
    #: ``max_requests``, ``requests``: more of them; ``sensitivity``: the coarser target these
    #: readings reached)
    advice: dict[str, Any] = field(default_factory=dict)

    @property
    def memory_name(self) -> str:
        """``USS``, or ``PSS`` for a server's processes summed: how reports name ``uss``."""
        return memory_name(self.memory)

    @property
    def requests(self) -> int:
        """Requests measured after the baseline."""
        return self.readings[-1].requests if self.readings else 0

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the issue's keys plus the series and the model."""
        return {
            "route": self.route,
            "verdict": self.verdict,
            "kind": self.kind,
            "bytes_per_request": rates_json(self.bytes_per_request),
            "reason": self.judgement.reason,
            "model": self.judgement.to_dict(),
            "requests": self.requests,
            "series": self.series_dict(),
            "sites": [s.to_dict() for s in self.sites],
            "types": list(self.types),
            "holders": [h.to_dict() for h in self.holders],
            "load": dict(self.load),
            "duration_s": round(self.duration_s, 3),
            "timings_s": dict(self.timings_s),
            "notes": list(self.notes),
            "memory": self.memory,
            "workers": [w.to_dict() for w in self.workers],
            "allocator": self.allocator,
            # only where a native leak's lines were measured: a route that was not looked at
            # says why in its notes
            **({"rss_lines": [dict(x) for x in self.rss_lines]} if self.rss_lines else {}),
            # written by the sequential protocol (a file saved before it reads back without them)
            **({"sensitivity_b_per_request": {k: (round(v, 1) if v is not None and math.isfinite(v) else None)
                                              for k, v in self.sensitivity.items()}}
               if self.sensitivity else {}),
            **({"decided_after": self.requests, "stopped_because": self.stopped_because}
               if self.stopped_because else {}),
            **({"judged_verdict": self.judged} if self.judged else {}),
            **({"advice": dict(self.advice)} if self.advice else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RouteResult:
        """Read back what :meth:`to_dict` wrote."""
        return cls(route=str(data["route"]), judgement=Judgement.from_dict(data.get("model") or {}, data),
                   readings=readings_from(data), sites=[Site.from_dict(x) for x in data.get("sites") or []],
                   types=[dict(t) for t in data.get("types") or []],
                   holders=[Holder.from_dict(h) for h in data.get("holders") or []],
                   load=dict(data.get("load") or {}), duration_s=float(data.get("duration_s") or 0.0),
                   notes=[str(n) for n in data.get("notes") or []],
                   timings_s=dict(data.get("timings_s") or {}),
                   workers=[WorkerResult.from_dict(w) for w in data.get("workers") or []],
                   memory=str(data.get("memory") or "uss"), allocator=data.get("allocator"),
                   rss_lines=[dict(x) for x in data.get("rss_lines") or []],
                   sensitivity=dict(data.get("sensitivity_b_per_request") or {}),
                   stopped_because=data.get("stopped_because"), judged=data.get("judged_verdict"),
                   advice=dict(data.get("advice") or {}))


@dataclass
class HuntResult:
    """A whole hunt: settings, one :class:`RouteResult` per route, the overall verdict."""

    target: str
    settings: HuntSettings
    routes: list[RouteResult] = field(default_factory=list)
    app_kind: str | None = None
    framework: str | None = None
    outside_only: bool = False
    duration_s: float = 0.0
    startup_s: float = 0.0
    error: str | None = None
    #: stopped by Ctrl-C or SIGTERM: the routes finished (and the current one's rounds, judged)
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)
    kind: str = "hunt"
    #: when and where it was measured (``started``, ``machine``, the version that wrote it)
    envelope: Envelope = field(default_factory=Envelope)

    @property
    def worst(self) -> RouteResult | None:
        """The route with the worst verdict (leak > bounded > clean), biggest growth first."""
        if not self.routes:
            return None
        return max(self.routes, key=lambda r: (_ORDER.get(r.verdict, 0), _growth(r)))

    @property
    def verdict(self) -> str | None:
        """The worst verdict over the routes (None when no route finished)."""
        worst = self.worst
        return worst.verdict if worst else None

    @property
    def leak_kind(self) -> str | None:
        """``python``/``native``/``mixed`` of the worst route."""
        worst = self.worst
        return worst.kind if worst else None

    @property
    def bytes_per_request(self) -> dict[str, Rate | None]:
        """The worst route's ``{"traced": Rate, "uss": Rate}`` (floats with ``.error``)."""
        worst = self.worst
        return worst.bytes_per_request if worst else {"traced": None, "uss": None}

    @property
    def leaked(self) -> bool:
        """Whether any route leaks (the CLI exits 1)."""
        return any(r.verdict == "leak" for r in self.routes)

    @property
    def exit_code(self) -> ExitCode:
        """What the CLI exits with: 1 when a route leaks; else 6 when a route answered only
        errors; else 5 when a route is inconclusive; else 0."""
        verdicts = {r.verdict for r in self.routes}
        for verdict, code in (("leak", ExitCode.FAILED), ("errors", ExitCode.ERRORS),
                              ("inconclusive", ExitCode.INCONCLUSIVE)):
            if verdict in verdicts:
                return code
        return ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the envelope, then the worst route's keys at the top level, and
        ``routes[]`` with each route."""
        worst = self.worst
        return {
            **self.envelope.to_dict(self.kind, self.settings.to_dict(), self.duration_s),
            "target": self.target,
            "app_kind": self.app_kind,
            "framework": self.framework,
            "verdict": self.verdict,
            "kind": self.leak_kind,
            "leak_kind": self.leak_kind,
            "bytes_per_request": rates_json(worst.bytes_per_request) if worst else None,
            "route": worst.route if worst else None,
            "sites": [s.to_dict() for s in worst.sites] if worst else [],
            "types": list(worst.types) if worst else [],
            "holders": [h.to_dict() for h in worst.holders] if worst else [],
            "routes": [r.to_dict() for r in self.routes],
            "outside_only": self.outside_only,
            "startup_s": round(self.startup_s, 3),
            "error": self.error,
            "interrupted": self.interrupted,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HuntResult:
        """Read back what :meth:`to_dict` wrote (the top-level verdict and figures follow from
        the routes)."""
        return cls(target=str(data["target"]), settings=HuntSettings.from_dict(data.get("settings") or {}),
                   routes=[RouteResult.from_dict(r) for r in data["routes"]],
                   app_kind=data.get("app_kind"), framework=data.get("framework"),
                   outside_only=bool(data.get("outside_only")),
                   duration_s=float(data.get("duration_s") or 0.0),
                   startup_s=float(data.get("startup_s") or 0.0), error=data.get("error"),
                   interrupted=bool(data.get("interrupted")), notes=[str(n) for n in data.get("notes") or []],
                   envelope=Envelope.from_dict(data))

    def summary(self) -> str:
        """One line: ``leak (python) on /list: +36.1 ± 0.4 B/request traced, ... (3 routes)``."""
        if self.error and not self.routes:
            return f"hunt {self.target}: error: {self.error}"
        worst = self.worst
        if worst is None:
            return f"hunt {self.target}: no route measured"
        j = worst.judgement
        sig = []
        if j.traced:
            sig.append(f"{format_rate(j.traced.slope, j.traced.error)} B/request traced")
        if j.uss:
            sig.append(f"{format_rate(j.uss.slope, j.uss.error)} B/request {worst.memory_name}")
        kind = f" ({worst.kind})" if worst.kind and worst.verdict == "leak" else ""
        where = f" on {worst.route}" if len(self.routes) > 1 or worst.verdict != "clean" else ""
        leaks = sum(r.verdict == "leak" for r in self.routes)
        tail = f"; {leaks} of {len(self.routes)} routes leak" if len(self.routes) > 1 else ""
        err = f"; stopped: {self.error}" if self.error else ""
        return f"{worst.verdict}{kind}{where}: {', '.join(sig)}{tail}{err}"


def _growth(route: RouteResult) -> float:
    j = route.judgement
    return max(j.traced.slope if j.traced else 0.0, j.uss.slope if j.uss else 0.0)


class HuntFailed(MemprobeError):
    """A hunt that stopped on ``cause``, whose message, exit code and log it carries, with what
    was measured before in ``partial`` (every finished route, judged): nothing measured is lost."""

    def __init__(self, cause: MemprobeError, partial: HuntResult) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.partial = partial
        self.exit_code = cause.exit_code
        self.log_tail = cause.log_tail


class HuntInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during a hunt, with what was measured in ``partial`` (marked
    ``interrupted``; the route under way judged on its finished rounds)."""

    def __init__(self, partial: HuntResult) -> None:
        super().__init__()
        self.partial = partial
