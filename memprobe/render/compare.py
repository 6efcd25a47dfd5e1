"""Text and Markdown for ``compare`` results.

Both read only the JSON form (``result.to_dict()``), so a saved run re-renders exactly as the
live one did.
"""
from __future__ import annotations

from typing import Any, Iterator

from rich.table import Table
from rich.text import Text

from memprobe.render import renders
from memprobe.render.terminal import to_text
from memprobe.units import format_bytes

MEMORY_FIELDS = ("rss", "uss", "pss", "vms", "swap")


def _pct(p: float | None) -> str:
    return "-" if p is None else f"{p:+.1f} %"


def _memory_cells(row: dict[str, Any], field: str) -> tuple[str, str, str, str]:
    before, after = row.get("before") or {}, row.get("after") or {}
    delta, pct = row.get("delta") or {}, row.get("delta_pct") or {}
    return (
        format_bytes(before.get(field)),
        format_bytes(after.get(field)),
        format_bytes(delta.get(field), signed=True),
        _pct(pct.get(field)),
    )


def _before_after(row: dict[str, Any], field: str) -> str:
    b, a = (row.get("before") or {}).get(field), (row.get("after") or {}).get(field)
    if b is None or a is None:
        return "-"
    return f"{b / 2**20:.1f} → {a / 2**20:.1f}"


def _compact_delta(row: dict[str, Any], field: str) -> str:
    d = (row.get("delta") or {}).get(field)
    pct = (row.get("delta_pct") or {}).get(field)
    if d is None:
        return "-"
    size = f"{d / 2**20:+.1f}M" if abs(d) >= 2**20 else f"{d / 1024:+.0f}K"
    return size if pct is None else f"{size} {pct:+.1f}%"


def _growth_style(row: dict[str, Any], field: str) -> str:
    pct = (row.get("delta_pct") or {}).get(field)
    return "" if pct is None else "red" if pct >= 10 else "yellow" if pct >= 2 else "green"


def _statuses(requests: dict[str, Any]) -> str:
    counts = dict(requests.get("status_counts") or {})
    counts.update({k: v for k, v in (requests.get("errors") or {}).items()})
    if requests.get("timeouts"):
        counts["timeout"] = requests["timeouts"]
    return " ".join(f"{k}:{v}" for k, v in counts.items()) or "-"


def _measured(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    return (r for r in data["results"] if r.get("requests"))


def _header(data: dict[str, Any]) -> str:
    s = data["settings"]
    m = data["machine"]
    return (
        f"{s['requests']} requests per framework, timeout {s['timeout_s']:g} s, "
        f"{s['concurrency']} connections ({s['mode']}), warm-up {s['warmup']}, "
        f"{s['rounds']} round(s)"
        + (f"; scenario {s['scenario']['name']}" if s.get("scenario") else "")
        + (f"; production server, {s['workers']} workers x {s['threads']} threads"
           if s.get("server") == "production" else "")
        + f"; Python {m['python']}, {m['cpus']} CPUs; "
        f"took {data['duration_s']:.1f} s"
        + (" - INTERRUPTED, partial results" if data.get("interrupted") else "")
    )


@renders("text", "compare")
def text(result: Any, color: bool = False, width: int = 140) -> str:
    """Two tables (memory, load) and a list of frameworks that were not measured."""
    data = result.to_dict()
    memory = Table(title="Memory before -> after hammering (MiB; Δ in KiB/MiB)", title_justify="left")
    memory.add_column("framework", no_wrap=True)
    memory.add_column("version", no_wrap=True)
    for f in ("rss", "uss", "pss"):
        memory.add_column(f"{f} MiB", justify="right", no_wrap=True)
        memory.add_column(f"Δ {f}", justify="right", no_wrap=True)
    memory.add_column("vms Δ", justify="right", no_wrap=True)
    memory.add_column("swap", justify="right", no_wrap=True)
    load = Table(title="Load", title_justify="left")
    for name, justify in [("framework", "left"), ("sent", "right"), ("ok", "right"),
                          ("failed", "right"), ("timeouts", "right"), ("statuses", "left"),
                          ("req/s", "right"), ("p50 ms", "right"), ("p90 ms", "right"),
                          ("p99 ms", "right"), ("max ms", "right"), ("time s", "right")]:
        load.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in _measured(data):
        cells: list[str | Text] = [_name(row), row.get("version") or "?"]
        for f in ("rss", "uss", "pss"):
            cells += [_before_after(row, f), Text(_compact_delta(row, f), style=_growth_style(row, f))]
        cells += [_compact_delta(row, "vms"), format_bytes((row.get("after") or {}).get("swap"))]
        memory.add_row(*cells)
        req, lat = row["requests"], row["latency_ms"]
        load.add_row(
            _name(row), str(req["sent"]), str(req["ok"]),
            Text(str(req["failed"]), style="red" if req["failed"] else ""),
            str(req["timeouts"]), _statuses(req), f"{row['throughput_rps']:.0f}",
            f"{lat['p50']:.2f}", f"{lat['p90']:.2f}", f"{lat['p99']:.2f}", f"{lat['max']:.1f}",
            f"{row['duration_s']:.2f}",
        )
    parts: list[Any] = [Text(_header(data), style="bold")]
    if memory.row_count:
        parts += [memory, load]
    for title, header, rows in (_steps_table(data), _process_table(data)):
        if rows:
            table = Table(title=title, title_justify="left")
            for i, name in enumerate(header):
                table.add_column(name, justify="left" if i < 2 else "right", no_wrap=True)
            for cells in rows:
                table.add_row(*cells)
            parts.append(table)
    problems = [r for r in data["results"] if r["status"] != "ok"]
    for r in problems:
        style = "yellow" if r["status"] in ("not-installed", "unavailable", "not-applicable") else "red"
        parts.append(Text(f"{_name(r)}: {r['status']} - {r['reason']}", style=style))
    spreads = [r for r in _measured(data) if r.get("spread")]
    if spreads:
        parts.append(_spread_table(spreads))
    return to_text(*parts, color=color, width=width)


def _name(row: dict[str, Any]) -> str:
    return str(row.get("stack") or row["framework"])


def _mib(value: int | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value / 2**20:+.2f}" if signed else f"{value / 2**20:.1f}"


STEP_HEADER = ["stack", "request", "sent", "failed", "req/s", "mean ms", "p50 ms", "p90 ms",
               "p99 ms", "uss after MiB", "Δ uss MiB"]


def _steps_table(data: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    """Per request kind of a scenario: latency and the memory read right after it."""
    rows = []
    for row in _measured(data):
        for step in row.get("steps") or []:
            lat, req = step["latency_ms"], step["requests"]
            rows.append([_name(row), step["name"], str(req["sent"]), str(req["failed"]),
                         f"{step['throughput_rps']:.0f}", f"{lat['mean']:.2f}", f"{lat['p50']:.2f}",
                         f"{lat['p90']:.2f}", f"{lat['p99']:.2f}",
                         _mib((step.get("after") or {}).get("uss")),
                         _mib((step.get("delta") or {}).get("uss"), signed=True)])
    return "Per request kind (in the order sent)", STEP_HEADER, rows


PROCESS_HEADER = ["stack", "process", "pid", "rss MiB", "uss MiB", "pss MiB", "Δ uss MiB", "Δ pss MiB"]


def _process_table(data: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    """Production mode: the master, each worker, and the sum, after the run."""
    rows = []
    for row in _measured(data):
        entries = row.get("processes")
        if not entries:
            continue
        for e in entries:
            a, d = e.get("after") or {}, e.get("delta") or {}
            rows.append([_name(row), e["role"], str(e["pid"]), _mib(a.get("rss")), _mib(a.get("uss")),
                         _mib(a.get("pss")), _mib(d.get("uss"), True), _mib(d.get("pss"), True)])
        a, d = row.get("after") or {}, row.get("delta") or {}
        rows.append([_name(row), f"sum of {len(entries)}", "", _mib(a.get("rss")), _mib(a.get("uss")),
                     _mib(a.get("pss")), _mib(d.get("uss"), True), _mib(d.get("pss"), True)])
    return "Processes after the run (master and workers; the sum is the row's 'after')", PROCESS_HEADER, rows


def _spread_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Spread over rounds (min - max; the tables show medians)", title_justify="left")
    table.add_column("framework")
    keys = list(rows[0]["spread"])
    for k in keys:
        table.add_column(k, justify="right", no_wrap=True)
    for row in rows:
        cells = [row["framework"]]
        for k in keys:
            s = row["spread"].get(k)
            if s is None:
                cells.append("-")
            elif k.endswith("_after"):
                cells.append(f"{s['min'] / 2**20:.1f} - {s['max'] / 2**20:.1f} MiB")
            elif k.endswith("_delta"):
                cells.append(f"{s['min'] / 1024:+.0f} - {s['max'] / 1024:+.0f} KiB")
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
def markdown(result: Any) -> str:
    """A pull-request-comment-sized report: settings, memory table, load table, problems."""
    data = result.to_dict()
    out = ["## memprobe compare", "", _header(data), ""]
    measured = list(_measured(data))
    if measured:
        header = ["framework", "version"] + [f"{f} before → after (Δ)" for f in MEMORY_FIELDS[:3]] + ["vms Δ"]
        rows = []
        for row in measured:
            cells = [_name(row), row.get("version") or "?"]
            for f in MEMORY_FIELDS[:3]:
                b, a, d, p = _memory_cells(row, f)
                cells.append(f"{b} → {a} ({d}, {p})")
            cells.append(_memory_cells(row, "vms")[2])
            rows.append(cells)
        out += ["### Memory", "", _md_table(header, rows), ""]
        rows = []
        for row in measured:
            req, lat = row["requests"], row["latency_ms"]
            rows.append([_name(row), str(req["sent"]), str(req["ok"]), str(req["failed"]),
                         str(req["timeouts"]), f"{row['throughput_rps']:.0f}", f"{lat['p50']:.2f}",
                         f"{lat['p90']:.2f}", f"{lat['p99']:.2f}", f"{lat['max']:.1f}",
                         f"{row['duration_s']:.2f}"])
        out += ["### Load", "", _md_table(
            ["framework", "sent", "ok", "failed", "timeouts", "req/s", "p50 ms", "p90 ms",
             "p99 ms", "max ms", "time s"], rows), ""]
    for title, header, rows in (_steps_table(data), _process_table(data)):
        if rows:
            out += [f"### {title}", "", _md_table(header, rows), ""]
    problems = [r for r in data["results"] if r["status"] != "ok"]
    if problems:
        out += ["### Not measured or failed", ""]
        out += [f"- **{_name(r)}**: {r['status']} - {r['reason']}" for r in problems]
        out.append("")
    return "\n".join(out)
