"""``check --run``: hunt the app, then tie what was measured to the checklist.

A hunt reports, per route, a verdict, bytes per request, the allocation sites that grew
(``file:line``) and the containers that grew, named from a root (``module app.py``,
``global _history``). Each is matched to the static findings:

* a site at a finding's line, or inside the function a finding is in;
* a holder ``global NAME`` of module ``file.py`` to the MP101 finding about ``NAME``;
  ``function F`` + ``lru_cache`` to MP102/MP112 about ``F``; logger handlers/filters to MP108.

Matched findings get the measurement as ``evidence`` (a warning confirmed by a leak becomes a
failure); a leaking route nothing explains becomes an MP201 finding, a bounded one MP202.
Only attributes are read from the hunt result, so this module works on any object shaped like
:class:`memprobe.hunt.HuntResult`.
"""
from __future__ import annotations

import os
from typing import Any

from memprobe.check.engine import make_finding
from memprobe.check.model import ChecklistItem, CheckResult, Finding, Severity
from memprobe.check.rules import RULES, RUNTIME_RULES
from memprobe.errors import EnvironmentProblem


def run_hunt(target: str, **options: Any) -> Any:
    """Hunt ``target`` with :func:`memprobe.hunt.hunt`; EnvironmentProblem when hunt is missing."""
    try:
        from memprobe.hunt import hunt
    except ImportError as err:
        raise EnvironmentProblem(f"hunt is not available ({err})") from err
    return hunt(target, **options)


def attach(result: CheckResult, hunted: Any) -> CheckResult:
    """Add ``hunted``'s measurements to ``result``'s findings and checklist (in place)."""
    for route in getattr(hunted, "routes", None) or []:
        verdict = getattr(route, "verdict", "clean")
        if verdict not in ("leak", "bounded"):
            continue
        matched = _match_route(result.findings, route)
        if matched:
            continue
        rule = RULES["MP201" if verdict == "leak" else "MP202"]
        site = _first_user_site(route)
        file = _show(site.file) if site is not None else result.target
        line = site.line if site is not None else 0
        finding = make_finding(rule, file, line, _route_story(route), evidence=_evidence(route))
        result.findings.append(finding)
    result.findings.sort(key=lambda f: (f.file, f.line, f.rule))
    result.runtime = _summary(hunted)
    refresh_checklist(result, measured=True)
    return result


def _match_route(findings: list[Finding], route: Any) -> list[Finding]:
    """The findings this route's sites and holders explain; each gets the evidence attached."""
    matched: list[Finding] = []
    leak = getattr(route, "verdict", "") == "leak"
    for site in getattr(route, "sites", None) or []:
        for finding in findings:
            how = _site_matches(finding, site)
            if how:
                _add_evidence(finding, route, leak, site=f"{_show(site.file)}:{site.line}", match=how,
                              site_bytes_per_request=round(float(site.bytes_per_request), 2))
                matched.append(finding)
    for holder in getattr(route, "holders", None) or []:
        chain = list(getattr(holder, "chain", None) or [])
        for finding in findings:
            if _holder_matches(finding, chain):
                _add_evidence(finding, route, leak, holder=getattr(holder, "description", " ".join(chain)),
                              entries_per_request=round(float(getattr(holder, "entries_per_request", 0.0)), 4),
                              match="holder")
                matched.append(finding)
    return matched


def _site_matches(finding: Finding, site: Any) -> str:
    if not _same_file(finding.file, getattr(site, "file", "")):
        return ""
    line = int(getattr(site, "line", 0))
    if line == finding.line:
        return "line"
    if finding.scope and finding.scope[0] <= line <= finding.scope[1] \
            and RULES[finding.rule].severity is not Severity.INFO:
        return "function"
    return ""


def _holder_matches(finding: Finding, chain: list[str]) -> bool:
    if not chain:
        return False
    head = chain[0]
    module_file = head[len("module "):] if head.startswith("module ") else ""
    if module_file and os.path.basename(finding.file) != module_file:
        return False
    steps = chain[1:]
    if finding.rule == "MP101" and steps and steps[0].startswith("global "):
        return steps[0][len("global "):] == finding.symbol.rpartition(".")[2]
    if finding.rule in ("MP102", "MP112") and "lru_cache" in steps:
        names = [s.split(" ", 1)[1] for s in steps if s.startswith(("function ", "method "))]
        return any(finding.symbol.endswith(n) or n.endswith(finding.symbol.rpartition(".")[2]) for n in names)
    if finding.rule == "MP108" and head == "logging manager":
        return any(s in ("handlers", "filters", "loggers") for s in steps)
    return False


def _add_evidence(finding: Finding, route: Any, leak: bool, **facts: Any) -> None:
    evidence = finding.evidence or _evidence(route)
    for key, value in facts.items():
        evidence.setdefault(key, value)
    finding.evidence = evidence
    if leak and finding.severity is Severity.WARN:
        finding.severity = Severity.FAIL
        finding.message += " (confirmed: the measured leak points here)"


def _evidence(route: Any) -> dict[str, Any]:
    per_request = getattr(route, "bytes_per_request", None) or {}
    return {
        "route": getattr(route, "route", ""),
        "verdict": getattr(route, "verdict", ""),
        "traced_bytes_per_request": _value(per_request.get("traced")),
        "uss_bytes_per_request": _value(per_request.get("uss")),
    }


def _value(signal: Any) -> float | None:
    if isinstance(signal, dict):
        signal = signal.get("value")
    return round(float(signal), 2) if isinstance(signal, (int, float)) else None


def _route_story(route: Any) -> str:
    evidence = _evidence(route)
    traced, uss = evidence["traced_bytes_per_request"], evidence["uss_bytes_per_request"]
    sizes = ", ".join(f"{v:+.1f} B/request {name}" for name, v in (("traced", traced), ("USS", uss)) if v is not None)
    holders = [getattr(h, "description", "") for h in getattr(route, "holders", None) or []]
    grew = "leaks" if evidence["verdict"] == "leak" else "grew, then stopped"
    tail = f"; held by {holders[0]}" if holders and holders[0] else ""
    return f"route {evidence['route']} {grew} ({sizes or 'no figure'}){tail}"


def _first_user_site(route: Any) -> Any:
    sites = list(getattr(route, "sites", None) or [])
    return next((s for s in sites if getattr(s, "user", True)), sites[0] if sites else None)


def _summary(hunted: Any) -> dict[str, Any]:
    routes = []
    for route in getattr(hunted, "routes", None) or []:
        evidence = _evidence(route)
        routes.append({"route": evidence["route"], "verdict": evidence["verdict"],
                       "traced_bytes_per_request": evidence["traced_bytes_per_request"],
                       "uss_bytes_per_request": evidence["uss_bytes_per_request"]})
    summary = hunted.summary() if callable(getattr(hunted, "summary", None)) else ""
    return {"verdict": getattr(hunted, "verdict", None), "summary": summary, "routes": routes,
            "error": getattr(hunted, "error", None)}


def refresh_checklist(result: CheckResult, measured: bool = False) -> None:
    """Recompute statuses from the findings; with ``measured``, add the runtime items."""
    order = {"fail": 0, "warn": 1, "info": 2}
    by_rule: dict[str, list[Finding]] = {}
    for finding in result.findings:
        by_rule.setdefault(finding.rule, []).append(finding)
    items: list[ChecklistItem] = []
    for item in result.checklist:
        if item.rule in {r.id for r in RUNTIME_RULES}:
            continue
        mine = by_rule.get(item.rule, [])
        if item.status not in ("ignored", "n/a", "info"):
            item.status = min((f.severity.value for f in mine), key=order.__getitem__) if mine else "pass"
            item.findings = len(mine)
        if measured and item.rule == "MP901":
            item.note = "measured with --run"
        if measured and any(f.evidence for f in mine):
            item.note = "confirmed by measurement"
        items.append(item)
    if measured:
        position = next((i for i, it in enumerate(items) if it.rule.startswith("MP9")), len(items))
        for rule in RUNTIME_RULES:
            mine = by_rule.get(rule.id, [])
            status = min((f.severity.value for f in mine), key=order.__getitem__) if mine else "pass"
            items.insert(position, ChecklistItem(rule.id, rule.slug, rule.title, status, len(mine), rule.fix))
            position += 1
    result.checklist = items


def _same_file(a: str, b: str) -> bool:
    if not a or not b:
        return False
    try:
        return os.path.realpath(a) == os.path.realpath(b)
    except (OSError, ValueError):
        return False


def _show(path: str) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return path

