"""Text, Markdown and HTML for the pytest plugin's files: the session file (``--memprobe-json``,
kind ``pytest``) and the baseline (``--memprobe-baseline``, kind ``pytest-baseline``).

The session's table is the one the plugin prints at the end of a run (:func:`summary_lines`), so
``memprobe report memprobe.json`` shows what the terminal showed. The plugin imports this module
when it loads: it imports nothing heavy at import time.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from memprobe.render import renders
from memprobe.render.page import join, page, table, tag
from memprobe.units import format_bytes, format_rate

if TYPE_CHECKING:
    from memprobe.results.plugin import BaselineResult, PytestResult

_SUMMARY_HEADER = ("test", "route", "verdict", "traced B/req", "USS B/req", "limit", "result")
_BASELINE_HEADER = ("test", "route", "compared", "traced B/req", "USS B/req", "requests")
_METRIC_NAME = {"traced": "traced", "uss": "USS"}


def summary_rows(records: Iterable[dict[str, Any]]) -> list[tuple[str, ...]]:
    """One row per measured route of every measured test (an error without routes: one row)."""
    rows: list[tuple[str, ...]] = []
    for rec in records:
        status = rec.get("outcome", "?").upper()
        limit = _limit_text(rec.get("limits"))
        if rec.get("error") and not rec.get("routes"):
            rows.append((rec["nodeid"], "-", "error", "-", "-", limit, status))
            continue
        for route in rec.get("routes") or []:
            bpr = route.get("bytes_per_request") or {}
            memory = "" if route.get("memory", "uss") == "uss" else f" {route['memory'].upper()}"
            rows.append((rec["nodeid"], route["route"], route["verdict"], _rate(bpr.get("traced")),
                         _rate(bpr.get("uss")) + memory, limit, status))
    return rows


def summary_lines(records: Iterable[dict[str, Any]]) -> list[str]:
    """The terminal summary: one line per measured route of every measured test."""
    return _columns([_SUMMARY_HEADER, *summary_rows(records)])


def _columns(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def _rate(signal: dict[str, float] | None) -> str:
    return "-" if not signal else format_rate(signal["value"], signal["error"])


def _limit_text(limits: dict[str, Any] | None) -> str:
    if not limits:
        return "(fixture)"
    parts = []
    metric = "" if limits["metric"] == "traced" else " USS"
    if limits.get("per_request_bytes") is not None:
        parts.append(f"{format_bytes(limits['per_request_bytes'])}/req{metric}")
    if limits.get("growth_bytes") is not None:
        parts.append(f"{format_bytes(limits['growth_bytes'])} total{metric}")
    if limits.get("leak") is False:
        parts.append("no leak")
    elif limits.get("leak") is True:
        parts.append("expects a leak")
    return ", ".join(parts) or "-"


def _headline(result: PytestResult) -> str:
    failed = sum(t.get("outcome") == "failed" for t in result.tests)
    took = f", took {result.duration_s:.1f} s" if result.duration_s is not None else ""
    return (f"memprobe pytest session: {len(result.tests)} measurement{'s' if len(result.tests) != 1 else ''}, "
            f"{failed} failed; started {result.envelope.started or '?'}{took}")


def _problems(result: PytestResult) -> list[str]:
    """What broke a limit, and what could not be measured, a line each."""
    out = [f"{t['nodeid']}: {v}" for t in result.tests for v in t.get("violations") or []]
    out += [f"{t['nodeid']}: error: {t['error']}" for t in result.tests if t.get("error")]
    return out


@renders("text", "pytest")
def text(result: PytestResult, color: bool = False, width: int = 140) -> str:
    """The headline, the table the plugin printed, and every violation and error."""
    lines = [_headline(result), ""]
    lines += summary_lines(result.tests) if result.tests else ["no test was measured"]
    problems = _problems(result)
    if problems:
        lines += ["", *problems]
    return "\n".join(lines) + "\n"


@renders("markdown", "pytest")
def markdown(result: PytestResult) -> str:
    """The same, as a pull-request comment."""
    out = ["## memprobe pytest session", "", _headline(result), ""]
    out += _md_table(_SUMMARY_HEADER, summary_rows(result.tests))
    problems = _problems(result)
    if problems:
        out += ["", "### Violations and errors", ""] + [f"- {_md(p)}" for p in problems]
    return "\n".join(out) + "\n"


@renders("html", "pytest")
def html(result: PytestResult) -> str:
    """The same, as a page."""
    body = [table(_SUMMARY_HEADER, summary_rows(result.tests), numeric=(3, 4))]
    problems = _problems(result)
    if problems:
        body += [tag("h2", "Violations and errors"), tag("ul", join(tag("li", p) for p in problems))]
    return page("memprobe pytest session", join(body), _headline(result))


def baseline_rows(result: BaselineResult) -> list[tuple[str, ...]]:
    """One row per stored route of every test."""
    rows: list[tuple[str, ...]] = []
    for nodeid, routes in result.tests.items():
        for route, stored in routes.items():
            requests = stored.get("requests")
            rows.append((nodeid, route, _METRIC_NAME.get(stored.get("metric") or "traced", str(stored.get("metric"))),
                         _rate(stored.get("traced")), _rate(stored.get("uss")),
                         "-" if requests is None else f"{requests:,}"))
    return rows


def _baseline_headline(result: BaselineResult) -> str:
    routes = sum(len(r) for r in result.tests.values())
    return (f"memprobe pytest baseline: {len(result.tests)} test{'s' if len(result.tests) != 1 else ''}, "
            f"{routes} route{'s' if routes != 1 else ''} (written by memprobe {result.version})")


@renders("text", "pytest-baseline")
def baseline_text(result: BaselineResult, color: bool = False, width: int = 140) -> str:
    """The stored bytes per request, a line a route."""
    rows = baseline_rows(result)
    lines = [_baseline_headline(result), ""]
    lines += _columns([_BASELINE_HEADER, *rows]) if rows else ["no test stored"]
    return "\n".join(lines) + "\n"


@renders("markdown", "pytest-baseline")
def baseline_markdown(result: BaselineResult) -> str:
    """The stored bytes per request as a Markdown table."""
    out = ["## memprobe pytest baseline", "", _baseline_headline(result), ""]
    return "\n".join(out + _md_table(_BASELINE_HEADER, baseline_rows(result))) + "\n"


@renders("html", "pytest-baseline")
def baseline_html(result: BaselineResult) -> str:
    """The stored bytes per request as a page."""
    rows = table(_BASELINE_HEADER, baseline_rows(result), numeric=(3, 4, 5))
    return page("memprobe pytest baseline", rows, _baseline_headline(result))


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    out = [f"| {' | '.join(header)} |", "|" + "---|" * len(header)]
    return out + [f"| {' | '.join(_md(c) for c in row)} |" for row in rows]
