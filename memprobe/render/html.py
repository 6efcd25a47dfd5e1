"""Self-contained HTML reports: one file, inline SVG plots, no scripts, nothing fetched.

Each renderer takes a typed result, live or read back with ``from_dict`` (so ``memprobe
report`` re-renders a saved run exactly), and escapes every string that came from the app.
Plots need matplotlib (the ``html``
extra); the check report has none and renders without it.
"""
from __future__ import annotations

from typing import Any

from memprobe.render import plots, renders
from memprobe.render.check import evidence_line, findings_of
from memprobe.render.compare import sampler_notes
from memprobe.render.diff import change_text, highlights
from memprobe.render.page import (
    Safe,
    badge,
    definition_list,
    esc,
    figure,
    join,
    page,
    table,
    tag,
)
from memprobe.results.check import CheckResult
from memprobe.results.compare import CompareResult, Round
from memprobe.results.diff import RunDiff
from memprobe.results.hammer import HammerResult
from memprobe.results.hunt import Holder, HuntResult, RouteResult, Site
from memprobe.units import format_bytes, format_mib, format_pct, format_rate, short_path

_SITES = 8
_TYPES = 10
_HOLDERS = 5


def require() -> None:
    """Raise :class:`~memprobe.errors.MissingDependency` now if HTML plots cannot be drawn,
    so a command can fail before it measures rather than after."""
    plots.pyplot()


def _pct(p: float | None) -> str:
    return "" if p is None else f" ({format_pct(p)})"


def _settings_line(pairs: list[tuple[str, Any]]) -> str:
    return " · ".join(f"{k} {v}" for k, v in pairs if v not in (None, ""))


# -- compare ---------------------------------------------------------------------------------

@renders("html", "compare")
def compare(result: CompareResult) -> str:
    """The table of every framework, memory bars before/after, memory over requests."""
    s, m = result.settings.to_dict(), result.envelope.machine_info()
    rows = result.results
    measured = [row for row in rows if row.measured]
    body: list[Any] = []
    if result.interrupted:
        body.append(tag("p", "Interrupted: partial results.", cls="verdict fail"))
    header = ["framework", "status"]
    header += [f"{f.upper()} MiB" for f in ("rss", "uss", "pss")] + ["VMS Δ"]
    header += ["ok / sent", "failed", "req/s", "p50 ms", "p99 ms", "max ms"]
    cells = []
    for r in rows:
        fig = r.figures or Round()
        delta, pct = fig.change or {}, fig.change_pct or {}
        who = Safe(tag("b", r.name) + " " + tag("span", r.version or "?", cls="muted")
                   + Safe("<br>") + tag("span", r.server or "", cls="small muted"))
        row: list[Any] = [who, badge(r.status or "?")]
        for f in ("rss", "uss", "pss"):
            before = getattr(fig.before, f) if fig.before else None
            after = getattr(fig.after, f) if fig.after else None
            row.append(Safe(esc(f"{format_mib(before)} → {format_mib(after)}") + Safe("<br>")
                            + tag("span", format_bytes(delta.get(f), signed=True) + _pct(pct.get(f)),
                                  cls="small muted")))
        row.append(format_bytes(delta.get("vms"), signed=True))
        load = fig.load
        if load is not None:
            lat = load.latency_ms
            timeouts = f" ({load.timeouts} timeouts)" if load.timeouts else ""
            failed = tag("span", f"{load.failed}{timeouts}", cls="worse" if load.failed else "")
            row += [f"{load.ok} / {load.sent}", failed, f"{load.throughput_rps:.0f}"]
            row += [f"{lat[k]:.2f}" if lat.get(k) is not None else "-" for k in ("p50", "p99", "max")]
        else:
            row += ["-"] * 6
        cells.append(row)
    body += [tag("h2", "Every framework"),
             tag("p", "Memory before → after the hammering, and the change; latency in milliseconds.",
                 cls="muted"),
             table(header, cells, numeric=range(2, len(header)))]
    problems = [r for r in rows if r.status != "ok"]
    if problems:
        body.append(tag("ul", join(tag("li", Safe(f"{tag('b', r.name)}: {badge(r.status or '?')} "
                                                  f"{esc(r.reason or '')} {esc(r.pip or '')}"))
                                   for r in problems)))
        for r in problems:
            if r.log_tail:
                body.append(Safe(tag("h3", f"{r.name}: last lines of its log") + tag("pre", r.log_tail)))
    if measured:
        figures = [r.figures for r in measured]
        body += [tag("h2", "Memory before and after the hammering"),
                 figure(plots.memory_bars([r.name for r in measured],
                                          [f.before if f else None for f in figures],
                                          [f.after if f else None for f in figures]),
                        "Each framework's memory after start-up and settling "
                        "(before) and after the requests and settling (after).")]
        lines = plots.memory_over_requests(measured)
        if lines:
            body += [tag("h2", "Memory over requests"),
                     figure(lines, "Memory read while the requests were sent, against the requests answered "
                            "so far; one line per framework (lighter lines: further rounds).")]
    notes = sampler_notes(result)
    if notes:
        body += [tag("h2", "Memory sampler"), tag("ul", join(tag("li", note, cls="worse") for note in notes))]
    spreads = [r for r in measured if r.spread]
    if spreads:
        keys = list(spreads[0].spread or {})
        spread_rows = [[r.name] + [_spread_cell(k, (r.spread or {}).get(k)) for k in keys] for r in spreads]
        body += [tag("h2", "Spread over rounds"),
                 tag("p", "min - max; the tables show medians.", cls="muted"),
                 table(["framework"] + keys, spread_rows, numeric=range(1, len(keys) + 1))]
    body += [tag("h2", "Settings and machine"), definition_list([
        ("requests per framework", s.get("requests")), ("timeout", f"{s.get('timeout_s')} s"),
        ("connections", f"{s.get('concurrency')} ({s.get('mode')}"
                        + (f", sent by {s['engine']}" if s.get("engine", "native") != "native" else "") + ")"),
        ("warm-up", s.get("warmup")),
        ("settle", f"{s.get('settle_s')} s"), ("rounds", s.get("rounds")), ("path", s.get("path")),
        ("started", result.envelope.started), ("took", f"{result.duration_s:.1f} s"),
        ("Python", f"{m.get('python')} ({m.get('implementation')})"), ("platform", m.get("platform")),
        ("CPUs", m.get("cpus")), ("memory", format_bytes(m.get("memory_total"))),
        ("psutil", m.get("psutil"))])]
    subtitle = _settings_line([("", f"{s.get('requests')} requests per framework"),
                               ("timeout", f"{s.get('timeout_s')} s"), ("connections", s.get("concurrency")),
                               ("started", result.envelope.started)])
    return page("memprobe compare", join(body), subtitle)


def _spread_cell(key: str, spread: dict[str, Any] | None) -> str:
    if not spread:
        return "-"
    if key.endswith(("_after", "_delta")):
        return f"{format_bytes(spread['min'])} - {format_bytes(spread['max'])}"
    return f"{spread['min']:.1f} - {spread['max']:.1f}"


# -- hunt ------------------------------------------------------------------------------------

def _verdict(result: HuntResult) -> Safe:
    routes = result.routes
    verdict = result.verdict or "none"
    if result.error:
        words = f"stopped: {result.error}"
    elif verdict == "leak":
        leaks = [r.route for r in routes if r.verdict == "leak"]
        bpr = result.bytes_per_request
        worst = result.worst
        words = (f"LEAK ({result.leak_kind or '?'}) on {', '.join(leaks)} "
                 f"({len(leaks)} of {len(routes)} routes); "
                 f"worst {worst.route if worst else None}: {format_rate(bpr['traced'])} B/request traced, "
                 f"{format_rate(bpr['uss'])} B/request {worst.memory_name if worst else 'USS'}")
    elif verdict in ("errors", "inconclusive"):
        from memprobe.render.hunt import unmeasured_words

        words = f"no leak found, but {unmeasured_words(result)} (exit {int(result.exit_code)})"
    elif verdict == "bounded":
        from memprobe.render.hunt import bounded_words

        words = f"no leak; {bounded_words(result)}"
    elif verdict == "clean":
        words = "clean: no growth beyond noise"
    else:
        words = "no route measured"
    return tag("div", Safe(_badge(verdict) + " " + esc(words)), cls=f"verdict {_LOOK.get(verdict, verdict)}")


#: verdicts the evidence gave, shown in the page's amber (its colours are leak, bounded, clean)
_LOOK = {"inconclusive": "warn", "errors": "warn"}


def _badge(verdict: str) -> Safe:
    return badge(verdict, _LOOK.get(verdict))


def _sites(sites: list[Site]) -> Safe:
    rows = []
    for i, s in enumerate(sites[:_SITES], 1):
        where = tag("span", f"{short_path(s.file)}:{s.line}", cls="mono")
        if s.user:
            where = Safe(where + " " + badge("your code", "info"))
        code = tag("pre", s.code) if s.code else Safe("")
        frames = s.traceback
        if frames:
            tb = join(tag("li", Safe(tag("span", f"{short_path(f.get('file', '?'))}:{f.get('line')}", cls="mono")
                                     + (" ←" if f.get("user") else ""))) for f in frames)
            summary = tag("summary", f"traceback ({len(frames)} frames, oldest first)")
            code = Safe(code + tag("details", Safe(summary + tag("ol", tb))))
        rows.append([i, Safe(where + code), format_bytes(round(s.bytes_per_request, 2)),
                     f"{s.count_per_request:.2f}", format_bytes(s.size_diff, signed=True)])
    return table(["#", "allocated at (the line shown)", "per request", "blocks/request", "total"], rows,
                 numeric=(0, 2, 3, 4), cls="sites")


def _types(types: list[dict[str, Any]]) -> Safe:
    rows = [[tag("span", t.get("type"), cls="mono"), f"{t.get('count_before', 0):,} → {t.get('count', 0):,}",
             f"{t.get('count_per_request', 0):+.2f}",
             "-" if t.get("bytes_per_request") is None else format_bytes(t["bytes_per_request"], signed=True)]
            for t in types[:_TYPES]]
    return table(["type", "objects", "objects/request", "bytes/request"], rows, numeric=(1, 2, 3))


def _holders(holders: list[Holder]) -> Safe:
    from memprobe.render.hunt import bounds_sentence

    items = []
    for h in holders[:_HOLDERS]:
        said = [tag("p", x, cls="muted") for x in (h.note, bounds_sentence(h)) if x]
        items.append(tag("li", Safe(
            tag("b", h.description) + esc(f": {h.entries_before:,} → {h.entries:,} entries, "
                                          f"{h.entries_per_request:+.2f} per request")
            + join(said)
            + (tag("ol", join(tag("li", tag("code", step)) for step in h.chain), cls="chain")
               if h.chain else ""))))
    return tag("ul", join(items))


def _site_cell(site: Site | None) -> Any:
    if site is None:
        return ""
    import os

    where = tag("span", f"{os.path.basename(site.file)}:{site.line}", cls="mono", title=short_path(site.file))
    if site.user:
        where = Safe(where + " " + badge("your code", "info"))
    return tag("span", where, cls="nowrap")


def _workers(route: RouteResult) -> Safe:
    """The route's processes side by side: their memory over requests, then one row each."""
    from memprobe.render.hunt import respawned_note, worker_holder, worker_site

    respawns = any(w.respawned for w in route.workers)
    rows = []
    for w in route.workers:
        bpr = w.bytes_per_request
        row = [tag("span", w.pid, cls="mono"), tag("span", w.role, cls="nowrap"),
               w.requests if w.role == "worker" else "-", badge(w.verdict or "?"), format_rate(bpr["traced"]),
               format_rate(bpr["uss"]), _site_cell(worker_site(w)), worker_holder(w)]
        rows.append(row + ([respawned_note(w)] if respawns else []))
    served = sum(w.requests for w in route.workers if w.role == "worker")
    parts: list[Any] = [
        tag("h3", "Worker by worker"),
        tag("p", f"{len(route.workers)} processes, {served:,} requests served by the workers; each one "
                 "judged on its own series, over the requests it served (the master serves none: "
                 "it is read from outside, over the server's requests). The server's verdict above "
                 f"is on the traced heaps and {route.memory_name} summed.", cls="muted"),
        figure(plots.worker_series(route),
               "Growth of each process above its own baseline after each round, against the requests "
               "it served; dashed: the server as a whole. A respawned worker starts a line of its own."),
        table(["pid", "role", "requests served", "verdict", "traced B/request", "USS B/request",
               "top site", "held by"] + (["respawned"] if respawns else []), rows, numeric=(0, 2, 4, 5),
              cls="workers"),
    ]
    return join(parts)


def _route(route: RouteResult, warmup: int) -> Safe:
    from memprobe.render.hunt import advice_sentence, sensitivity_sentence

    bpr = route.bytes_per_request
    memory = route.memory_name + ("" if route.memory == "uss" else " summed over the processes")
    parts: list[Any] = [
        tag("h2", Safe(esc(f"Route {route.route} ") + _badge(route.verdict or "?")
                       + (esc(f" ({route.kind})") if route.kind else ""))),
        tag("p", route.judgement.reason or ""),
        *([tag("p", tag("b", advice))] if (advice := advice_sentence(route)) else []),
        *_explained(route),
        *([tag("p", said, cls="muted")] if (said := sensitivity_sentence(route)) else []),
        definition_list([("traced heap", f"{format_rate(bpr['traced'])} B/request"),
                         (memory, f"{format_rate(bpr['uss'])} B/request"),
                         ("requests measured", route.requests),
                         ("load", _load_line(route.load)),
                         ("took", f"{route.duration_s:.1f} s")]),
    ]
    parts += [tag("p", f"note: {n}", cls="muted") for n in route.notes]
    parts.append(figure(plots.route_series(route, warmup),
                        "Growth above the baseline (taken after the warm-up and a gc.collect()) after each "
                        "round; dashed: the least-squares line, whose slope is the bytes per request."))
    if route.workers:
        parts.append(_workers(route))
    from memprobe.render.hunt import rss_sentence

    if rss_sentence(route):
        parts += [tag("h3", "Which line (by RSS)"), tag("p", rss_sentence(route) + ".")]
    if route.sites:
        parts += [tag("h3", "Where it was allocated (top growing sites)"), _sites(route.sites)]
    if route.types:
        parts += [tag("h3", "Growing types"), _types(route.types)]
    if route.holders:
        parts += [tag("h3", "What holds it"), _holders(route.holders)]
    return tag("section", join(parts), cls="route")


def _explained(route: RouteResult) -> list[Safe]:
    """What the route's reason does not say already: where native growth comes from, what the
    allocators showed."""
    from memprobe.render.hunt import NATIVE_SENTENCE, allocator_sentence

    out = []
    if route.kind == "native":
        out.append(tag("p", NATIVE_SENTENCE, cls="muted"))
    said = allocator_sentence(route)
    if said and said != route.judgement.reason:
        out.append(tag("p", f"Allocators: {said}"))
    return out


def _load_line(load: dict[str, Any]) -> str:
    if not load:
        return ""
    keys = [("sent", "sent"), ("ok", "ok"), ("failed", "failed"), ("timeouts", "timeouts")]
    return ", ".join(f"{load[k]} {label}" for k, label in keys if k in load)


@renders("html", "hunt")
def hunt(result: HuntResult) -> str:
    """Verdict, bytes per request with error bars, then per route: the series with its fitted
    line and the warm-up shaded, the sites with their source lines, types and holders."""
    s = result.settings
    routes = result.routes
    body: list[Any] = [_verdict(result)]
    body += [tag("p", f"note: {n}", cls="muted") for n in result.notes]
    if routes:
        rows = [[tag("a", r.route, href=f"#route-{i}"), _badge(r.verdict or "?"), r.kind or "-",
                 format_rate(r.bytes_per_request["traced"]), format_rate(r.bytes_per_request["uss"]),
                 r.holders[0].description if r.holders and r.verdict != "clean" else ""]
                for i, r in enumerate(routes)]
        from memprobe.render.hunt import memory_name

        body += [tag("h2", "Routes"),
                 table(["route", "verdict", "kind", "traced B/request", f"{memory_name(result)} B/request",
                        "held by"], rows,
                       numeric=(3, 4)),
                 figure(plots.bytes_per_request(routes), f"Bytes per request, traced Python heap and {memory_name(result)}, "
                        "with ± one standard error of the slope; red: leak, orange: bounded, green: clean.")]
    for i, r in enumerate(routes):
        body.append(Safe(f'<div id="route-{i}"></div>') + _route(r, s.warmup))
    body += [tag("h2", "Settings"), definition_list(
        [("target", result.target), ("app", ", ".join(x for x in (result.framework, result.app_kind) if x)),
         *([("protocol", f"sequential: rounds until the readings decide, at most "
                         f"{s.max_requests:,} requests or {s.max_seconds:g} s a route")] if s.sequential
           else [("requests per round", s.requests), ("rounds", s.rounds)]),
         ("warm-up", s.warmup),
         ("connections", s.concurrency), ("traceback depth", s.frames), ("command", s.cmd),
         ("start-up", f"{result.startup_s:.1f} s"), ("took", f"{result.duration_s:.1f} s")])]
    return page(f"memprobe hunt {result.target}", join(body),
                _settings_line([("", f"{len(routes)} route(s)"),
                                *([("", "rounds until decided")] if s.sequential else
                                  [("", f"{s.requests} requests"), ("×", f"{s.rounds} rounds")]),
                                ("warm-up", s.warmup)]))


# -- check -----------------------------------------------------------------------------------

def _prose(text: str) -> Safe:
    """Escaped text with its `code spans` shown as code (the check's messages use them)."""
    import re

    return Safe(re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(text)))


@renders("html", "check")
def check(result: CheckResult) -> str:
    """The checklist with each item's status, findings (file:line, source line, measured
    evidence), why and how to fix."""
    counts = result.counts()
    passed = not result.failed
    state = "pass" if passed else "fail"
    words = ", ".join(f"{counts.get(k, 0)} {k}" for k in ("fail", "warn", "info"))
    body: list[Any] = [tag("div", Safe(badge("passed" if passed else "failed", state) + " " + esc(words)),
                           cls=f"verdict {state}")]
    if result.errors:
        body.append(tag("ul", join(tag("li", f"{e.file}:{e.line}: {e.message} (file skipped)")
                                   for e in result.errors)))
    rows = [[badge(c.status, c.status.replace("/", "")), tag("b", c.rule), _prose(c.title),
             c.findings or "", c.note or ""]
            for c in result.checklist if not c.rule.startswith("MP9")]
    body += [tag("h2", "Checklist"),
             table(["status", "rule", "item", "findings", "note"], rows, numeric=(3,))]
    if result.findings:
        body.append(tag("h2", "Findings and evidence"))
        for rule in dict.fromkeys(f.rule for f in result.findings):
            mine = findings_of(result, rule)
            items = []
            for f in mine:
                bits = [tag("span", f"{f.file}:{f.line}", cls="mono"), esc(" "), badge(f.severity.value),
                        esc(" "), _prose(f.message)]
                if f.snippet:
                    bits.append(tag("pre", f"{f.line:>4} │ {f.snippet}"))
                if f.evidence:
                    bits.append(tag("p", Safe(tag("b", "measured: ") + esc(evidence_line(f.evidence)))))
                items.append(tag("li", join(bits)))
            body += [tag("h3", f"{rule}: {mine[0].title}"), tag("ul", join(items)),
                     tag("p", Safe(tag("b", "Why: ") + _prose(mine[0].rationale or ""))),
                     tag("p", Safe(tag("b", "Fix: ") + _prose(mine[0].advice or "")))]
    advice = [c for c in result.checklist if c.rule.startswith("MP9")]
    if advice:
        body += [tag("h2", "Advice that source code cannot prove"),
                 table(["status", "rule", "item", "advice"],
                       [[badge(c.status, c.status.replace("/", "")), tag("b", c.rule), _prose(c.title),
                         _prose(c.advice or "")] for c in advice])]
    if result.runtime.get("summary"):
        body += [tag("h2", "Measured (--run)"), tag("p", result.runtime["summary"])]
    context = ("Flask app" if result.flask_detected else "no Flask found: generic rules only") + \
        f", {len(result.files)} file(s) checked"
    return page(f"memprobe check {result.target}", join(body), context)


# -- hammer ----------------------------------------------------------------------------------

@renders("html", "hammer")
def hammer(result: HammerResult) -> str:
    """The load's figures and the watched process tree's memory."""
    from memprobe.render.hammer import SHOWN, change, load_lines, memory_rows

    body: list[Any] = [tag("ul", join(tag("li", line) for line in load_lines(result)))]
    if result.before is not None and result.after is not None:
        rows = []
        for name, before, after in memory_rows(result):
            row: list[Any] = [name]
            for f in SHOWN:
                x, y, d = change(before, after, f)
                row += [format_bytes(x), format_bytes(y), format_bytes(d, signed=True)]
            rows.append(row)
        header = ["process"] + [f"{f.upper()} {w}" for f in SHOWN for w in ("before", "after", "Δ")]
        body += [tag("h2", f"Memory of pid {result.pid} and its children"),
                 table(header, rows, numeric=range(1, 10))]
    return page(f"memprobe hammer {result.load.url}", join(body), result.envelope.started or "")


# -- two runs --------------------------------------------------------------------------------

@renders("html", "diff")
def diff(result: RunDiff) -> str:
    """What changed between two runs: the highlights, a chart, and every figure side by side."""
    la, lb = result.labels
    sections = result.sections()
    lines = highlights(sections, result.labels)
    body: list[Any] = [tag("div", tag("ul", join(tag("li", x) for x in lines)) if lines
                           else esc("Nothing changed beyond noise."), cls="verdict")]
    body.append(_diff_chart(result))
    for section in sections:
        if not section["rows"]:
            continue
        figures = section["rows"][0]["figures"]
        header = [section["key"]] + [f["label"] for f in figures]
        numeric = [i + 1 for i, f in enumerate(figures) if f["unit"] != "text"]
        rows = [[tag("b", row["name"])] + [_diff_cell(f) for f in row["figures"]] for row in section["rows"]]
        body += [tag("h2", section["title"]), tag("p", f"{la} → {lb}; below: the change", cls="muted small"),
                 table(header, rows, numeric=numeric)]
        body += [tag("p", n, cls="muted") for n in section["notes"]]
    return page(f"memprobe {result.a.kind}: {la} → {lb}", join(body),
                f"A: {la} · B: {lb} · green: better, red: worse, beyond {int(100 * 0.02)} % noise")


def _diff_cell(fig: dict[str, Any]) -> Safe:
    if fig["unit"] == "text" and fig["a"] == fig["b"]:
        return esc(fig["a_text"])
    values = esc(fig["a_text"] if fig["a_text"] == fig["b_text"] else f"{fig['a_text']} → {fig['b_text']}")
    if fig["unit"] == "text":
        return tag("span", values, cls="changed")
    return Safe(values + Safe("<br>") + tag("span", change_text(fig), cls=f"small {fig['direction']}"))


def _diff_chart(result: RunDiff) -> Safe:
    la, lb = result.labels
    a, b = result.a, result.b
    if isinstance(a, CompareResult) and isinstance(b, CompareResult):
        ra = {r.name: r.figures for r in a.results if r.figures is not None and r.figures.after is not None}
        rb = {r.name: r.figures for r in b.results if r.figures is not None and r.figures.after is not None}
        names = list(dict.fromkeys(list(ra) + list(rb)))
        if not names:
            return Safe("")
        first = [ra[n].after if n in ra else None for n in names]
        second = [rb[n].after if n in rb else None for n in names]
        return figure(plots.memory_bars(names, first, second, labels=(la, lb)),
                      f"Memory after the hammering per framework: {la} (light) and {lb} (dark).")
    if isinstance(a, HuntResult) and isinstance(b, HuntResult) and (a.routes or b.routes):
        return figure(plots.bytes_per_request(a.routes, labels=(la, lb), others=b.routes),
                      f"Bytes per request per route, ± one standard error: {la} (circles) "
                      f"and {lb} (squares).")
    return Safe("")
