"""Text and Markdown for ``compare`` results.

Both take a :class:`~memprobe.results.compare.CompareResult`, live or read back with
``from_dict``, so a saved run re-renders exactly as the live one did.
"""
from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from memprobe.http.load import LoadResult
from memprobe.render import renders
from memprobe.render.terminal import sampler_stopped, to_text
from memprobe.results.compare import CompareResult, FrameworkResult, Round
from memprobe.units import format_bytes, format_change_short, format_kib, format_mib, format_pct

MEMORY_FIELDS = ("rss", "uss", "pss", "vms", "swap")


def _value(reading: Any, field: str) -> Any:
    return None if reading is None else getattr(reading, field)


def _memory_cells(r: Round, field: str) -> tuple[str, str, str, str]:
    return (
        format_bytes(_value(r.before, field)),
        format_bytes(_value(r.after, field)),
        format_bytes((r.change or {}).get(field), signed=True),
        format_pct((r.change_pct or {}).get(field)),
    )


def _before_after(r: Round, field: str) -> str:
    b, a = _value(r.before, field), _value(r.after, field)
    if b is None or a is None:
        return "-"
    return f"{format_mib(b)} → {format_mib(a)}"


def _compact_delta(r: Round, field: str) -> str:
    d = (r.change or {}).get(field)
    pct = (r.change_pct or {}).get(field)
    if d is None:
        return "-"
    size = format_change_short(d)
    return size if pct is None else f"{size} {pct:+.1f}%"


def _growth_style(r: Round, field: str) -> str:
    pct = (r.change_pct or {}).get(field)
    return "" if pct is None else "red" if pct >= 10 else "yellow" if pct >= 2 else "green"


def _statuses(load: LoadResult) -> str:
    counts = dict(sorted(load.status_counts.items()))
    counts.update(load.errors)
    if load.timeouts:
        counts["timeout"] = load.timeouts
    return " ".join(f"{k}:{v}" for k, v in counts.items()) or "-"


def measured(result: CompareResult) -> list[tuple[FrameworkResult, Round, LoadResult]]:
    """The rows that sent requests, each with the figures it shows and their load."""
    out = []
    for row in result.results:
        figures = row.figures
        if figures is not None and figures.load is not None and figures.load.requests_dict():
            out.append((row, figures, figures.load))
    return out


def sampler_notes(result: CompareResult) -> list[str]:
    """One line per round whose memory sampler stopped early: its series of memory over
    requests is short, and says so."""
    notes = []
    for row in result.results:
        for i, rnd in enumerate(row.rounds, 1):
            why = sampler_stopped(rnd.samples)
            if why:
                notes.append(f"{row.stack}" + (f", round {i}" if len(row.rounds) > 1 else "") + f": {why}")
    return notes


def _header(result: CompareResult) -> str:
    s = result.settings.to_dict()
    m = result.envelope.machine_info()
    return (
        f"{s['requests']} requests per framework, timeout {s['timeout_s']:g} s, "
        f"{s['concurrency']} connections ({s['mode']}"
        + (f", sent by {s['engine']}" if s.get("engine", "native") != "native" else "")
        + f"), warm-up {s['warmup']}, "
        f"{s['rounds']} round(s)"
        + (f"; scenario {s['scenario']['name']}" if s.get("scenario") else "")
        + (f"; production server, {s['workers']} workers x {s['threads']} threads"
           if s.get("server") == "production" else "")
        + f"; Python {m.get('python')}, {m.get('cpus')} CPUs; "
        f"took {result.duration_s:.1f} s"
        + (" - INTERRUPTED, partial results" if result.interrupted else "")
    )


@renders("text", "compare")
def text(result: CompareResult, color: bool = False, width: int = 140) -> str:
    """Two tables (memory, load) and a list of frameworks that were not measured."""
    memory = Table(title="Memory before -> after hammering (MiB; Δ in KiB/MiB)", title_justify="left")
    memory.add_column("framework", no_wrap=True)
    memory.add_column("version", no_wrap=True)
    for f in ("rss", "uss", "pss"):
        memory.add_column(f"{f} MiB", justify="right", no_wrap=True)
        memory.add_column(f"Δ {f}", justify="right", no_wrap=True)
    memory.add_column("vms Δ", justify="right", no_wrap=True)
    memory.add_column("swap", justify="right", no_wrap=True)
    load_table = Table(title="Load", title_justify="left")
    for name, justify in [("framework", "left"), ("sent", "right"), ("ok", "right"),
                          ("failed", "right"), ("timeouts", "right"), ("statuses", "left"),
                          ("req/s", "right"), ("p50 ms", "right"), ("p90 ms", "right"),
                          ("p99 ms", "right"), ("max ms", "right"), ("time s", "right")]:
        load_table.add_column(name, justify=justify)  # type: ignore[arg-type]
    rows = measured(result)
    for row, fig, load in rows:
        cells: list[str | Text] = [row.stack, row.version or "?"]
        for f in ("rss", "uss", "pss"):
            cells += [_before_after(fig, f), Text(_compact_delta(fig, f), style=_growth_style(fig, f))]
        cells += [_compact_delta(fig, "vms"), format_bytes(_value(fig.after, "swap"))]
        memory.add_row(*cells)
        lat = load.latency_ms
        load_table.add_row(
            row.stack, str(load.sent), str(load.ok),
            Text(str(load.failed), style="red" if load.failed else ""),
            str(load.timeouts), _statuses(load), f"{load.throughput_rps:.0f}",
            f"{lat['p50']:.2f}", f"{lat['p90']:.2f}", f"{lat['p99']:.2f}", f"{lat['max']:.1f}",
            f"{load.duration_s:.2f}",
        )
    parts: list[Any] = [Text(_header(result), style="bold")]
    if memory.row_count:
        parts += [memory, load_table]
    for title, header, table_rows in (_steps_table(result), _process_table(result)):
        if table_rows:
            table = Table(title=title, title_justify="left")
            for i, name in enumerate(header):
                table.add_column(name, justify="left" if i < 2 else "right", no_wrap=True)
            for line in table_rows:
                table.add_row(*line)
            parts.append(table)
    for r in result.results:
        if r.status != "ok":
            style = "yellow" if r.status in ("not-installed", "unavailable", "not-applicable") else "red"
            parts.append(Text(f"{r.stack}: {r.status} - {r.reason}", style=style))
    parts += [Text(note, style="yellow") for note in sampler_notes(result)]
    spreads = [row for row, _, _ in rows if row.spread]
    if spreads:
        parts.append(_spread_table(spreads))
    return to_text(*parts, color=color, width=width)


STEP_HEADER = ["stack", "request", "sent", "failed", "req/s", "mean ms", "p50 ms", "p90 ms",
               "p99 ms", "uss after MiB", "Δ uss MiB"]


def _process_cells(after: dict[str, Any], delta: dict[str, Any]) -> list[str]:
    return ([format_mib(after.get(f)) for f in ("rss", "uss", "pss")]
            + [format_mib(delta.get(f), signed=True) for f in ("uss", "pss")])


def _steps_table(result: CompareResult) -> tuple[str, list[str], list[list[str]]]:
    """Per request kind of a scenario: latency and the memory read right after it."""
    rows = []
    for row, fig, _ in measured(result):
        for step in fig.steps or []:
            lat, req = step["latency_ms"], step["requests"]
            rows.append([row.stack, step["name"], str(req["sent"]), str(req["failed"]),
                         f"{step['throughput_rps']:.0f}", f"{lat['mean']:.2f}", f"{lat['p50']:.2f}",
                         f"{lat['p90']:.2f}", f"{lat['p99']:.2f}",
                         format_mib((step.get("after") or {}).get("uss")),
                         format_mib((step.get("delta") or {}).get("uss"), signed=True)])
    return "Per request kind (in the order sent)", STEP_HEADER, rows


PROCESS_HEADER = ["stack", "process", "pid", "rss MiB", "uss MiB", "pss MiB", "Δ uss MiB", "Δ pss MiB"]


def _process_table(result: CompareResult) -> tuple[str, list[str], list[list[str]]]:
    """Production mode: the master, each worker, and the sum, after the run."""
    rows = []
    for row, fig, _ in measured(result):
        entries = fig.processes
        if not entries:
            continue
        for e in entries:
            a, d = e.get("after") or {}, e.get("delta") or {}
            rows.append([row.stack, e["role"], str(e["pid"])] + _process_cells(a, d))
        after = {f: _value(fig.after, f) for f in ("rss", "uss", "pss")}
        rows.append([row.stack, f"sum of {len(entries)}", ""] + _process_cells(after, fig.change or {}))
    return "Processes after the run (master and workers; the sum is the row's 'after')", PROCESS_HEADER, rows


def _spread_table(rows: list[FrameworkResult]) -> Table:
    table = Table(title="Spread over rounds (min - max; the tables show medians)", title_justify="left")
    table.add_column("framework")
    keys = list(rows[0].spread or {})
    for k in keys:
        table.add_column(k, justify="right", no_wrap=True)
    for row in rows:
        cells = [row.name]
        spread = row.spread or {}
        for k in keys:
            s = spread.get(k)
            if s is None:
                cells.append("-")
            elif k.endswith("_after"):
                cells.append(f"{format_mib(s['min'])} - {format_mib(s['max'])} MiB")
            elif k.endswith("_delta"):
                cells.append(f"{format_kib(s['min'], signed=True)} - {format_kib(s['max'], signed=True)} KiB")
            else:
                cells.append(f"{s['min']:.1f} - {s['max']:.1f}")
        table.add_row(*cells)
    return table


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    align = ["---" if i == 0 else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


@renders("markdown", "compare")
def markdown(result: CompareResult) -> str:
    """A pull-request-comment-sized report: settings, memory table, load table, problems."""
    out = ["## memprobe compare", "", _header(result), ""]
    rows = measured(result)
    if rows:
        header = ["framework", "version"] + [f"{f} before → after (Δ)" for f in MEMORY_FIELDS[:3]] + ["vms Δ"]
        cells_rows = []
        for row, fig, _ in rows:
            cells = [row.stack, row.version or "?"]
            for f in MEMORY_FIELDS[:3]:
                b, a, d, p = _memory_cells(fig, f)
                cells.append(f"{b} → {a} ({d}, {p})")
            cells.append(_memory_cells(fig, "vms")[2])
            cells_rows.append(cells)
        out += ["### Memory", "", _md_table(header, cells_rows), ""]
        cells_rows = []
        for row, _, load in rows:
            lat = load.latency_ms
            cells_rows.append([row.stack, str(load.sent), str(load.ok), str(load.failed),
                               str(load.timeouts), f"{load.throughput_rps:.0f}", f"{lat['p50']:.2f}",
                               f"{lat['p90']:.2f}", f"{lat['p99']:.2f}", f"{lat['max']:.1f}",
                               f"{load.duration_s:.2f}"])
        out += ["### Load", "", _md_table(
            ["framework", "sent", "ok", "failed", "timeouts", "req/s", "p50 ms", "p90 ms",
             "p99 ms", "max ms", "time s"], cells_rows), ""]
    for title, header, table_rows in (_steps_table(result), _process_table(result)):
        if table_rows:
            out += [f"### {title}", "", _md_table(header, table_rows), ""]
    problems = [r for r in result.results if r.status != "ok"]
    if problems:
        out += ["### Not measured or failed", ""]
        out += [f"- **{r.stack}**: {r.status} - {r.reason}" for r in problems]
        out.append("")
    notes = sampler_notes(result)
    if notes:
        out += ["### Memory sampler", ""] + [f"- {note}" for note in notes] + [""]
    return "\n".join(out)
