"""Two saved runs of one kind side by side: what a change did to memory.

:func:`diff_runs` lines the runs up (frameworks by name, routes by path, checklist items by rule,
findings by rule, file and symbol) and returns a :class:`RunDiff`, a result of kind ``diff``
whose ``to_dict()`` writes the envelope every result has, both runs and the table of changes, and
whose ``from_dict()`` reads that back (``memprobe report diff.json``). The renderers live in
:mod:`memprobe.render.diff`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from memprobe.errors import UsageError
from memprobe.http.load import LoadResult
from memprobe.results.check import CheckResult, Finding
from memprobe.results.compare import CompareResult, FrameworkResult
from memprobe.results.envelope import Envelope
from memprobe.results.hammer import HammerResult
from memprobe.results.hunt import HuntResult, RouteResult
from memprobe.units import format_bytes, format_rate

#: a figure's unit -> (how to show a value, whether a lower value is better)
UNITS: dict[str, tuple[Callable[[float], str], bool | None]] = {
    "bytes": (lambda v: format_bytes(v), True),
    "growth": (lambda v: format_bytes(v, signed=True), True),
    "B/request": (lambda v: f"{format_rate(v)} B", True),
    "req/s": (lambda v: f"{v:.0f}", False),
    "ms": (lambda v: f"{v:.2f}", True),
    "count": (lambda v: f"{v:.0f}", True),
    "text": (str, None),
}
#: A change smaller than this share of the old value is shown, not called better or worse.
NOISE = 0.02


def change(label: str, unit: str, a: Any, b: Any, a_text: str = "", b_text: str = "") -> dict[str, Any]:
    """One figure of both runs: values, their display, the change and whether it is better."""
    show, lower_better = UNITS[unit]
    row: dict[str, Any] = {"label": label, "unit": unit, "a": a, "b": b,
                           "a_text": a_text or ("-" if a is None else show(a)),
                           "b_text": b_text or ("-" if b is None else show(b)),
                           "change": None, "change_pct": None, "direction": "same"}
    if unit == "text":
        row["direction"] = "same" if a == b else "changed"
        return row
    if a is None or b is None:
        row["direction"] = "changed" if a != b else "same"
        return row
    d = b - a
    row["change"] = d
    row["change_pct"] = round(100.0 * d / abs(a), 2) if a else None
    big = abs(d) > NOISE * abs(a) if a else d != 0
    if big and lower_better is not None:
        row["direction"] = "better" if (d < 0) == lower_better else "worse"
    elif big:
        row["direction"] = "changed"
    return row


@dataclass
class RunDiff:
    """Two results of one kind; ``labels`` name them in the report (file names)."""

    a: Any
    b: Any
    labels: tuple[str, str] = ("A", "B")
    envelope: Envelope = field(default_factory=Envelope)
    kind: str = "diff"

    def to_dict(self) -> dict[str, Any]:
        """The envelope, both runs' JSON and the lined-up changes."""
        return {**self.envelope.to_dict("diff", {}, None),
                "of": self.a.kind, "labels": list(self.labels),
                "sections": self.sections(), "a": self.a.to_dict(), "b": self.b.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunDiff:
        """Read back :meth:`to_dict`'s form (or a diff written before it had an envelope): the
        runs are read as their own kinds, and the changes lined up again from them."""
        runs = []
        for side in ("a", "b"):
            run = data[side]
            kind = run.get("result") or run.get("kind")
            if kind not in COMPARABLE:
                raise ValueError(f"run {side} is a {kind!r} result, not one of {', '.join(COMPARABLE)}")
            runs.append(COMPARABLE[kind](run))
        labels = data.get("labels") or ("A", "B")
        return cls(runs[0], runs[1], (str(labels[0]), str(labels[1])), envelope=Envelope.from_dict(data))

    def sections(self) -> list[dict[str, Any]]:
        """The lined-up figures: one section per table, rows of figures of A and B."""
        return _SECTIONS[self.a.kind](self.a, self.b)


def diff_runs(a: Any, b: Any, labels: tuple[str, str] = ("A", "B")) -> RunDiff:
    """A :class:`RunDiff` of two results; they must be of one kind."""
    if a.kind != b.kind:
        raise UsageError(f"cannot compare a {a.kind} run with a {b.kind} run: give two {a.kind} reports")
    if a.kind not in _SECTIONS:
        raise UsageError(f"no side-by-side view for {a.kind} results")
    return RunDiff(a, b, labels)


def _section(title: str, key: str, names: list[str], rows: dict[str, list[dict[str, Any]]],
             notes: list[str] | None = None) -> dict[str, Any]:
    return {"title": title, "key": key, "rows": [{"name": n, "figures": rows[n]} for n in names],
            "notes": notes or []}


def _union(a: list[str], b: list[str]) -> list[str]:
    return list(dict.fromkeys(a + b))


def _after(row: FrameworkResult | None, field: str) -> Any:
    fig = row.figures if row is not None else None
    return getattr(fig.after, field) if fig is not None and fig.after is not None else None


def _change(row: FrameworkResult | None, field: str) -> Any:
    fig = row.figures if row is not None else None
    return (fig.change or {}).get(field) if fig is not None else None


def _load(row: FrameworkResult | None) -> LoadResult | None:
    fig = row.figures if row is not None else None
    return fig.load if fig is not None else None


def _latency(load: LoadResult | None, key: str) -> float | None:
    return load.latency_ms.get(key) if load is not None else None


def _compare(a: CompareResult, b: CompareResult) -> list[dict[str, Any]]:
    ra = {r.name: r for r in a.results}
    rb = {r.name: r for r in b.results}
    names = _union(list(ra), list(rb))
    memory: dict[str, list[dict[str, Any]]] = {}
    load: dict[str, list[dict[str, Any]]] = {}
    for n in names:
        x, y = ra.get(n), rb.get(n)
        memory[n] = [change("status", "text", x.status if x else None, y.status if y else None)]
        for f in ("rss", "uss", "pss"):
            memory[n].append(change(f"{f.upper()} after", "bytes", _after(x, f), _after(y, f)))
        for f in ("rss", "uss"):
            memory[n].append(change(f"{f.upper()} growth", "growth", _change(x, f), _change(y, f)))
        lx, ly = _load(x), _load(y)
        load[n] = [change("req/s", "req/s", lx.throughput_rps if lx else None,
                          ly.throughput_rps if ly else None),
                   change("p50 ms", "ms", _latency(lx, "p50"), _latency(ly, "p50")),
                   change("p99 ms", "ms", _latency(lx, "p99"), _latency(ly, "p99")),
                   change("failed", "count", lx.failed if lx else None, ly.failed if ly else None)]
    notes = []
    sa, sb = a.settings.to_dict(), b.settings.to_dict()
    differ = [k for k in _union(list(sa), list(sb)) if sa.get(k) != sb.get(k)]
    if differ:
        notes.append("settings differ: " + ", ".join(f"{k} {sa.get(k)} → {sb.get(k)}" for k in differ))
    return [_section("Memory per framework", "framework", names, memory, notes),
            _section("Load per framework", "framework", names, load)]


def _bpr(route: RouteResult | None, signal: str) -> tuple[float | None, str]:
    rate = route.bytes_per_request.get(signal) if route is not None else None
    if rate is None:
        return None, ""
    return round(float(rate), 2), f"{format_rate(rate)} B"


def _top(route: RouteResult | None, key: str) -> str | None:
    if route is None or route.verdict == "clean":
        return None
    if key == "holders":
        return route.holders[0].description if route.holders else None
    if not route.sites:
        return None
    site = route.sites[0]
    return f"{site.file.rsplit('/', 1)[-1]}:{site.line}"


def _hunt(a: HuntResult, b: HuntResult) -> list[dict[str, Any]]:
    ra = {r.route: r for r in a.routes}
    rb = {r.route: r for r in b.routes}
    names = _union(list(ra), list(rb))
    rows: dict[str, list[dict[str, Any]]] = {}
    for n in names:
        x, y = ra.get(n), rb.get(n)
        figures = [change("verdict", "text", x.verdict if x else None, y.verdict if y else None)]
        for signal, label in (("traced", "traced B/request"), ("uss", "USS B/request")):
            (va, ta), (vb, tb) = _bpr(x, signal), _bpr(y, signal)
            figures.append(change(label, "B/request", va, vb, ta, tb))
        figures.append(change("top site", "text", _top(x, "sites"), _top(y, "sites")))
        figures.append(change("held by", "text", _top(x, "holders"), _top(y, "holders")))
        rows[n] = figures
    notes = [] if a.target == b.target else [f"targets differ: {a.target} → {b.target}"]
    return [_section("Per route", "route", names, rows, notes)]


def _finding_key(f: Finding) -> str:
    # Lines move when code is edited; the rule, file and symbol say which finding it is.
    return f"{f.rule} {f.file} {f.symbol or f.snippet or f.line}"


def _check(a: CheckResult, b: CheckResult) -> list[dict[str, Any]]:
    ca = {c.rule: c for c in a.checklist}
    cb = {c.rule: c for c in b.checklist}
    names = _union(list(ca), list(cb))
    rows = {}
    for n in names:
        x, y = ca.get(n), cb.get(n)
        rows[n] = [change("status", "text", x.status if x else None, y.status if y else None),
                   change("findings", "count", x.findings if x else None, y.findings if y else None)]
    fa = {_finding_key(f): f for f in a.findings}
    fb = {_finding_key(f): f for f in b.findings}
    notes = [f"fixed: {f.rule} {f.file}:{f.line} {f.message}" for k, f in fa.items() if k not in fb]
    notes += [f"new: {f.rule} {f.file}:{f.line} {f.message}" for k, f in fb.items() if k not in fa]
    return [_section("Checklist", "rule", names, rows, notes)]


def _hammer(a: HammerResult, b: HammerResult) -> list[dict[str, Any]]:
    la, lb = a.load, b.load
    da, db = a.delta or {}, b.delta or {}
    name = la.url or "server"
    rows = {name: [change("req/s", "req/s", la.throughput_rps, lb.throughput_rps),
                   change("p50 ms", "ms", _latency(la, "p50"), _latency(lb, "p50")),
                   change("p99 ms", "ms", _latency(la, "p99"), _latency(lb, "p99")),
                   change("failed", "count", la.failed, lb.failed),
                   change("RSS growth", "growth", da.get("rss"), db.get("rss")),
                   change("USS growth", "growth", da.get("uss"), db.get("uss"))]}
    return [_section("Load and memory", "server", [name], rows)]


_SECTIONS: dict[str, Callable[[Any, Any], list[dict[str, Any]]]] = {
    "compare": _compare, "hunt": _hunt, "check": _check, "hammer": _hammer}

#: the kinds two runs of which can be lined up -> how a run of the kind is read back
COMPARABLE: dict[str, Callable[[dict[str, Any]], Any]] = {
    "compare": CompareResult.from_dict, "hunt": HuntResult.from_dict, "check": CheckResult.from_dict,
    "hammer": HammerResult.from_dict}
