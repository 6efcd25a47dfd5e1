"""memprobe's answers: one ``hunt(target, routes=[...], cwd=DIR)`` per app, every case's routes in it,
on hunt's defaults (``memprobe``) or with ``thorough=True`` (``memprobe-thorough``). Its verdict,
kind, top sites (allocation sites, then a native leak's RSS lines) and holders are read as they
are; a case with several routes is a leak when one of them is."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from answer import Answer, Contender

CONTENDERS = {"memprobe": Contender("memprobe"), "memprobe-thorough": Contender("memprobe-thorough")}


def run(name: str, directory: Path, cases: dict[str, dict[str, Any]], settings: dict[str, Any],
        say: Any = None) -> dict[str, Answer]:
    """Every case's answer, hunting each target once."""
    from memprobe.errors import MemprobeError
    from memprobe.hunt import hunt

    choices = {**settings, **({"thorough": True} if name == "memprobe-thorough" else {})}
    by_target: dict[str, list[str]] = {}
    for case_id, case in cases.items():
        by_target.setdefault(case["target"], []).append(case_id)
    answers: dict[str, Answer] = {}
    for target, ids in by_target.items():
        routes = list(dict.fromkeys(r for i in ids for r in cases[i]["routes"]))
        if say:
            say(f"{name}: {target} ({len(routes)} routes)")
        try:
            result = hunt(target, routes=routes, cwd=directory, **choices)
        except MemprobeError as err:
            partial = getattr(err, "partial", None)
            done = {r.route: r for r in partial.routes} if partial is not None else {}
            for i in ids:
                answers[i] = _answer([done[r] for r in cases[i]["routes"] if r in done], cases[i]["routes"],
                                     f"hunt failed: {err}")
            continue
        got = {r.route: r for r in result.routes}
        for i in ids:
            answers[i] = _answer([got[r] for r in cases[i]["routes"] if r in got], cases[i]["routes"], None)
    return answers


def _answer(routes: list[Any], wanted: list[str], error: str | None) -> Answer:
    if len(routes) < len(wanted):
        return Answer(None, sum(r.duration_s for r in routes), error=error or "route not hunted")
    worst = next((r for r in routes if r.verdict == "leak"), routes[0])
    sites = [(Path(s.file).name, s.line) for s in worst.sites[:3]]
    sites += [(Path(s["file"]).name, int(s["line"])) for s in worst.rss_lines[:3]]
    holders = [f"{h.description} {' '.join(h.chain)}" for h in worst.holders[:3]]
    return Answer(worst.verdict, sum(r.duration_s for r in routes), kind=worst.kind, sites=sites[:3], holders=holders,
                  detail={"reason": worst.judgement.reason, "stopped_because": worst.stopped_because})
