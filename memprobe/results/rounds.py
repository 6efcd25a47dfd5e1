"""Repeated rounds of one measurement folded into one row: medians, and the spread around them.

Works on typed rounds (:class:`Round`, defined here with its rules), with a rule per field:

- memory readings (``before``, ``after``) and the change (``delta``, ``delta_pct``): the
  median of each field over the rounds that read it, in whole bytes (``round``, not a
  truncation); :func:`missing` names the figures some rounds lacked;
- request counts: ``sent`` and ``ok`` are medians and ``failed = sent - ok``, so that a row
  of medians still adds up; ``timeouts``, each error and each status: medians;
- throughput, latency percentiles, durations, ``ready_s``: medians;
- per request kind (``steps``) and totals per role: the median of each number;
- what names a round rather than measures it (pid, url, the sampled series, the processes
  seen): the first round's, with every pid in the row's ``pids``.
"""
from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

from memprobe.http.load import LoadResult
from memprobe.process.memory import FIELDS, MemoryReading, TreeReading
from memprobe.results.readings import delta, delta_pct, reading_dict, reading_from

#: spread key -> how to read it from a round

@dataclass
class Round:
    """One start-hammer-stop of one framework (or, in a row of several rounds, their medians)."""

    pid: int | None = None
    url: str = ""
    ready_s: float | None = None
    before: MemoryReading | None = None
    after: MemoryReading | None = None
    load: LoadResult | None = None
    samples: dict[str, Any] | None = None
    #: per request kind, when a scenario ran: JSON objects (name, requests, latency, memory after)
    steps: list[dict[str, Any]] | None = None
    workers: int | None = None
    #: production mode: the master and each worker (pid, role, before, after, delta)
    processes: list[dict[str, Any]] | None = None
    memory_by_role: dict[str, Any] | None = None
    #: the change; None: ``after - before`` (a row of medians holds the median change)
    delta: dict[str, int | None] | None = None
    delta_pct: dict[str, float | None] | None = None
    #: while measuring in production mode: the trees read and the roles seen (the runner turns
    #: them into ``processes``)
    tree_before: TreeReading | None = None
    tree_after: TreeReading | None = None
    roles: dict[int, str] = field(default_factory=dict)

    @property
    def change(self) -> dict[str, int | None] | None:
        """The memory change (bytes per field)."""
        return self.delta if self.delta is not None else delta(self.before, self.after)

    @property
    def change_pct(self) -> dict[str, float | None] | None:
        """The memory change in percent of ``before``."""
        return self.delta_pct if self.delta_pct is not None else delta_pct(self.before, self.after)

    def to_dict(self) -> dict[str, Any]:
        """JSON form; the load's keys sit at the top level, as in a result row."""
        out: dict[str, Any] = {
            "pid": self.pid,
            "url": self.url,
            "ready_s": None if self.ready_s is None else round(self.ready_s, 3),
            "before": reading_dict(self.before),
            "after": reading_dict(self.after),
            "delta": self.change,
            "delta_pct": self.change_pct,
        }
        if self.load is not None:
            out.update(requests=self.load.requests_dict(), throughput_rps=self.load.throughput_rps,
                       latency_ms=dict(self.load.latency_ms), duration_s=self.load.duration_s,
                       connections_opened=self.load.connections_opened, engine=self.load.engine,
                       engine_workers=self.load.engine_workers)
        out["samples"] = self.samples
        if self.steps is not None:
            out["steps"] = [dict(s) for s in self.steps]
        if self.processes is not None:
            out["workers"] = self.workers
            out["processes"] = self.processes
            out["memory_by_role"] = self.memory_by_role
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Round:
        """Read back what :meth:`to_dict` wrote (a round, or a row's figures)."""
        return cls(pid=data.get("pid"), url=str(data.get("url") or ""), ready_s=data.get("ready_s"),
                   before=reading_from(data.get("before")), after=reading_from(data.get("after")),
                   load=LoadResult.from_dict(data) if data.get("requests") else None,
                   samples=data.get("samples"),
                   steps=None if data.get("steps") is None else [dict(s) for s in data["steps"]],
                   workers=data.get("workers"), processes=data.get("processes"),
                   memory_by_role=data.get("memory_by_role"), delta=data.get("delta"),
                   delta_pct=data.get("delta_pct"))


_SPREAD: dict[str, Callable[[Round], float | None]] = {
    "rss_after": lambda r: r.after.rss if r.after else None,
    "uss_after": lambda r: r.after.uss if r.after else None,
    "uss_delta": lambda r: (r.change or {}).get("uss"),
    "rss_delta": lambda r: (r.change or {}).get("rss"),
    "throughput_rps": lambda r: r.load.throughput_rps if r.load else None,
    "p50_ms": lambda r: r.load.latency_ms.get("p50") if r.load else None,
    "p99_ms": lambda r: r.load.latency_ms.get("p99") if r.load else None,
}


def _median(values: Sequence[float | None], digits: int | None = None) -> Any:
    """The median of the known values; whole numbers when ``digits`` is None (None when none
    is known)."""
    known = [v for v in values if v is not None]
    if not known:
        return None
    m = statistics.median(known)
    return int(round(m)) if digits is None else round(m, digits)


def spread(rounds: Sequence[Round]) -> dict[str, dict[str, float]]:
    """Min, max and standard deviation of each key figure over the rounds."""
    out = {}
    for name, pick in _SPREAD.items():
        values = [v for v in (pick(r) for r in rounds) if v is not None]
        if values:
            out[name] = {"min": min(values), "max": max(values), "stdev": round(statistics.pstdev(values), 3)}
    return out


def _reading(readings: Sequence[MemoryReading | None]) -> MemoryReading | None:
    present = [r for r in readings if r is not None]
    if not present:
        return None
    values = {k: _median([getattr(r, k) for r in present]) for k in FIELDS}
    return MemoryReading(rss=values["rss"] or 0, vms=values["vms"] or 0, uss=values["uss"],
                         pss=values["pss"], swap=values["swap"])


def _fields(dicts: Sequence[dict[str, Any] | None], digits: int | None = None) -> dict[str, Any] | None:
    present = [d for d in dicts if d is not None]
    if not present:
        return None
    return {k: _median([d.get(k) for d in present], digits) for k in FIELDS}


def _counts(dicts: Sequence[dict[str, int]]) -> dict[str, int]:
    keys = list(dict.fromkeys(k for d in dicts for k in d))
    medians = {k: _median([d.get(k, 0) for d in dicts]) for k in keys}
    return {k: v for k, v in medians.items() if v}


def _load(loads: Sequence[LoadResult | None]) -> LoadResult | None:
    present = [x for x in loads if x is not None]
    if not present:
        return None
    first = present[0]
    sent = _median([x.sent for x in present])
    ok = min(sent, _median([x.ok for x in present]))
    latency_keys = list(dict.fromkeys(k for x in present for k in x.latency_ms))
    return LoadResult(
        url=first.url, mode=first.mode, concurrency=first.concurrency, timeout_s=first.timeout_s,
        sent=sent, ok=ok, failed=sent - ok, timeouts=min(sent - ok, _median([x.timeouts for x in present])),
        errors=_counts([x.errors for x in present]),
        status_counts=_counts([x.status_counts for x in present]),
        duration_s=_median([x.duration_s for x in present], 4),
        connections_opened=_median([x.connections_opened for x in present]),
        rate=_median([x.throughput_rps for x in present], 2),
        percentiles={k: _median([x.latency_ms.get(k) for x in present], 3) for k in latency_keys},
        engine=first.engine, engine_workers=first.engine_workers)


def _tree(values: Sequence[Any]) -> Any:
    """The median of each number of JSON objects of one shape (steps, totals per role);
    anything else from the first."""
    first = values[0]
    if isinstance(first, dict):
        keys = list(dict.fromkeys(k for v in values if isinstance(v, dict) for k in v))
        return {k: _tree([v.get(k) for v in values if isinstance(v, dict)]) for k in keys}
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if numbers and len(numbers) == len([v for v in values if v is not None]):
        whole = all(isinstance(v, int) for v in numbers)
        return _median(numbers, None if whole else 3)
    return first


def median_round(rounds: Sequence[Round]) -> Round:
    """One :class:`Round` of medians (see the module's rules)."""
    first = rounds[0]
    steps = None
    if first.steps is not None:
        steps = [_tree([r.steps[i] for r in rounds if r.steps is not None and len(r.steps) > i])
                 for i in range(len(first.steps))]
    by_role = [r.memory_by_role for r in rounds if r.memory_by_role is not None]
    return Round(
        pid=first.pid, url=first.url, ready_s=_median([r.ready_s for r in rounds], 3),
        before=_reading([r.before for r in rounds]), after=_reading([r.after for r in rounds]),
        load=_load([r.load for r in rounds]), samples=first.samples, steps=steps,
        workers=_median([r.workers for r in rounds]), processes=first.processes,
        memory_by_role=_tree(by_role) if by_role else None,
        delta=_fields([r.change for r in rounds]), delta_pct=_fields([r.change_pct for r in rounds], 3))


def missing(rounds: Sequence[Round]) -> list[str]:
    """The figures some rounds lacked (``after.uss: round 2 of 3``): their medians are over the
    rounds that had them."""
    out: list[str] = []

    def gap(label: str, absent: list[int], among: int) -> None:
        if absent and len(absent) < among:
            which = ", ".join(str(i) for i in absent)
            out.append(f"{label}: round{'s' if len(absent) > 1 else ''} {which} of {len(rounds)}")

    gap("requests", [i + 1 for i, r in enumerate(rounds) if r.load is None], len(rounds))
    for key in ("before", "after"):
        readings = [(i + 1, getattr(r, key)) for i, r in enumerate(rounds)]
        gap(key, [i for i, m in readings if m is None], len(rounds))
        present = [(i, m) for i, m in readings if m is not None]
        for name in FIELDS:
            gap(f"{key}.{name}", [i for i, m in present if getattr(m, name) is None], len(present))
    return out
