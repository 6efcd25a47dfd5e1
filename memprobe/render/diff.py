"""Two saved runs of the same kind side by side: what a change did to memory.

:func:`diff_runs` lines the runs up (frameworks by name, routes by path, checklist items by rule,
findings by rule, file and symbol) and returns a :class:`RunDiff`, a result of kind ``diff``
whose ``to_dict()`` holds both runs and the table of changes; the text, Markdown and HTML
renderers read only that dict.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from memprobe.errors import UsageError
from memprobe.render import renders
from memprobe.units import format_bytes

#: a figure's unit -> (how to show a value, whether a lower value is better)
UNITS: dict[str, tuple[Callable[[float], str], bool | None]] = {
    "bytes": (lambda v: format_bytes(v), True),
    "growth": (lambda v: format_bytes(v, signed=True), True),
    "B/request": (lambda v: f"{v:+.1f} B", True),
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


def change_text(row: dict[str, Any]) -> str:
    """``+1.2 MiB (+5.0 %)``, ``leak → clean``, or ``-``."""
    if row["unit"] == "text":
        return f"{row['a_text']} → {row['b_text']}" if row["a"] != row["b"] else "same"
    if row["change"] is None:
        return "-"
    unit = "growth" if row["unit"] == "bytes" else row["unit"]
    digits = {"ms": 2}.get(unit, 0)
    text = UNITS[unit][0](row["change"]) if unit in ("growth", "B/request") else f"{row['change']:+.{digits}f}"
    pct = f" ({row['change_pct']:+.1f} %)" if row["change_pct"] is not None else ""
    return text + pct


@dataclass
class RunDiff:
    """Two results of one kind; ``labels`` name them in the report (file names)."""

    a: Any
    b: Any
    labels: tuple[str, str] = ("A", "B")
    kind: str = "diff"

    def to_dict(self) -> dict[str, Any]:
        """Both runs' JSON and the lined-up changes."""
        da, db = self.a.to_dict(), self.b.to_dict()
        return {"result": "diff", "of": self.a.kind, "labels": list(self.labels),
                "sections": _SECTIONS[self.a.kind](da, db), "a": da, "b": db}


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


def _compare(da: dict[str, Any], db: dict[str, Any]) -> list[dict[str, Any]]:
    ra = {r["framework"]: r for r in da.get("results") or []}
    rb = {r["framework"]: r for r in db.get("results") or []}
    names = _union(list(ra), list(rb))
    memory: dict[str, list[dict[str, Any]]] = {}
    load: dict[str, list[dict[str, Any]]] = {}
    for n in names:
        x, y = ra.get(n) or {}, rb.get(n) or {}

        def get(row: dict[str, Any], *path: str) -> Any:
            for p in path:
                row = (row or {}).get(p)  # type: ignore[assignment]
            return row

        memory[n] = [change("status", "text", x.get("status"), y.get("status"))]
        for f in ("rss", "uss", "pss"):
            memory[n].append(change(f"{f.upper()} after", "bytes", get(x, "after", f), get(y, "after", f)))
        for f in ("rss", "uss"):
            memory[n].append(change(f"{f.upper()} growth", "growth", get(x, "delta", f), get(y, "delta", f)))
        load[n] = [change("req/s", "req/s", x.get("throughput_rps"), y.get("throughput_rps")),
                   change("p50 ms", "ms", get(x, "latency_ms", "p50"), get(y, "latency_ms", "p50")),
                   change("p99 ms", "ms", get(x, "latency_ms", "p99"), get(y, "latency_ms", "p99")),
                   change("failed", "count", get(x, "requests", "failed"), get(y, "requests", "failed"))]
    notes = []
    sa, sb = da.get("settings") or {}, db.get("settings") or {}
    differ = [k for k in _union(list(sa), list(sb)) if sa.get(k) != sb.get(k)]
    if differ:
        notes.append("settings differ: " + ", ".join(f"{k} {sa.get(k)} → {sb.get(k)}" for k in differ))
    return [_section("Memory per framework", "framework", names, memory, notes),
            _section("Load per framework", "framework", names, load)]


def _bpr(route: dict[str, Any], signal: str) -> tuple[float | None, str]:
    s = (route.get("bytes_per_request") or {}).get(signal)
    if not s:
        return None, ""
    return s["value"], f"{s['value']:+.1f} ± {s['error']:.1f} B"


def _top(route: dict[str, Any], key: str) -> str | None:
    items = route.get(key) or []
    if not items or route.get("verdict") == "clean":
        return None
    first = items[0]
    if key == "holders":
        return first.get("description")
    return f"{first.get('file', '?').rsplit('/', 1)[-1]}:{first.get('line')}"


def _hunt(da: dict[str, Any], db: dict[str, Any]) -> list[dict[str, Any]]:
    ra = {r["route"]: r for r in da.get("routes") or []}
    rb = {r["route"]: r for r in db.get("routes") or []}
    names = _union(list(ra), list(rb))
    rows: dict[str, list[dict[str, Any]]] = {}
    for n in names:
        x, y = ra.get(n) or {}, rb.get(n) or {}
        figures = [change("verdict", "text", x.get("verdict"), y.get("verdict"))]
        for signal, label in (("traced", "traced B/request"), ("uss", "USS B/request")):
            (va, ta), (vb, tb) = _bpr(x, signal), _bpr(y, signal)
            figures.append(change(label, "B/request", va, vb, ta, tb))
        figures.append(change("top site", "text", _top(x, "sites"), _top(y, "sites")))
        figures.append(change("held by", "text", _top(x, "holders"), _top(y, "holders")))
        rows[n] = figures
    notes = [] if da.get("target") == db.get("target") else [
        f"targets differ: {da.get('target')} → {db.get('target')}"]
    return [_section("Per route", "route", names, rows, notes)]


def _finding_key(f: dict[str, Any]) -> str:
    # Lines move when code is edited; the rule, file and symbol say which finding it is.
    return f"{f.get('rule')} {f.get('file')} {f.get('symbol') or f.get('snippet') or f.get('line')}"


def _check(da: dict[str, Any], db: dict[str, Any]) -> list[dict[str, Any]]:
    ca = {c["rule"]: c for c in da.get("checklist") or []}
    cb = {c["rule"]: c for c in db.get("checklist") or []}
    names = _union(list(ca), list(cb))
    rows = {n: [change("status", "text", (ca.get(n) or {}).get("status"), (cb.get(n) or {}).get("status")),
                change("findings", "count", (ca.get(n) or {}).get("findings"), (cb.get(n) or {}).get("findings"))]
            for n in names}
    fa = {_finding_key(f): f for f in da.get("findings") or []}
    fb = {_finding_key(f): f for f in db.get("findings") or []}
    notes = [f"fixed: {f['rule']} {f['file']}:{f['line']} {f['message']}" for k, f in fa.items() if k not in fb]
    notes += [f"new: {f['rule']} {f['file']}:{f['line']} {f['message']}" for k, f in fb.items() if k not in fa]
    return [_section("Checklist", "rule", names, rows, notes)]


def _hammer(da: dict[str, Any], db: dict[str, Any]) -> list[dict[str, Any]]:
    def get(d: dict[str, Any], *path: str) -> Any:
        for p in path:
            d = (d or {}).get(p)  # type: ignore[assignment]
        return d

    name = da.get("url") or "server"
    rows = {name: [change("req/s", "req/s", da.get("throughput_rps"), db.get("throughput_rps")),
                   change("p50 ms", "ms", get(da, "latency_ms", "p50"), get(db, "latency_ms", "p50")),
                   change("p99 ms", "ms", get(da, "latency_ms", "p99"), get(db, "latency_ms", "p99")),
                   change("failed", "count", get(da, "requests", "failed"), get(db, "requests", "failed")),
                   change("RSS growth", "growth", get(da, "delta", "rss"), get(db, "delta", "rss")),
                   change("USS growth", "growth", get(da, "delta", "uss"), get(db, "delta", "uss"))]}
    return [_section("Load and memory", "server", [name], rows)]


_SECTIONS: dict[str, Callable[[dict[str, Any], dict[str, Any]], list[dict[str, Any]]]] = {
    "compare": _compare, "hunt": _hunt, "check": _check, "hammer": _hammer}


def highlights(data: dict[str, Any]) -> list[str]:
    """The changes worth a line: verdicts and statuses that moved, figures that got worse or
    better beyond noise."""
    out = []
    for section in data["sections"]:
        for row in section["rows"]:
            for fig in row["figures"]:
                if fig["label"] in ("status", "verdict") and (fig["a"] is None or fig["b"] is None):
                    if fig["a"] != fig["b"]:
                        out.append(f"{row['name']}: only in {data['labels'][fig['a'] is None]}")
                    break
                if fig["direction"] in ("better", "worse") or (fig["unit"] == "text" and fig["direction"] == "changed"
                                                               and fig["label"] in ("status", "verdict")):
                    word = f" ({fig['direction']})" if fig["direction"] in ("better", "worse") else ""
                    out.append(f"{row['name']}: {fig['label']} {fig['a_text']} → {fig['b_text']}{word}")
    return out


@renders("text", "diff")
def text(result: Any, color: bool = False, width: int = 140) -> str:
    """One table per section: each figure of run A, run B and the change."""
    from rich.table import Table
    from rich.text import Text

    from memprobe.render.terminal import to_text

    data = result.to_dict()
    la, lb = data["labels"]
    style = {"better": "green", "worse": "red", "changed": "yellow", "same": ""}
    parts: list[Any] = [Text(f"memprobe {data['of']}: {la} → {lb}", style="bold")]
    for section in data["sections"]:
        table = Table(title=section["title"], title_justify="left")
        for name, justify in ((section["key"], "left"), ("figure", "left"), (la, "right"),
                              (lb, "right"), ("change", "right")):
            table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
        for row in section["rows"]:
            for i, fig in enumerate(row["figures"]):
                table.add_row(row["name"] if i == 0 else "", fig["label"], fig["a_text"], fig["b_text"],
                              Text(change_text(fig), style=style[fig["direction"]]), end_section=i == len(row["figures"]) - 1)
        parts.append(table)
        parts += [Text(note, style="dim") for note in section["notes"]]
    lines = highlights(data)
    parts.append(Text("what changed: " + ("; ".join(lines) if lines else "nothing beyond noise"), style="bold"))
    return to_text(*parts, color=color, width=width)


@renders("markdown", "diff")
def markdown(result: Any) -> str:
    """The same tables in Markdown, for a pull-request comment."""
    data = result.to_dict()
    la, lb = data["labels"]
    out = [f"## memprobe {data['of']}: `{la}` → `{lb}`", ""]
    lines = highlights(data)
    out += [f"- {_md(x)}" for x in lines] if lines else ["Nothing changed beyond noise."]
    for section in data["sections"]:
        out += ["", f"### {section['title']}", "", f"| {section['key']} | figure | {_md(la)} | {_md(lb)} | change |",
                "|---|---|---:|---:|---:|"]
        for row in section["rows"]:
            for i, fig in enumerate(row["figures"]):
                mark = {"better": " ✅", "worse": " ❌"}.get(fig["direction"], "")
                out.append(f"| {_md(row['name']) if i == 0 else ''} | {fig['label']} | {_md(fig['a_text'])} | "
                           f"{_md(fig['b_text'])} | {_md(change_text(fig))}{mark} |")
        if section["notes"]:
            out += [""] + [f"- {_md(n)}" for n in section["notes"]]
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
