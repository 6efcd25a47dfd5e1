"""Text and Markdown for ``hunt`` results.

Both take a :class:`~memprobe.results.hunt.HuntResult`, live or read back with ``from_dict``,
so a saved run re-renders as the live one.
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable

from rich.console import Group
from rich.table import Table
from rich.text import Text

from memprobe.render import renders
from memprobe.render.terminal import to_text
from memprobe.results.hunt import Holder, HuntResult, RouteResult, Site, WorkerResult
from memprobe.units import format_bytes, format_rate, short_path

_STYLE = {"leak": "bold red", "bounded": "yellow", "clean": "green", "inconclusive": "magenta",
          "errors": "bold magenta"}
_SITES_SHOWN = 5
_TB_SHOWN = 4


def _settings(result: HuntResult) -> str:
    s = result.settings
    what = ", ".join(x for x in (result.framework, result.app_kind) if x)
    routes = len(result.routes)
    if s.sequential:
        rounds = (f"rounds until the readings decide (at most {s.max_requests:,} requests or "
                  f"{s.max_seconds:g} s a route)")
    else:
        rounds = f"{s.requests} requests x {s.rounds} rounds"
    return (f"{what}; {routes} route{'s' if routes != 1 else ''}; {rounds} after {s.warmup} warm-up, "
            f"{s.concurrency} connections; {result.duration_s:.1f} s")


_STOPPED = {"leak": "the readings showed a leak", "clean": "the readings were flat enough",
            "bounded": "the growth had stopped long enough", "max_requests": "the maximum of requests",
            "time_limit": "the time limit", "fixed": "the fixed rounds were done",
            "interrupted": "interrupted"}


def sensitivity_sentence(r: RouteResult) -> str:
    """``/: could see leaks of 15.8 B/request or more in the traced heap (246 B/request or more
    in USS) after 2,148 requests; stopped: the readings were flat enough``; empty for a result
    without the figures (written before they existed)."""
    sens = {k: v for k, v in (r.sensitivity or {}).items() if v is not None and math.isfinite(v)}
    if not sens:
        return ""
    shown = [f"{sens['traced']:,.1f} B/request or more in the traced heap"] if "traced" in sens else []
    if "uss" in sens:
        outside = f"{sens['uss']:,.0f} B/request or more in {r.memory_name}"
        shown.append(f"({outside})" if shown else outside)
    why = _STOPPED.get(r.stopped_because or "", r.stopped_because or "")
    return (f"{r.route}: could see leaks of {' '.join(shown)} after {r.requests:,} requests"
            + (f"; stopped: {why}" if why else ""))


def cli_flag(setting: str) -> str:
    """A hunt setting as the command line spells it (``max_seconds`` -> ``--max-seconds``)."""
    return {"method": "-X METHOD", "headers": "-H 'Name: value'", "body": "--body"}.get(
        setting, "--" + setting.replace("_", "-"))


def advice_sentence(r: RouteResult, name: Callable[[str], str] = cli_flag) -> str:
    """What gets the evidence a route lacks, with each setting spelt by ``name`` (the CLI's
    flags by default; the pytest marker's keywords there): ``to get evidence: --max-seconds 160
    (more requests), or --sensitivity 640 (accept that smaller leaks go unseen)``; for a route
    that answered only errors, how to send the request it needs. Empty for any other route."""
    if r.verdict == "errors" and r.judgement.reason.startswith("the app rejected every replayed request"):
        return (f"to exercise it: add what the replayed requests lack with {name('headers')}, or edit "
                "the capture file's lines")
    if r.verdict == "errors":
        return (f"to exercise it: hunt it with the request it needs, {name('route')} with "
                f"{name('method')}, {name('headers')} or {name('body')} (e.g. an Authorization "
                f"header, a POST with its JSON body)")
    if r.verdict != "inconclusive" or not r.advice:
        return ""
    def given(setting: str, value: Any) -> str:
        spelt = name(setting)
        return f"{spelt}{value!r}" if spelt.endswith("=") else f"{spelt} {value:,}"

    more = [given(k, v) for k, v in r.advice.items() if k != "sensitivity"]
    out = []
    if more:
        out.append(f"{' and '.join(more)} (more requests)")
    if "sensitivity" in r.advice:
        out.append(f"{given('sensitivity', r.advice['sensitivity'])} (accept that leaks below "
                   f"{r.advice['sensitivity']:,} B/request go unseen)")
    return "to get evidence: " + ", or ".join(out)


def _top_holder(route: RouteResult) -> str:
    return route.holders[0].description if route.holders and route.verdict != "clean" else ""


def _site_line(site: Site) -> str:
    return f"{short_path(site.file)}:{site.line}"


def _trace_tail(site: Site) -> str:
    frames = site.traceback
    user = next((i for i, f in enumerate(frames) if f.get("user")), len(frames) - 1)
    shown = frames[max(0, user - _TB_SHOWN + 1): user + 1]
    return " → ".join(f"{short_path(f['file'])}:{f['line']}" for f in shown)


def memory_name(result: HuntResult) -> str:
    """The routes' outside signal as the report names it: ``USS``, or ``PSS`` when a server's
    processes were summed."""
    return next((r.memory_name for r in result.routes if r.memory != "uss"), "USS")


def _verdict_line(result: HuntResult) -> str:
    routes = result.routes
    leaks = [r.route for r in routes if r.verdict == "leak"]
    if result.error:
        return f"stopped: {result.error}"
    if leaks:
        return f"verdict: LEAK on {', '.join(leaks)} ({len(leaks)} of {len(routes)} routes) -> exit 1"
    unmeasured = unmeasured_words(result)
    if unmeasured:
        return f"verdict: no leak found, but {unmeasured} -> exit {int(result.exit_code)}"
    if any(r.verdict == "bounded" for r in routes):
        return f"verdict: no leak; {bounded_words(result)}"
    return "verdict: clean, no growth beyond noise"


def unmeasured_words(result: HuntResult) -> str:
    """``/bearer answered only errors; /drip is inconclusive``: the routes whose verdict the
    evidence did not allow (empty when none)."""
    out = []
    errors = [r.route for r in result.routes if r.verdict == "errors"]
    vague = [r.route for r in result.routes if r.verdict == "inconclusive"]
    if errors:
        out.append(f"{', '.join(errors)} answered only errors (not exercised)")
    if vague:
        out.append(f"{', '.join(vague)} {'is' if len(vague) == 1 else 'are'} inconclusive "
                   f"(the readings could not see the leaks looked for)")
    return "; ".join(out)


def stderr_line(result: HuntResult) -> str:
    """The one line the CLI writes to stderr when it exits 5 or 6: the first such route, what
    it lacks and what to do (empty for any other exit)."""
    verdict = {5: "inconclusive", 6: "errors"}.get(int(result.exit_code))
    route = next((r for r in result.routes if r.verdict == verdict), None)
    if route is None:
        return ""
    others = sum(r.verdict in ("errors", "inconclusive") for r in result.routes) - 1
    more = f" (and {others} more route{'s' if others > 1 else ''})" if others > 0 else ""
    return f"memprobe: {route.route}{more}: {route.verdict}: {_short(route)}; {advice_sentence(route)}"


def _short(r: RouteResult) -> str:
    """An inconclusive reason without the fitted figures in parentheses at its end."""
    reason = r.judgement.reason
    return reason[: reason.rfind(" (")] if reason.endswith(")") and " (" in reason else reason


def bounded_words(result: HuntResult) -> str:
    """``bounded growth on /lru (capped), allocator retention on /retention``: the routes that
    grew and stop, each said as what stops them."""
    groups: dict[tuple[str, str], list[str]] = {}
    for r in result.routes:
        if r.verdict != "bounded":
            continue
        top = r.holders[0] if r.holders else None
        if r.kind == "retention":
            what = ("allocator retention", "freed memory the allocators keep")
        elif top is not None and (top.bounds or {}).get("cap"):
            what = ("bounded growth", "a cache with a cap")
        else:
            what = ("bounded growth", "a cache filling up?")
        groups.setdefault(what, []).append(r.route)
    return "; ".join(f"{word} on {', '.join(routes)} ({why})" for (word, why), routes in groups.items())


@renders("text", "hunt")
def text(result: HuntResult, color: bool = False, width: int = 120) -> str:
    """The terminal report: a table of routes, then details for each route that grew."""
    parts: list[Any] = [Text(f"memprobe hunt {result.target}", style="bold"),
                        Text(_settings(result), style="dim")]
    for note in result.notes:
        parts.append(Text(f"note: {note}", style="dim"))
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    memory = f"{memory_name(result)} B/req"
    for name, justify in (("route", "left"), ("verdict", "left"), ("kind", "left"),
                          ("traced B/req", "right"), (memory, "right"), ("held by", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in result.routes:
        bpr = r.bytes_per_request
        table.add_row(r.route, Text(r.verdict, style=_STYLE.get(r.verdict, "")),
                      r.kind or "-", format_rate(bpr["traced"]), format_rate(bpr["uss"]), _top_holder(r))
    parts += [Text(""), table]
    reached = [x for x in (sensitivity_sentence(r) for r in result.routes) if x]
    if reached:
        parts += [Text("")] + [Text(x, style="dim") for x in reached]
    if any(r.workers for r in result.routes):
        parts += [Text(""), Text("per process: each judged on the requests it served (the master, which serves "
                                 "none, on the server's), its own USS", style="dim"), _workers_table(result)]
    for r in result.routes:
        if r.verdict != "clean" or r.notes:
            parts += [Text(""), _route_detail(r)]
    parts += [Text(""), Text(_verdict_line(result), style=_STYLE.get(result.verdict or "", ""))]
    return to_text(*parts, color=color, width=width)


def worker_site(w: WorkerResult) -> Site | None:
    """A process's top site: its first in the user's code, else its first."""
    return next((s for s in w.sites if s.user), w.sites[0] if w.sites else None)


def _worker_site(w: WorkerResult) -> str:
    site = worker_site(w)
    return f"{os.path.basename(site.file)}:{site.line}" if site else ""


def worker_holder(w: WorkerResult) -> str:
    """What holds what a process grew (nothing for a clean one)."""
    return w.holders[0].description if w.holders and w.verdict != "clean" else ""


def respawned_note(w: WorkerResult) -> str:
    """``died after 812 requests, respawned as pid 4410`` / ``respawned, replaces pid 4402``."""
    info = w.respawned or {}
    if "replaces" in info:
        return f"respawned, replaces pid {info['replaces']}"
    if info:
        successor = info.get("successor")
        if "lost_after_s" in info:
            return (f"stopped answering after {info.get('died_after_requests', 0)} requests (silent "
                    f"{info['lost_after_s']:g} s): its readings so far are kept"
                    + (f", respawned as pid {successor}" if successor else ""))
        return (f"died after {info.get('died_after_requests', 0)} requests"
                + (f", respawned as pid {successor}" if successor else ""))
    return ""


def _workers_table(result: HuntResult) -> Table:
    """One line per process of each route: the server as a whole is the routes' table."""
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for name, justify in (("route", "left"), ("pid", "right"), ("role", "left"), ("requests", "right"),
                          ("verdict", "left"), ("traced B/req", "right"), ("USS B/req", "right"),
                          ("top site", "left"), ("held by", "left")):
        table.add_column(name, justify=justify, no_wrap=name != "held by")  # type: ignore[arg-type]
    for r in result.routes:
        for i, w in enumerate(r.workers):
            bpr = w.bytes_per_request
            held = worker_holder(w)
            note = respawned_note(w)
            table.add_row(r.route if i == 0 else "", str(w.pid), w.role,
                          str(w.requests) if w.role == "worker" else "-",
                          Text(w.verdict, style=_STYLE.get(w.verdict, "")), format_rate(bpr["traced"]),
                          format_rate(bpr["uss"]), _worker_site(w), "; ".join(x for x in (held, note) if x))
    return table


#: what a native verdict means, under its reason
NATIVE_SENTENCE = ("no Python allocation explains it: the memory comes from outside Python's allocators "
                   "(a C extension, ctypes, a native library); tracemalloc cannot name its line")


def allocator_sentence(r: RouteResult) -> str:
    """What glibc's malloc and pymalloc showed for ``r``, in one sentence (empty when they
    were not read)."""
    return str((r.allocator or {}).get("explanation") or "")


def rss_sentence(r: RouteResult) -> str:
    """A native leak's lines found by RSS, in one sentence (empty when none were found)."""
    if not r.rss_lines:
        return ""
    first = r.rss_lines[0]
    view = str(first.get("view") or "")
    name = view.rsplit(" ", 1)[-1] if view else "the view"
    lines = ", ".join(f"{short_path(str(x['file']))}:{x['line']}"
                      + (f" `{x['code']}`" if x.get("code") else "")
                      + f" {format_bytes(float(x['bytes_per_request']), signed=True)}/request"
                      for x in r.rss_lines)
    total = sum(float(x["bytes_per_request"]) for x in r.rss_lines)
    growth = r.judgement.uss.slope if r.judgement.uss else 0.0
    filled = int(first.get("filled") or 0)
    after = (f", after {filled:,} unprofiled calls used up the free memory the allocator kept resident"
             if filled else "")
    return (f"measured by RSS with memory_profiler's line profiler over {int(first.get('calls', 0)):,} "
            f"calls of {name}{after}, the native memory grows at {lines} ({format_bytes(total)} of the "
            f"{format_bytes(growth)}/request {r.memory_name} growth; RSS is coarser than tracemalloc: "
            f"it moves in 4 KiB pages of the whole process, so the line is right and the bytes "
            f"approximate)")


def _route_detail(r: RouteResult) -> Group:
    kind = f" ({r.kind})" if r.kind else ""
    lines: list[Any] = [Text(f"{r.route}: {r.verdict}{kind}: {r.judgement.reason}",
                             style=_STYLE.get(r.verdict, ""))]
    if advice_sentence(r):
        lines.append(Text(f"  {advice_sentence(r)}", style="bold"))
    for note in r.notes:
        lines.append(Text(f"  note: {note}", style="dim"))
    if r.kind == "native":
        lines.append(Text(f"  {NATIVE_SENTENCE}", style="dim"))
    if rss_sentence(r):
        lines.append(Text(f"  which line: {rss_sentence(r)}", style="bold"))
    said = allocator_sentence(r)
    if said and said != r.judgement.reason:
        lines.append(Text(f"  allocators: {said}"))
    if r.sites:
        lines.append(Text("  where it was allocated (growth per request, deep-traced round):"))
        for i, site in enumerate(r.sites[:_SITES_SHOWN], 1):
            mark = "  <- your code" if site.user else ""
            lines.append(Text(f"  {i}. {_site_line(site)}  {format_bytes(site.bytes_per_request)}"
                              f"  {site.count_per_request:.2f} blocks{mark}",
                              style="bold" if site.user else ""))
            if site.code:
                lines.append(Text(f"       {site.code}", style="cyan"))
            lines.append(Text(f"       {_trace_tail(site)}", style="dim"))
    if r.types:
        shown = ", ".join(
            f"{t['type']} {t['count_per_request']:+.2f}/req"
            + (f" ({format_bytes(t['bytes_per_request'], signed=True)})"
               if t.get("bytes_per_request") else "")
            for t in r.types[:5])
        lines.append(Text(f"  growing types: {shown}"))
    if r.holders:
        lines.append(Text("  held by:"))
        for h in r.holders[:3]:
            lines.append(Text(f"    {h.description}{_growth(h)}"))
            for extra in (h.note, bounds_sentence(h)):
                if extra:
                    lines.append(Text(f"      {extra}", style="dim"))
    return Group(*lines)


def _growth(h: Holder) -> str:
    if h.source == "referrers":
        return " (found from the objects back to a root)"
    if h.entries_per_request:
        return f": {h.entries_per_request:+.2f} entries/request"
    return ""


def bounds_sentence(h: Holder) -> str:
    """What bounds a holder, in one sentence: its cap and ceiling, or its timers."""
    b = h.bounds or {}
    if b.get("cap"):
        text = f"capped at {b['cap']:,} entries ({b.get('by', 'a cap')})"
        if b.get("ceiling_bytes") is not None:
            text += (f": {h.entries:,} now, ≈ {format_bytes(b.get('bytes_per_entry') or 0)} each, "
                     f"≈ {format_bytes(b['ceiling_bytes'])} when full")
            left = b.get("requests_to_cap")
            text += (f", after ≈ {left:,} more requests" if left else ", full already")
        return text
    if b.get("timers"):
        return (f"held by {b['timers']:,} timers due in {b.get('due_median_s', 0):,.0f} s "
                f"(the last in {b.get('due_last_s', 0):,.0f} s): released when they fire")
    return ""


@renders("markdown", "hunt")
def markdown(result: HuntResult) -> str:
    """A Markdown report: the routes table, then sites, types and holders per route."""
    out = [f"# memprobe hunt `{result.target}`", "", _settings(result), ""]
    out += [f"> {note}" for note in result.notes]
    memory = memory_name(result)
    out += ["", f"| route | verdict | kind | traced B/request | {memory} B/request | held by |",
            "|---|---|---|---:|---:|---|"]
    for r in result.routes:
        bpr = r.bytes_per_request
        out.append(f"| `{r.route}` | **{r.verdict}** | {r.kind or '-'} | "
                   f"{format_rate(bpr['traced'])} | {format_rate(bpr['uss'])} | {_top_holder(r)} |")
    reached = [x for x in (sensitivity_sentence(r) for r in result.routes) if x]
    if reached:
        out += [""] + [f"- {x}" for x in reached]
    if any(r.workers for r in result.routes):
        out += ["", "## Worker by worker", "",
                "Each process judged on the requests it served (the master serves none: its USS "
                "is over the server's requests).", "",
                "| route | pid | role | requests | verdict | traced B/request | USS B/request | top site "
                "| held by | respawned |", "|---|---:|---|---:|---|---:|---:|---|---|---|"]
        for r in result.routes:
            for w in r.workers:
                bpr = w.bytes_per_request
                site = worker_site(w)
                where = (f"`{_worker_site(w)}`" + (" (your code)" if site.user else "") if site else "")
                out.append(f"| `{r.route}` | {w.pid} | {w.role} | "
                           f"{w.requests if w.role == 'worker' else '-'} | **{w.verdict}** | "
                           f"{format_rate(bpr['traced'])} | {format_rate(bpr['uss'])} | {where} | {worker_holder(w)} | "
                           f"{respawned_note(w)} |")
    for r in result.routes:
        if r.verdict == "clean":
            continue
        out += ["", f"## `{r.route}`: {r.verdict}" + (f" ({r.kind})" if r.kind else ""),
                "", r.judgement.reason]
        if advice_sentence(r):
            said = advice_sentence(r)
            out += ["", said[0].upper() + said[1:] + "."]
        out += [f"- note: {n}" for n in r.notes]
        if r.kind == "native":
            out += ["", f"_{NATIVE_SENTENCE}._"]
        said = allocator_sentence(r)
        if said and said != r.judgement.reason:
            out += ["", f"Allocators: {said}"]
        if rss_sentence(r):
            out += ["", f"Which line: {rss_sentence(r)}."]
        if r.sites:
            out += ["", "| # | site | B/request | blocks/request | code |", "|---:|---|---:|---:|---|"]
            for i, s in enumerate(r.sites[:_SITES_SHOWN], 1):
                mark = " (your code)" if s.user else ""
                code = f"`{s.code}`" if s.code else ""
                out.append(f"| {i} | `{_site_line(s)}`{mark} | {s.bytes_per_request:.1f} | "
                           f"{s.count_per_request:.2f} | {code} |")
        if r.types:
            out += ["", "Growing types: " + ", ".join(
                f"`{t['type']}` {t['count_per_request']:+.2f}/request" for t in r.types[:5])]
        if r.holders:
            out += ["", "Held by:", ""]
            for h in r.holders[:3]:
                more = "; ".join(x for x in (h.note, bounds_sentence(h)) if x)
                out.append(f"- {h.description}{_growth(h)}" + (f" ({more})" if more else ""))
    out += ["", _verdict_line(result), ""]
    return "\n".join(out)
