"""Text and Markdown for ``hunt`` results.

Both read only the JSON form (``result.to_dict()``), so a saved run re-renders as the live one.
"""
from __future__ import annotations

import os
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from memprobe.render import renders
from memprobe.render.terminal import to_text
from memprobe.units import format_bytes

_STYLE = {"leak": "bold red", "bounded": "yellow", "clean": "green"}
_SITES_SHOWN = 5
_TB_SHOWN = 4


def short_path(path: str) -> str:
    """A path as a user reads it: relative to the working directory, or from the installed
    package's name (``werkzeug/exceptions.py``), or the file name."""
    for marker in ("site-packages" + os.sep, "dist-packages" + os.sep):
        if marker in path:
            return path.split(marker, 1)[1]
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    if not rel.startswith(".." + os.sep):
        return rel
    parts = path.split(os.sep)
    return os.sep.join(parts[-2:]) if "python3" in path else path


def _bpr(signal: dict[str, Any] | None) -> str:
    if not signal:
        return "-"
    return f"{signal['value']:+.1f} ± {signal['error']:.1f}"


def _settings(data: dict[str, Any]) -> str:
    s = data.get("settings") or {}
    what = ", ".join(x for x in (data.get("framework"), data.get("app_kind")) if x)
    routes = len(data.get("routes") or [])
    return (f"{what}; {routes} route{'s' if routes != 1 else ''}; {s.get('requests')} requests x "
            f"{s.get('rounds')} rounds after {s.get('warmup')} warm-up, "
            f"{s.get('concurrency')} connections; {data.get('duration_s', 0):.1f} s")


def _top_holder(route: dict[str, Any]) -> str:
    holders = route.get("holders") or []
    return holders[0]["description"] if holders and route.get("verdict") != "clean" else ""


def _site_line(site: dict[str, Any]) -> str:
    return f"{short_path(site['file'])}:{site['line']}"


def _trace_tail(site: dict[str, Any]) -> str:
    frames = site.get("traceback") or []
    user = next((i for i, f in enumerate(frames) if f.get("user")), len(frames) - 1)
    shown = frames[max(0, user - _TB_SHOWN + 1): user + 1]
    return " → ".join(f"{short_path(f['file'])}:{f['line']}" for f in shown)


def _verdict_line(data: dict[str, Any]) -> str:
    routes = data.get("routes") or []
    leaks = [r["route"] for r in routes if r["verdict"] == "leak"]
    if data.get("error"):
        return f"stopped: {data['error']}"
    if leaks:
        return f"verdict: LEAK on {', '.join(leaks)} ({len(leaks)} of {len(routes)} routes) -> exit 1"
    bounded = [r["route"] for r in routes if r["verdict"] == "bounded"]
    if bounded:
        return f"verdict: no leak; bounded growth on {', '.join(bounded)} (a cache filling up?)"
    return "verdict: clean, no growth beyond noise"


@renders("text", "hunt")
def text(result: Any, color: bool = False, width: int = 120) -> str:
    """The terminal report: a table of routes, then details for each route that grew."""
    data = result.to_dict()
    parts: list[Any] = [Text(f"memprobe hunt {data['target']}", style="bold"),
                        Text(_settings(data), style="dim")]
    for note in data.get("notes") or []:
        parts.append(Text(f"note: {note}", style="dim"))
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for name, justify in (("route", "left"), ("verdict", "left"), ("kind", "left"),
                          ("traced B/req", "right"), ("USS B/req", "right"), ("held by", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in data.get("routes") or []:
        bpr = r.get("bytes_per_request") or {}
        table.add_row(r["route"], Text(r["verdict"], style=_STYLE.get(r["verdict"], "")),
                      r.get("kind") or "-", _bpr(bpr.get("traced")), _bpr(bpr.get("uss")),
                      _top_holder(r))
    parts += [Text(""), table]
    for r in data.get("routes") or []:
        if r["verdict"] != "clean" or r.get("notes"):
            parts += [Text(""), _route_detail(r)]
    parts += [Text(""), Text(_verdict_line(data), style=_STYLE.get(data.get("verdict") or "", ""))]
    return to_text(*parts, color=color, width=width)


def _route_detail(r: dict[str, Any]) -> Group:
    kind = f" ({r['kind']})" if r.get("kind") else ""
    lines: list[Any] = [Text(f"{r['route']}: {r['verdict']}{kind}: {r.get('reason', '')}",
                             style=_STYLE.get(r["verdict"], ""))]
    for note in r.get("notes") or []:
        lines.append(Text(f"  note: {note}", style="dim"))
    sites = r.get("sites") or []
    if r.get("kind") == "native":
        lines.append(Text("  no Python allocation explains it: the memory comes from outside Python's "
                          "allocators (a C extension, ctypes, a native library); tracemalloc cannot "
                          "name its line", style="dim"))
    if sites:
        lines.append(Text("  where it was allocated (growth per request, deep-traced round):"))
        for i, site in enumerate(sites[:_SITES_SHOWN], 1):
            mark = "  <- your code" if site.get("user_code") else ""
            lines.append(Text(f"  {i}. {_site_line(site)}  {format_bytes(site['bytes_per_request'])}"
                              f"  {site['count_per_request']:.2f} blocks{mark}",
                              style="bold" if site.get("user_code") else ""))
            if site.get("code"):
                lines.append(Text(f"       {site['code']}", style="cyan"))
            lines.append(Text(f"       {_trace_tail(site)}", style="dim"))
    types = r.get("types") or []
    if types:
        shown = ", ".join(
            f"{t['type']} {t['count_per_request']:+.2f}/req"
            + (f" ({format_bytes(t['bytes_per_request'], signed=True)})" if t.get("bytes_per_request") else "")
            for t in types[:5])
        lines.append(Text(f"  growing types: {shown}"))
    holders = r.get("holders") or []
    if holders:
        lines.append(Text("  held by:"))
        for h in holders[:3]:
            growth = (f": {h['entries_per_request']:+.2f} entries/request" if h.get("source") != "referrers"
                      else " (found from the objects back to a module)")
            lines.append(Text(f"    {h['description']}{growth}"))
    return Group(*lines)


@renders("markdown", "hunt")
def markdown(result: Any) -> str:
    """A Markdown report: the routes table, then sites, types and holders per route."""
    data = result.to_dict()
    out = [f"# memprobe hunt `{data['target']}`", "", _settings(data), ""]
    out += [f"> {note}" for note in data.get("notes") or []]
    out += ["", "| route | verdict | kind | traced B/request | USS B/request | held by |",
            "|---|---|---|---:|---:|---|"]
    for r in data.get("routes") or []:
        bpr = r.get("bytes_per_request") or {}
        out.append(f"| `{r['route']}` | **{r['verdict']}** | {r.get('kind') or '-'} | "
                   f"{_bpr(bpr.get('traced'))} | {_bpr(bpr.get('uss'))} | {_top_holder(r)} |")
    for r in data.get("routes") or []:
        if r["verdict"] == "clean":
            continue
        out += ["", f"## `{r['route']}`: {r['verdict']}" + (f" ({r['kind']})" if r.get("kind") else ""),
                "", r.get("reason", "")]
        if r.get("sites"):
            out += ["", "| # | site | B/request | blocks/request | code |", "|---:|---|---:|---:|---|"]
            for i, s in enumerate(r["sites"][:_SITES_SHOWN], 1):
                mark = " (your code)" if s.get("user_code") else ""
                code = f"`{s['code']}`" if s.get("code") else ""
                out.append(f"| {i} | `{_site_line(s)}`{mark} | {s['bytes_per_request']:.1f} | "
                           f"{s['count_per_request']:.2f} | {code} |")
        if r.get("types"):
            out += ["", "Growing types: " + ", ".join(
                f"`{t['type']}` {t['count_per_request']:+.2f}/request" for t in r["types"][:5])]
        if r.get("holders"):
            out += ["", "Held by:", ""]
            out += [f"- {h['description']}: {h['entries_per_request']:+.2f} entries/request"
                    for h in r["holders"][:3]]
    out += ["", _verdict_line(data), ""]
    return "\n".join(out)
