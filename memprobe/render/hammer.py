"""Text and Markdown for ``hammer`` results (a running server, maybe a watched process tree)."""
from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from memprobe.render import renders
from memprobe.render.terminal import to_text
from memprobe.units import format_bytes


def load_lines(data: dict[str, Any]) -> list[str]:
    """The load's figures in three lines: counts and rate, latency, statuses."""
    req, lat = data["requests"], data["latency_ms"]
    statuses = " ".join(f"{k}:{v}" for k, v in req["status_counts"].items())
    errors = " ".join(f"{k}:{v}" for k, v in req["errors"].items())
    return [
        f"{data['url']}: {req['sent']} sent, {req['ok']} ok, {req['failed']} failed "
        f"({req['timeouts']} timeouts) in {data['duration_s']:.2f} s, {data['throughput_rps']:.0f} req/s, "
        f"{data['concurrency']} connections ({data['mode']})",
        f"latency ms: p50 {lat['p50']:.2f}  p90 {lat['p90']:.2f}  p99 {lat['p99']:.2f}  max {lat['max']:.1f}",
        f"statuses: {statuses or '-'}" + (f"; errors: {errors}" if errors else ""),
    ]


def memory_rows(data: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(process, before, after) for each watched process, then the total when there are several."""
    before, after = data["before"], data["after"]
    rows = [(f"pid {pid}", r, after["processes"].get(pid, {})) for pid, r in before["processes"].items()]
    if len(rows) > 1:
        rows.append(("total", before["total"], after["total"]))
    return rows


@renders("text", "hammer")
def text(result: Any, color: bool = False, width: int = 120) -> str:
    """The load's figures, then the watched processes' memory before and after."""
    data = result.to_dict()
    parts: list[Any] = [Text(line) for line in load_lines(data)]
    if data.get("before"):
        table = Table(title=f"Memory of pid {data['pid']} and its children", title_justify="left")
        table.add_column("process")
        for f in ("rss", "uss", "pss"):
            table.add_column(f"{f} before", justify="right")
            table.add_column(f"{f} after", justify="right")
            table.add_column(f"{f} Δ", justify="right")
        for name, b, a in memory_rows(data):
            cells = [name]
            for f in ("rss", "uss", "pss"):
                x, y = b.get(f), a.get(f)
                d = None if x is None or y is None else y - x
                cells += [format_bytes(x), format_bytes(y), format_bytes(d, signed=True)]
            table.add_row(*cells)
        parts.append(table)
    return to_text(*parts, color=color, width=width)


@renders("markdown", "hammer")
def markdown(result: Any) -> str:
    """The same, as Markdown."""
    data = result.to_dict()
    out = ["## memprobe hammer", ""] + [f"- {line}" for line in load_lines(data)] + [""]
    if data.get("before"):
        out += ["| process | rss before | rss after | uss Δ | pss Δ |", "|---|---:|---:|---:|---:|"]
        for name, b, a in memory_rows(data):
            def d(f: str) -> str:
                x, y = b.get(f), a.get(f)
                return format_bytes(None if x is None or y is None else y - x, signed=True)
            out.append(f"| {name} | {format_bytes(b.get('rss'))} | {format_bytes(a.get('rss'))} | {d('uss')} | {d('pss')} |")
        out.append("")
    return "\n".join(out)
