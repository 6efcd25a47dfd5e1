"""Self-contained HTML reports: one file, inline SVG plots, no scripts, nothing fetched.

Each renderer reads only ``result.to_dict()`` (so ``memprobe report`` re-renders a saved run
exactly) and escapes every string that came from the app. Plots need matplotlib (the ``html``
extra); the check report has none and renders without it.
"""
from __future__ import annotations

from typing import Any

from memprobe.render import plots, renders
from memprobe.render.check import evidence_line
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
from memprobe.units import format_bytes

_SITES = 8
_TYPES = 10
_HOLDERS = 5


def require() -> None:
    """Raise :class:`~memprobe.errors.MissingDependency` now if HTML plots cannot be drawn,
    so a command can fail before it measures rather than after."""
    plots.pyplot()


def _mib(v: float | None) -> str:
    return "-" if v is None else f"{v / 2**20:.1f}"


def _pct(p: float | None) -> str:
    return "" if p is None else f" ({p:+.1f} %)"


def _settings_line(pairs: list[tuple[str, Any]]) -> str:
    return " · ".join(f"{k} {v}" for k, v in pairs if v not in (None, ""))


# -- compare ---------------------------------------------------------------------------------

@renders("html", "compare")
def compare(result: Any) -> str:
    """The table of every framework, memory bars before/after, memory over requests."""
    data = result.to_dict()
    s, m = data.get("settings") or {}, data.get("machine") or {}
    rows = data.get("results") or []
    measured = [r for r in rows if r.get("requests")]
    body: list[Any] = []
    if data.get("interrupted"):
        body.append(tag("p", "Interrupted: partial results.", cls="verdict fail"))
    header = ["framework", "status"]
    header += [f"{f.upper()} MiB" for f in ("rss", "uss", "pss")] + ["VMS Δ"]
    header += ["ok / sent", "failed", "req/s", "p50 ms", "p99 ms", "max ms"]
    cells = []
    for r in rows:
        before, after = r.get("before") or {}, r.get("after") or {}
        delta, pct = r.get("delta") or {}, r.get("delta_pct") or {}
        req, lat = r.get("requests") or {}, r.get("latency_ms") or {}
        who = Safe(tag("b", r.get("framework")) + " " + tag("span", r.get("version") or "?", cls="muted")
                   + Safe("<br>") + tag("span", r.get("server") or "", cls="small muted"))
        row: list[Any] = [who, badge(r.get("status") or "?")]
        for f in ("rss", "uss", "pss"):
            row.append(Safe(esc(f"{_mib(before.get(f))} → {_mib(after.get(f))}") + Safe("<br>")
                            + tag("span", format_bytes(delta.get(f), signed=True) + _pct(pct.get(f)),
                                  cls="small muted")))
        row.append(format_bytes(delta.get("vms"), signed=True))
        if req:
            timeouts = f" ({req.get('timeouts')} timeouts)" if req.get("timeouts") else ""
            failed = tag("span", f"{req.get('failed')}{timeouts}", cls="worse" if req.get("failed") else "")
            row += [f"{req.get('ok')} / {req.get('sent')}", failed, f"{r.get('throughput_rps', 0):.0f}"]
            row += [f"{lat[k]:.2f}" if lat.get(k) is not None else "-" for k in ("p50", "p99", "max")]
        else:
            row += ["-"] * 6
        cells.append(row)
    body += [tag("h2", "Every framework"),
             tag("p", "Memory before → after the hammering, and the change; latency in milliseconds.",
                 cls="muted"),
             table(header, cells, numeric=range(2, len(header)))]
    problems = [r for r in rows if r.get("status") != "ok"]
    if problems:
        body.append(tag("ul", join(tag("li", Safe(f"{tag('b', r.get('framework'))}: {badge(r.get('status') or '?')} "
                                                  f"{esc(r.get('reason') or '')} {esc(r.get('pip') or '')}"))
                                   for r in problems)))
        for r in problems:
            if r.get("log_tail"):
                body.append(Safe(tag("h3", f"{r.get('framework')}: last lines of its log") + tag("pre", r["log_tail"])))
    if measured:
        body += [tag("h2", "Memory before and after the hammering"),
                 figure(plots.memory_bars(measured), "Each framework's memory after start-up and settling "
                        "(before) and after the requests and settling (after).")]
        lines = plots.memory_over_requests(measured)
        if lines:
            body += [tag("h2", "Memory over requests"),
                     figure(lines, "Memory read while the requests were sent, against the requests answered "
                            "so far; one line per framework (lighter lines: further rounds).")]
    spreads = [r for r in measured if r.get("spread")]
    if spreads:
        keys = list(spreads[0]["spread"])
        body += [tag("h2", "Spread over rounds"), tag("p", "min - max; the tables show medians.", cls="muted"),
                 table(["framework"] + keys, [[r["framework"]] + [_spread_cell(k, r["spread"].get(k)) for k in keys]
                                              for r in spreads], numeric=range(1, len(keys) + 1))]
    body += [tag("h2", "Settings and machine"), definition_list([
        ("requests per framework", s.get("requests")), ("timeout", f"{s.get('timeout_s')} s"),
        ("connections", f"{s.get('concurrency')} ({s.get('mode')})"), ("warm-up", s.get("warmup")),
        ("settle", f"{s.get('settle_s')} s"), ("rounds", s.get("rounds")), ("path", s.get("path")),
        ("started", data.get("started")), ("took", f"{data.get('duration_s', 0):.1f} s"),
        ("Python", f"{m.get('python')} ({m.get('implementation')})"), ("platform", m.get("platform")),
        ("CPUs", m.get("cpus")), ("memory", format_bytes(m.get("memory_total"))), ("psutil", m.get("psutil"))])]
    subtitle = _settings_line([("", f"{s.get('requests')} requests per framework"),
                               ("timeout", f"{s.get('timeout_s')} s"), ("connections", s.get("concurrency")),
                               ("started", data.get("started"))])
    return page("memprobe compare", join(body), subtitle)


def _spread_cell(key: str, spread: dict[str, Any] | None) -> str:
    if not spread:
        return "-"
    if key.endswith(("_after", "_delta")):
        return f"{format_bytes(spread['min'])} - {format_bytes(spread['max'])}"
    return f"{spread['min']:.1f} - {spread['max']:.1f}"


# -- hunt ------------------------------------------------------------------------------------

def _bpr(signal: dict[str, Any] | None) -> str:
    return "-" if not signal else f"{signal['value']:+.1f} ± {signal['error']:.1f}"


def _verdict(data: dict[str, Any]) -> Safe:
    routes = data.get("routes") or []
    verdict = data.get("verdict") or "none"
    if data.get("error"):
        words = f"stopped: {data['error']}"
    elif verdict == "leak":
        leaks = [r["route"] for r in routes if r.get("verdict") == "leak"]
        bpr = data.get("bytes_per_request") or {}
        words = (f"LEAK ({data.get('leak_kind') or '?'}) on {', '.join(leaks)} ({len(leaks)} of {len(routes)} routes); "
                 f"worst {data.get('route')}: {_bpr(bpr.get('traced'))} B/request traced, "
                 f"{_bpr(bpr.get('uss'))} B/request USS")
    elif verdict == "bounded":
        words = "no leak; bounded growth on " + ", ".join(r["route"] for r in routes if r.get("verdict") == "bounded")
    elif verdict == "clean":
        words = "clean: no growth beyond noise"
    else:
        words = "no route measured"
    return tag("div", Safe(badge(verdict) + " " + esc(words)), cls=f"verdict {verdict}")


def _short(path: str) -> str:
    from memprobe.render.hunt import short_path

    return short_path(path)


def _sites(sites: list[dict[str, Any]]) -> Safe:
    rows = []
    for i, s in enumerate(sites[:_SITES], 1):
        where = tag("span", f"{_short(s.get('file', '?'))}:{s.get('line')}", cls="mono")
        if s.get("user_code"):
            where = Safe(where + " " + badge("your code", "info"))
        code = tag("pre", s["code"]) if s.get("code") else Safe("")
        frames = s.get("traceback") or []
        if frames:
            tb = join(tag("li", Safe(tag("span", f"{_short(f.get('file', '?'))}:{f.get('line')}", cls="mono")
                                     + (" ←" if f.get("user") else ""))) for f in frames)
            code = Safe(code + tag("details", Safe(tag("summary", f"traceback ({len(frames)} frames, oldest first)")
                                                    + tag("ol", tb))))
        rows.append([i, Safe(where + code), format_bytes(s.get("bytes_per_request")),
                     f"{s.get('count_per_request', 0):.2f}", format_bytes(s.get("size_diff"), signed=True)])
    return table(["#", "allocated at (the line shown)", "per request", "blocks/request", "total"], rows,
                 numeric=(0, 2, 3, 4), cls="sites")


def _types(types: list[dict[str, Any]]) -> Safe:
    rows = [[tag("span", t.get("type"), cls="mono"), f"{t.get('count_before', 0):,} → {t.get('count', 0):,}",
             f"{t.get('count_per_request', 0):+.2f}",
             format_bytes(t.get("bytes_per_request"), signed=True) if t.get("bytes_per_request") is not None else "-"]
            for t in types[:_TYPES]]
    return table(["type", "objects", "objects/request", "bytes/request"], rows, numeric=(1, 2, 3))


def _holders(holders: list[dict[str, Any]]) -> Safe:
    items = []
    for h in holders[:_HOLDERS]:
        chain = h.get("chain") or []
        items.append(tag("li", Safe(
            tag("b", h.get("description")) + esc(f": {h.get('entries_before', 0):,} → {h.get('entries', 0):,} entries, "
                                                 f"{h.get('entries_per_request', 0):+.2f} per request")
            + (tag("ol", join(tag("li", tag("code", step)) for step in chain), cls="chain") if chain else ""))))
    return tag("ul", join(items))


def _route(route: dict[str, Any], warmup: int) -> Safe:
    bpr = route.get("bytes_per_request") or {}
    parts: list[Any] = [
        tag("h2", Safe(esc(f"Route {route.get('route')} ") + badge(route.get("verdict") or "?")
                       + (esc(f" ({route['kind']})") if route.get("kind") else ""))),
        tag("p", route.get("reason") or ""),
        definition_list([("traced heap", f"{_bpr(bpr.get('traced'))} B/request"),
                         ("USS", f"{_bpr(bpr.get('uss'))} B/request"),
                         ("requests measured", route.get("requests")),
                         ("load", _load_line(route.get("load") or {})),
                         ("took", f"{route.get('duration_s', 0):.1f} s")]),
    ]
    parts += [tag("p", f"note: {n}", cls="muted") for n in route.get("notes") or []]
    parts.append(figure(plots.route_series(route, warmup),
                        "Growth above the baseline (taken after the warm-up and a gc.collect()) after each "
                        "round; dashed: the least-squares line, whose slope is the bytes per request."))
    if route.get("sites"):
        parts += [tag("h3", "Where it was allocated (top growing sites)"), _sites(route["sites"])]
    if route.get("types"):
        parts += [tag("h3", "Growing types"), _types(route["types"])]
    if route.get("holders"):
        parts += [tag("h3", "What holds it (from a root)"), _holders(route["holders"])]
    return tag("section", join(parts), cls="route")


def _load_line(load: dict[str, Any]) -> str:
    if not load:
        return ""
    keys = [("sent", "sent"), ("ok", "ok"), ("failed", "failed"), ("timeouts", "timeouts")]
    return ", ".join(f"{load[k]} {label}" for k, label in keys if k in load)


@renders("html", "hunt")
def hunt(result: Any) -> str:
    """Verdict, bytes per request with error bars, then per route: the series with its fitted
    line and the warm-up shaded, the sites with their source lines, types and holders."""
    data = result.to_dict()
    s = data.get("settings") or {}
    routes = data.get("routes") or []
    body: list[Any] = [_verdict(data)]
    body += [tag("p", f"note: {n}", cls="muted") for n in data.get("notes") or []]
    if routes:
        rows = [[tag("a", r.get("route"), href=f"#route-{i}"), badge(r.get("verdict") or "?"), r.get("kind") or "-",
                 _bpr((r.get("bytes_per_request") or {}).get("traced")),
                 _bpr((r.get("bytes_per_request") or {}).get("uss")),
                 (r.get("holders") or [{}])[0].get("description", "") if r.get("verdict") != "clean" else ""]
                for i, r in enumerate(routes)]
        body += [tag("h2", "Routes"),
                 table(["route", "verdict", "kind", "traced B/request", "USS B/request", "held by"], rows,
                       numeric=(3, 4)),
                 figure(plots.bytes_per_request(routes), "Bytes per request, traced Python heap and USS, "
                        "with ± one standard error of the slope; red: leak, orange: bounded, green: clean.")]
    for i, r in enumerate(routes):
        body.append(Safe(f'<div id="route-{i}"></div>') + _route(r, int(s.get("warmup") or 0)))
    body += [tag("h2", "Settings"), definition_list(
        [("target", data.get("target")), ("app", ", ".join(x for x in (data.get("framework"), data.get("app_kind")) if x)),
         ("requests per round", s.get("requests")), ("rounds", s.get("rounds")), ("warm-up", s.get("warmup")),
         ("connections", s.get("concurrency")), ("traceback depth", s.get("frames")), ("command", s.get("cmd")),
         ("start-up", f"{data.get('startup_s', 0):.1f} s"), ("took", f"{data.get('duration_s', 0):.1f} s")])]
    return page(f"memprobe hunt {data.get('target')}", join(body),
                _settings_line([("", f"{len(routes)} route(s)"), ("", f"{s.get('requests')} requests"),
                                ("×", f"{s.get('rounds')} rounds"), ("warm-up", s.get("warmup"))]))


# -- check -----------------------------------------------------------------------------------

def _prose(text: str) -> Safe:
    """Escaped text with its `code spans` shown as code (the check's messages use them)."""
    import re

    return Safe(re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(text)))


@renders("html", "check")
def check(result: Any) -> str:
    """The checklist with each item's status, findings (file:line, source line, measured
    evidence), why and how to fix."""
    data = result.to_dict()
    counts = data.get("counts") or {}
    passed = data.get("passed")
    state = "pass" if passed else "fail"
    words = ", ".join(f"{counts.get(k, 0)} {k}" for k in ("fail", "warn", "info"))
    body: list[Any] = [tag("div", Safe(badge("passed" if passed else "failed", state) + " " + esc(words)),
                           cls=f"verdict {state}")]
    if data.get("errors"):
        body.append(tag("ul", join(tag("li", f"{e['file']}:{e['line']}: {e['message']} (file skipped)")
                                   for e in data["errors"])))
    findings = data.get("findings") or []
    rows = [[badge(c["status"], c["status"].replace("/", "")), tag("b", c["rule"]), _prose(c["title"]),
             c.get("findings") or "", c.get("note") or ""]
            for c in data.get("checklist") or [] if not c["rule"].startswith("MP9")]
    body += [tag("h2", "Checklist"), table(["status", "rule", "item", "findings", "note"], rows, numeric=(3,))]
    if findings:
        body.append(tag("h2", "Findings and evidence"))
        for rule in dict.fromkeys(f["rule"] for f in findings):
            mine = [f for f in findings if f["rule"] == rule]
            items = []
            for f in mine:
                bits = [tag("span", f"{f['file']}:{f['line']}", cls="mono"), esc(" "), badge(f["severity"]),
                        esc(" "), _prose(f["message"])]
                if f.get("snippet"):
                    bits.append(tag("pre", f"{f['line']:>4} │ {f['snippet']}"))
                if f.get("evidence"):
                    bits.append(tag("p", Safe(tag("b", "measured: ") + esc(evidence_line(f["evidence"])))))
                items.append(tag("li", join(bits)))
            body += [tag("h3", f"{rule}: {mine[0]['title']}"), tag("ul", join(items)),
                     tag("p", Safe(tag("b", "Why: ") + _prose(mine[0].get("rationale") or ""))),
                     tag("p", Safe(tag("b", "Fix: ") + _prose(mine[0].get("advice") or "")))]
    advice = [c for c in data.get("checklist") or [] if c["rule"].startswith("MP9")]
    if advice:
        body += [tag("h2", "Advice that source code cannot prove"),
                 table(["status", "rule", "item", "advice"],
                       [[badge(c["status"], c["status"].replace("/", "")), tag("b", c["rule"]), _prose(c["title"]),
                         _prose(c.get("advice") or "")] for c in advice])]
    runtime = data.get("runtime") or {}
    if runtime.get("summary"):
        body += [tag("h2", "Measured (--run)"), tag("p", runtime["summary"])]
    context = ("Flask app" if data.get("flask_detected") else "no Flask found: generic rules only") + \
        f", {len(data.get('files') or [])} file(s) checked"
    return page(f"memprobe check {data.get('target')}", join(body), context)


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
    return page(f"memprobe hammer {result.load.url}", join(body), result.started or "")


# -- two runs --------------------------------------------------------------------------------

@renders("html", "diff")
def diff(result: Any) -> str:
    """What changed between two runs: the highlights, a chart, and every figure side by side."""
    data = result.to_dict()
    la, lb = data["labels"]
    lines = highlights(data)
    body: list[Any] = [tag("div", tag("ul", join(tag("li", x) for x in lines)) if lines
                           else esc("Nothing changed beyond noise."), cls="verdict")]
    body.append(_diff_chart(data))
    for section in data["sections"]:
        if not section["rows"]:
            continue
        figures = section["rows"][0]["figures"]
        header = [section["key"]] + [f["label"] for f in figures]
        numeric = [i + 1 for i, f in enumerate(figures) if f["unit"] != "text"]
        rows = [[tag("b", row["name"])] + [_diff_cell(f) for f in row["figures"]] for row in section["rows"]]
        body += [tag("h2", section["title"]), tag("p", f"{la} → {lb}; below: the change", cls="muted small"),
                 table(header, rows, numeric=numeric)]
        body += [tag("p", n, cls="muted") for n in section["notes"]]
    return page(f"memprobe {data['of']}: {la} → {lb}", join(body),
                f"A: {la} · B: {lb} · green: better, red: worse, beyond {int(100 * 0.02)} % noise")


def _diff_cell(fig: dict[str, Any]) -> Safe:
    if fig["unit"] == "text" and fig["a"] == fig["b"]:
        return esc(fig["a_text"])
    values = esc(fig["a_text"] if fig["a_text"] == fig["b_text"] else f"{fig['a_text']} → {fig['b_text']}")
    if fig["unit"] == "text":
        return tag("span", values, cls="changed")
    return Safe(values + Safe("<br>") + tag("span", change_text(fig), cls=f"small {fig['direction']}"))


def _diff_chart(data: dict[str, Any]) -> Safe:
    la, lb = data["labels"]
    a, b = data["a"], data["b"]
    if data["of"] == "compare":
        ra = {r["framework"]: r for r in a.get("results") or [] if r.get("after")}
        rb = {r["framework"]: r for r in b.get("results") or [] if r.get("after")}
        names = [n for n in dict.fromkeys(list(ra) + list(rb))]
        if not names:
            return Safe("")
        rows = [{"framework": n, "A": (ra.get(n) or {}).get("after"), "B": (rb.get(n) or {}).get("after")}
                for n in names]
        return figure(plots.memory_bars(rows, labels=(la, lb), keys=("A", "B")),
                      f"Memory after the hammering per framework: {la} (light) and {lb} (dark).")
    if data["of"] == "hunt" and (a.get("routes") or b.get("routes")):
        return figure(plots.bytes_per_request(a.get("routes") or [], labels=(la, lb), others=b.get("routes") or []),
                      f"Bytes per request per route, ± one standard error: {la} (circles) and {lb} (squares).")
    return Safe("")
