"""Text and Markdown for ``hammer`` results (a running server, maybe a watched process tree)."""
from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from memprobe.process.memory import MemoryReading
from memprobe.render import renders
from memprobe.render.terminal import sampler_stopped, to_text
from memprobe.results.hammer import HammerResult
from memprobe.units import format_bytes

#: the memory fields the tables show
SHOWN = ("rss", "uss", "pss")


def load_lines(result: HammerResult) -> list[str]:
    """The load's figures in three lines: counts and rate, latency, statuses; a fourth when
    the memory sampler stopped early."""
    load, lat = result.load, result.load.latency_ms
    statuses = " ".join(f"{k}:{v}" for k, v in sorted(load.status_counts.items()))
    errors = " ".join(f"{k}:{v}" for k, v in load.errors.items())
    return [
        f"{load.url}: {load.sent} sent, {load.ok} ok, {load.failed} failed "
        f"({load.timeouts} timeouts) in {load.duration_s:.2f} s, {load.throughput_rps:.0f} req/s, "
        f"{load.concurrency} connections ({load.mode}{engine_note(load)})",
        f"latency ms: p50 {lat['p50']:.2f}  p90 {lat['p90']:.2f}  p99 {lat['p99']:.2f}  max {lat['max']:.1f}",
        f"statuses: {statuses or '-'}" + (f"; errors: {errors}" if errors else ""),
    ] + [why for why in [sampler_stopped(result.samples)] if why]


def engine_note(load: Any) -> str:
    """``, locust: 2 workers`` for a load Locust sent; nothing for the native hammer's."""
    if load.engine == "native":
        return ""
    n = load.engine_workers
    return f", {load.engine}: {n} worker{'s' if n != 1 else ''}"


def memory_rows(result: HammerResult) -> list[tuple[str, MemoryReading, MemoryReading | None]]:
    """(process, before, after) for each watched process, then the total when there are several."""
    before, after = result.before, result.after
    if before is None or after is None:
        return []
    rows = [(f"pid {pid}", r, after.processes.get(pid)) for pid, r in before.processes.items()]
    if len(rows) > 1:
        rows.append(("total", before.total, after.total))
    return rows


def change(before: MemoryReading, after: MemoryReading | None, name: str) -> tuple[Any, Any, Any]:
    """One field's value before, after, and the change (None where unknown)."""
    x, y = getattr(before, name), getattr(after, name) if after is not None else None
    return x, y, None if x is None or y is None else y - x


@renders("text", "hammer")
def text(result: HammerResult, color: bool = False, width: int = 120) -> str:
    """The load's figures, then the watched processes' memory before and after."""
    parts: list[Any] = [Text(line) for line in load_lines(result)]
    if result.before is not None and result.after is not None:
        table = Table(title=f"Memory of pid {result.pid} and its children", title_justify="left")
        table.add_column("process")
        for f in SHOWN:
            table.add_column(f"{f} before", justify="right")
            table.add_column(f"{f} after", justify="right")
            table.add_column(f"{f} Δ", justify="right")
        for name, b, a in memory_rows(result):
            cells = [name]
            for f in SHOWN:
                x, y, d = change(b, a, f)
                cells += [format_bytes(x), format_bytes(y), format_bytes(d, signed=True)]
            table.add_row(*cells)
        parts.append(table)
        parts += [Text(f"note: {note}") for note in result.notes]
    return to_text(*parts, color=color, width=width)


@renders("markdown", "hammer")
def markdown(result: HammerResult) -> str:
    """The same, as Markdown."""
    out = ["## memprobe hammer", ""] + [f"- {line}" for line in load_lines(result)] + [""]
    if result.before is not None and result.after is not None:
        out += ["| process | rss before | rss after | uss Δ | pss Δ |", "|---|---:|---:|---:|---:|"]
        for name, b, a in memory_rows(result):
            rss = change(b, a, "rss")
            out.append(f"| {name} | {format_bytes(rss[0])} | {format_bytes(rss[1])} | "
                       f"{format_bytes(change(b, a, 'uss')[2], signed=True)} | "
                       f"{format_bytes(change(b, a, 'pss')[2], signed=True)} |")
        out += [""] + [f"**Note:** {note}" for note in result.notes] + ([""] if result.notes else [])
    return "\n".join(out)
