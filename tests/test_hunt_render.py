"""The hunt result's JSON contract and its text and Markdown renderings (no processes)."""
from __future__ import annotations

import json

from memprobe.hunt import Holder, HuntResult, RouteResult
from memprobe.hunt.model import judge
from memprobe.render import render
from memprobe.results.hunt import HuntSettings, Reading, Site


def route(name: str, per_round: int, native: int = 0) -> RouteResult:
    readings = [Reading(i * 2000, 1_000_000 + i * per_round, 30_000_000 + i * (per_round + native))
                for i in range(6)]
    sites = [Site("/srv/app/views.py", 42, 36.0, 1.0, 36_000, 1000,
                  [{"file": "/usr/lib/python3.11/threading.py", "line": 1, "user": False},
                   {"file": "/srv/app/views.py", "line": 42, "user": True}], True,
                  "_seen.append(n)")] if per_round else []
    holders = [Holder("module views.py, global _seen (list, 10,500 entries)",
                      ["module views.py", "global _seen"], "list", 500, 10_500, 1.0)] if per_round else []
    return RouteResult(judgement=judge(readings), readings=readings, sites=sites,
                       types=[{"type": "int", "count_before": 10, "count": 10_010,
                               "count_per_request": 1.0, "bytes_per_request": 28.0}] if per_round else [],
                       holders=holders, route=name)


def result() -> HuntResult:
    settings = HuntSettings(requests=2000, rounds=5, warmup=500, concurrency=4, frames=25)
    return HuntResult("views.py:app", settings,
                      [route("/", 0), route("/leak", 36 * 2000), route("/native", 0, 1024 * 2000)],
                      app_kind="wsgi", framework="flask", duration_s=12.5)


def test_the_json_has_the_issues_keys_at_the_top_and_per_route() -> None:
    data = json.loads(render(result(), "json"))
    for key in ("verdict", "kind", "bytes_per_request", "sites", "types", "holders", "routes"):
        assert key in data
    assert data["result"] == "hunt" and data["verdict"] == "leak" and data["schema"] == 1
    assert data["kind"] == data["leak_kind"] in ("python", "native", "mixed")
    assert set(data["bytes_per_request"]) == {"traced", "uss"}
    assert set(data["bytes_per_request"]["traced"]) == {"value", "error"}
    first = data["routes"][1]
    for key in ("route", "verdict", "bytes_per_request", "sites", "holders"):
        assert key in first
    site = first["sites"][0]
    for key in ("file", "line", "bytes_per_request", "count_per_request", "traceback"):
        assert key in site
    assert first["holders"][0]["description"].startswith("module views.py, global _seen")


def test_the_worst_route_leads_and_the_result_says_it_leaked() -> None:
    res = result()
    assert res.leaked and res.verdict == "leak"
    assert res.worst is not None and res.worst.route == "/native"
    assert [r.verdict for r in res.routes] == ["clean", "leak", "leak"]
    assert [r.kind for r in res.routes] == [None, "python", "native"]


def test_the_summary_is_one_line_naming_the_verdict_route_and_both_slopes() -> None:
    line = result().summary()
    assert "\n" not in line
    assert line.startswith("leak (native) on /native:")
    assert "B/request traced" in line and "B/request USS" in line and "2 of 3 routes leak" in line


def test_the_text_report_lists_routes_marks_the_users_line_and_names_the_holder() -> None:
    text = render(result(), "text")
    assert "memprobe hunt views.py:app" in text
    assert "/leak" in text and "views.py:42" in text and "<- your code" in text
    assert "_seen.append(n)" in text
    assert "module views.py, global _seen (list, 10,500 entries)" in text
    assert "outside Python's allocators" in text
    assert "verdict: LEAK on /leak, /native (2 of 3 routes) -> exit 1" in text


def test_the_markdown_report_has_a_routes_table_and_a_section_per_growing_route() -> None:
    md = render(result(), "markdown")
    assert "| `/leak` | **leak** | python |" in md
    assert "## `/leak`: leak (python)" in md
    assert "## `/`" not in md


def test_a_failed_hunt_still_renders_and_serialises() -> None:
    res = HuntResult("missing.py:app", HuntSettings(requests=1), error="no such file: missing.py")
    data = json.loads(render(res, "json"))
    assert data["verdict"] is None and data["routes"] == [] and data["error"]
    assert res.summary() == "hunt missing.py:app: error: no such file: missing.py"


def test_the_json_reads_back_as_the_same_result() -> None:
    data = json.loads(render(result(), "json"))
    again = HuntResult.from_dict(data)
    assert again.to_dict() == data
    assert again.verdict == "leak" and again.worst is not None and again.worst.route == "/native"
    assert render(again, "text") == render(result(), "text")
