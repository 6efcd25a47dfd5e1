"""Text, Markdown and HTML for ``watch``'s rolling report (all three here: the HTML page's
plot is the per-route timeline, drawn with :mod:`memprobe.render.plots`' helpers)."""
from __future__ import annotations

import math
from typing import Any

from rich.table import Table
from rich.text import Text

from memprobe.render import plots, renders
from memprobe.render.page import Safe, badge, definition_list, esc, figure, join, page, table, tag
from memprobe.render.terminal import to_text
from memprobe.results.watch import CgroupReading, PerRequest, RouteLine, WatchResult, WorkerLine
from memprobe.units import format_bytes

_STYLE = {"leak": "bold red", "bounded": "yellow", "clean": "green"}


def per_request(value: PerRequest | None, unit: str = "") -> str:
    """``+310.2 ± 12.0`` (``± ?`` when the error is unknown); ``-`` for None."""
    if value is None:
        return "-"
    err = f"{value.error:.1f}" if math.isfinite(value.error) else "?"
    digits = 2 if value.unit == "blocks" else 1
    return f"{value.value:+.{digits}f} ± {err}{unit}"


def duration(seconds: PerRequest | None) -> str:
    """``19.2 h ± 2.1 h``; ``-`` for None."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0)):
        if seconds.value >= size or unit == "s":
            err = f" ± {seconds.error / size:.1f} {unit}" if math.isfinite(seconds.error) else ""
            return f"{seconds.value / size:.1f} {unit}{err}"
    raise AssertionError("unreachable")


def headline(result: WatchResult) -> str:
    """One line: what leaks, at what rate, in how long the limit is reached."""
    leaks = [r for r in result.routes if r.verdict == "leak"]
    span = f"{result.windows:,} windows over {result.duration_s:,.0f} s"
    if leaks:
        worst = max(leaks, key=lambda r: r.bytes.value if r.bytes else 0.0)
        when = ""
        if result.advice and result.advice.time_to_limit_s:
            when = f"; the server reaches its memory limit in {duration(result.advice.time_to_limit_s)}"
        return (f"LEAK on {', '.join(r.route for r in leaks)}: {worst.route} keeps "
                f"{per_request(worst.bytes)} B/request at {worst.rate:,.1f} requests/s{when} ({span})")
    words = {"bounded": "growth that stopped, no leak", "clean": "clean: no route keeps memory per request",
             "undecided": "no leak seen yet; some routes need more traffic to decide"}
    return f"{words[result.verdict]} ({span})"


def route_rows(routes: list[RouteLine]) -> list[list[str]]:
    """Route, requests, rate, bytes, blocks, USS per request, verdict."""
    return [[r.route, f"{r.requests:,}", f"{r.rate:,.1f}", per_request(r.bytes), per_request(r.blocks),
             per_request(r.uss), r.verdict] for r in routes]


_ROUTE_HEADER = ["route", "requests", "req/s", "retained B/request", "blocks/request", "USS B/request", "verdict"]


def worker_rows(workers: list[WorkerLine]) -> list[list[str]]:
    """Pid, state, requests, RSS, USS, PSS, growth per s and per request, time to limit."""
    return [[str(w.pid), "live" if w.alive else "gone", f"{w.requests:,}", format_bytes(w.rss),
             format_bytes(w.uss), format_bytes(w.pss), per_request(w.growth_per_s), per_request(w.growth_per_request),
             duration(w.time_to_limit_s)] for w in workers]


_WORKER_HEADER = ["pid", "state", "requests", "RSS", "USS", "PSS", "growth B/s", "B/request served",
                  "time to its share of the limit"]


def cgroup_lines(cg: CgroupReading | None) -> list[str]:
    """The cgroup in a few lines (or why there is none)."""
    if cg is None:
        return ["cgroup: not read"]
    if cg.reason and cg.usage is None:
        return [f"cgroup: {cg.reason}"]
    limit = format_bytes(cg.limit) if cg.limit is not None else "no limit"
    parts = ", ".join(f"{k} {format_bytes(v)}" for k, v in cg.breakdown.items())
    events = ", ".join(f"{k} {v}" for k, v in cg.events.items())
    return [f"cgroup v{cg.version} {cg.path or '/'}: usage {format_bytes(cg.usage)} of {limit}",
            f"  of which {parts}" if parts else "", f"  events: {events}" if events else ""]


def bytes_note(result: WatchResult) -> str:
    """What the retained bytes rest on (heap bytes, or blocks at an assumed size)."""
    sources = sorted({r.bytes_from for r in result.routes if r.bytes_from})
    return f"retained B/request rest on: {', '.join(sources)}" if sources else ""


def advice_lines(result: WatchResult) -> list[str]:
    """The recycling advice, or why it is withheld."""
    a = result.advice
    if a is None:
        return []
    if not a.given:
        return [f"recycling: {a.reason}"]
    return [f"recycling: gunicorn {a.gunicorn}  |  uvicorn {a.uvicorn}", f"  {a.reason}"]


def attribution_lines(route: RouteLine) -> list[str]:
    """Where a route's retention was allocated and what holds it, from the attribution
    windows (none when no window saw it keep anything)."""
    att = route.attribution
    if att is None or (not att.sites and not att.holders):
        return []
    out = [f"  {route.route}: traced {per_request(att.per_request)} B/request alive as each traced request ended "
           f"({att.bounds})"]
    for i, site in enumerate(att.sites[:3], 1):
        where = f"{site.file}:{site.line}"
        out.append(f"    {i}. {where}  {site.bytes_per_request:,.0f} B/request" + (f"  {site.code}" if site.code else ""))
    for h in att.holders[:2]:
        out.append(f"    held by: {h.get('description', '?')}")
    return out


def traced_lines(result: WatchResult) -> list[str]:
    """The attribution windows run, one line each."""
    return [f"attribution window: pid {w.pid}, {w.seconds:.1f} s, {sum(w.requests.values()):,} requests, "
            f"{w.samples:,} traced (one in {w.sample}, {w.traced_s:.1f} s), {w.frames} frames, "
            f"closed {w.closed} at {w.at:.0f} s" for w in result.traced]


def _table(title: str, header: list[str], rows: list[list[str]], verdict_col: int | None = None) -> Table:
    t = Table(title=title, title_justify="left")
    for i, h in enumerate(header):
        t.add_column(h, justify="left" if i == 0 or h in ("verdict", "state") else "right")
    for row in rows:
        cells: list[Any] = list(row)
        if verdict_col is not None:
            cells[verdict_col] = Text(row[verdict_col], style=_STYLE.get(row[verdict_col], ""))
        t.add_row(*cells)
    return t


def context(result: WatchResult) -> str:
    """What was watched, how, for how long, and how it ended."""
    s = result.settings
    what = f"pid {s['pid']}" if s.get("pid") is not None else s.get("cmd") or s.get("windows_from") or "?"
    workers = s.get("workers") or {}
    how = f" ({s['how']})" if s.get("how") else ""
    ended = f"; ended: {s['ended']}" if s.get("ended") else ""
    return (f"memprobe watch {what}: {len(workers)} worker{'s' if len(workers) != 1 else ''}{how}, "
            f"{result.windows:,} windows over {result.duration_s:.0f} s{ended}")


@renders("text", "watch")
def text(result: WatchResult, color: bool = False, width: int = 120) -> str:
    """What was watched, the headline, the server's routes, the workers, cgroup, advice, notes."""
    parts: list[Any] = [Text(context(result)), Text(headline(result), style=_STYLE.get(result.verdict, ""))]
    parts.append(_table("Routes (the server)", _ROUTE_HEADER, route_rows(result.routes), 6))
    if bytes_note(result):
        parts.append(Text(bytes_note(result)))
    for r in result.routes:
        if r.verdict != "clean":
            parts.append(Text(f"  {r.route}: {r.reason}"))
    for r in result.routes:
        parts += [Text(line) for line in attribution_lines(r)]
    parts += [Text(line) for line in traced_lines(result)]
    if result.workers:
        parts.append(_table("Workers", _WORKER_HEADER, worker_rows(result.workers)))
    parts += [Text(line) for line in cgroup_lines(result.cgroup) + advice_lines(result) if line]
    parts += [Text(f"note: {n}") for n in result.notes]
    return to_text(*parts, color=color, width=width)


@renders("markdown", "watch")
def markdown(result: WatchResult) -> str:
    """The same, as Markdown."""
    def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return out + ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows] + [""]

    out = ["## memprobe watch", "", context(result), "", f"**{headline(result)}**", "", "### Routes (the server)", ""]
    out += md_table(_ROUTE_HEADER, route_rows(result.routes))
    out += [bytes_note(result), ""] if bytes_note(result) else []
    out += [f"- `{r.route}`: {r.reason}" for r in result.routes if r.verdict != "clean"] + [""]
    found = [line for r in result.routes for line in attribution_lines(r)]
    out += (["### Where it was allocated (attribution windows)", "", "```"] + found + traced_lines(result)
            + ["```", ""]) if found else []
    if result.workers:
        out += ["### Workers", ""] + md_table(_WORKER_HEADER, worker_rows(result.workers))
    out += [f"- {line.strip()}" for line in cgroup_lines(result.cgroup) + advice_lines(result) if line]
    out += [f"- note: {n}" for n in result.notes] + [""]
    return "\n".join(out)


def timeline_plot(result: WatchResult) -> str | None:
    """Per route, cumulative bytes retained (KiB) against time, and the growth measured
    (dashed); None without points."""
    tl = result.timeline
    if not tl.t:
        return None
    fig, axes = _figure()
    ax = axes[0]
    minutes = [t / 60 for t in tl.t]
    for i, (route, ys) in enumerate(tl.retained.items()):
        ax.plot(minutes, [y / 1024 for y in ys], color=plots.colour(i), linewidth=1.3, label=route[:40])
    if tl.measured:
        ax.plot(minutes, [y / 1024 for y in tl.measured], "--", color="#222222", linewidth=1.0,
                label=f"measured ({tl.signal})")
    ax.axhline(0, color="#444444", linewidth=0.6)
    ax.set_title("retained per route (estimate x requests so far)")
    ax.set_xlabel("minutes watched")
    ax.set_ylabel("KiB")
    ax.legend(loc="upper left", fontsize=7.5)
    fig.tight_layout()
    return plots.to_svg(fig, "cumulative bytes retained per route over time")


def _figure() -> tuple[Any, list[Any]]:
    plt = plots.pyplot()
    fig, ax = plt.subplots(1, 1, figsize=(9.0, 3.4))
    return fig, [ax]


@renders("html", "watch")
def html(result: WatchResult) -> str:
    """Headline, the per-route timeline plotted, the routes, workers, cgroup, advice."""
    verdict = result.verdict
    body: list[Any] = [tag("div", Safe(badge(verdict if verdict != "undecided" else "na") + " "
                                       + esc(headline(result))), cls=f"verdict {verdict}")]
    body.append(figure(timeline_plot(result),
                       "Cumulative bytes retained per route: its current bytes per request times its requests "
                       "so far; dashed: the heap growth measured over the same windows."))
    rows = [[r.route, f"{r.requests:,}", f"{r.rate:,.1f}", per_request(r.bytes), per_request(r.blocks),
             per_request(r.uss), badge(r.verdict if r.verdict in ("leak", "bounded", "clean") else "na")
             + (esc(" " + r.verdict) if r.verdict not in ("leak", "bounded", "clean") else Safe(""))]
            for r in result.routes]
    body += [tag("h2", "Routes (the server)"), table(_ROUTE_HEADER, rows, numeric=(1, 2, 3, 4, 5))]
    body.append(tag("ul", join(tag("li", Safe(tag("code", r.route) + esc(f": {r.reason}")))
                               for r in result.routes if r.reason)))
    found = [line for r in result.routes for line in attribution_lines(r)] + traced_lines(result)
    if found:
        body += [tag("h2", "Where it was allocated (attribution windows)"), tag("pre", "\n".join(found))]
    if result.workers:
        body += [tag("h2", "Workers"), table(_WORKER_HEADER, worker_rows(result.workers),
                                             numeric=range(2, len(_WORKER_HEADER)))]
    body += [tag("h2", "Memory limit and recycling"),
             tag("ul", join(tag("li", line.strip()) for line in cgroup_lines(result.cgroup) + advice_lines(result)
                            if line))]
    if result.notes:
        body += [tag("h2", "Notes"), tag("ul", join(tag("li", n) for n in result.notes))]
    body += [tag("h2", "Settings"), definition_list(
        [(k, str(v)) for k, v in result.settings.items()] + [("started", result.envelope.started),
                                                             ("watched", f"{result.duration_s:,.0f} s")])]
    return page("memprobe watch", join(body), f"{result.windows:,} windows")
