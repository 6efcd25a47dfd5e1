"""``memprobe report`` and the HTML renderers, on saved results made here (no server runs).

The browser half (a real compare and hunt opened in Chromium) is tests/test_html_browser.py.
"""
from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from memprobe.cli import main
from memprobe.render import render
from memprobe.results.saved import check_data

REPO = Path(__file__).resolve().parent.parent
SCRIPT = "<script>document.title='pwned'</script>"


def reading(rss: int, uss: int) -> dict[str, int]:
    return {"rss": rss, "vms": 4 * rss, "uss": uss, "pss": uss + 2**20, "swap": 0}


def framework(name: str, base: int, grow: int, rps: float) -> dict[str, Any]:
    before, after = reading(base + 11 * 2**20, base), reading(base + 11 * 2**20 + grow, base + grow)
    return {
        "framework": name, "title": name.title(), "version": "1.0", "server": f"{name} dev server",
        "status": "ok", "reason": "", "pid": 1, "url": "http://127.0.0.1:1/", "ready_s": 0.5,
        "before": before, "after": after,
        "delta": {k: after[k] - before[k] for k in before},
        "delta_pct": {k: (round(100 * (after[k] - before[k]) / before[k], 2) if before[k] else None) for k in before},
        "requests": {"sent": 200, "ok": 200, "failed": 0, "timeouts": 0, "errors": {}, "status_counts": {"200": 200}},
        "throughput_rps": rps,
        "latency_ms": {"p50": 5.0, "p90": 9.0, "p99": 20.0, "max": 31.0, "min": 1.0, "mean": 6.0},
        "duration_s": 0.4, "connections_opened": 10,
        "samples": {"t_s": [0, 0.1, 0.2, 0.3], "requests": [0, 60, 130, 200],
                    "rss": [before["rss"] + i * grow // 3 for i in range(4)],
                    "uss": [before["uss"] + i * grow // 3 for i in range(4)]},
    }


def compare_data() -> dict[str, Any]:
    """A compare result as `memprobe compare --json` writes it: two frameworks, one not installed."""
    return {
        "memprobe": "0.1.0", "schema": 1, "result": "compare", "started": "2026-01-01T00:00:00+00:00",
        "duration_s": 5.0, "interrupted": False,
        "settings": {"requests": 200, "timeout_s": 0.5, "concurrency": 10, "mode": "keepalive", "warmup": 0,
                     "settle_s": 2.0, "rounds": 1, "path": "/"},
        "machine": {"python": "3.11.7", "implementation": "CPython", "platform": "Linux", "cpus": 2,
                    "memory_total": 24 * 2**30, "psutil": "7.2.2"},
        "results": [framework("flask", 20 * 2**20, 400 * 1024, 900.0), framework("tornado", 17 * 2**20, 100 * 1024, 1500.0),
                    {"framework": "bottle", "title": "Bottle", "version": None, "server": "", "status": "not-installed",
                     "reason": "bottle is not installed", "pip": "pip install bottle"}],
    }


def route(path: str, slope: float, verdict: str) -> dict[str, Any]:
    xs = [0, 300, 600, 900]
    traced = [150_000 + int(slope * x) for x in xs]
    uss = [34_000_000 + int(0.5 * slope * x) for x in xs]
    leak = verdict != "clean"
    return {
        "route": path, "verdict": verdict, "kind": "python" if leak else None,
        "bytes_per_request": {"traced": {"value": slope, "error": 0.4}, "uss": {"value": slope / 2, "error": 40.0}},
        "reason": "the Python heap grows steadily" if leak else "no growth beyond noise",
        "model": {}, "requests": 900,
        "series": {"requests": xs, "traced": traced, "uss": uss},
        "sites": [{"file": "/srv/app.py", "line": 35, "bytes_per_request": slope, "count_per_request": 1.0,
                   "size_diff": int(slope * 300), "count_diff": 300, "user_code": True,
                   "code": "_history.append({'path': request.path})",
                   "traceback": [{"file": "/srv/flask/app.py", "line": 900, "user": False},
                                 {"file": "/srv/app.py", "line": 35, "user": True}]}] if leak else [],
        "types": [{"type": "dict", "count_before": 100, "count": 1000, "count_per_request": 1.0,
                   "bytes_before": 1000, "bytes": 200_000, "bytes_per_request": 183.0}] if leak else [],
        "holders": [{"description": "module app.py, global _history (list, 1,300 entries)",
                     "chain": ["module app.py", "global _history"], "type": "list", "entries_before": 100,
                     "entries": 1300, "entries_per_request": 1.0, "source": "roots"}] if leak else [],
        "load": {"sent": 900, "ok": 900, "failed": 0}, "duration_s": 7.0, "notes": [],
    }


def hunt_data() -> dict[str, Any]:
    """A hunt result as `memprobe hunt --json` writes it: a leaking route and a clean one."""
    routes = [route("/history", 309.0, "leak"), route("/", 0.3, "clean")]
    worst = routes[0]
    return {"result": "hunt", "memprobe": "0.1.0", "target": "app.py:app", "app_kind": "wsgi", "framework": "flask",
            "verdict": "leak", "kind": "python", "leak_kind": "python",
            "bytes_per_request": worst["bytes_per_request"], "route": "/history", "sites": worst["sites"],
            "types": worst["types"], "holders": worst["holders"], "routes": routes,
            "settings": {"requests": 300, "rounds": 3, "warmup": 100, "concurrency": 4, "frames": 25, "cmd": None,
                         "timeout_s": 10.0},
            "outside_only": False, "duration_s": 20.0, "startup_s": 1.0, "error": None, "notes": []}


def check_result_data() -> dict[str, Any]:
    """A check result as `memprobe check --json` writes it: one failed item with evidence."""
    finding = {"rule": "MP101", "severity": "fail", "file": "app.py", "line": 35, "col": 4,
               "title": "Module-level container written from a request handler",
               "message": "`_history` grows by `.append(...)` in view `history`",
               "advice": "Use `collections.deque(maxlen=N)`.", "rationale": "It lives as long as the process.",
               "snippet": "_history.append(request.path)", "symbol": "app._history",
               "evidence": {"route": "/history", "verdict": "leak", "traced_bytes_per_request": 309.0,
                            "holder": "module app.py, global _history"}}
    return {"result": "check", "target": "app.py", "passed": False, "flask_detected": True,
            "counts": {"fail": 1, "warn": 0, "info": 0}, "findings": [finding],
            "checklist": [{"rule": "MP101", "slug": "module-container", "title": finding["title"], "status": "fail",
                           "findings": 1, "advice": "", "note": ""},
                          {"rule": "MP102", "slug": "unbounded-cache", "title": "Unbounded cache", "status": "pass",
                           "findings": 0, "advice": "", "note": ""},
                          {"rule": "MP901", "slug": "monitor", "title": "Monitor memory", "status": "info",
                           "findings": 0, "advice": "Run `memprobe hunt`.", "note": ""}],
            "files": ["app.py"], "errors": [], "ignored_rules": [], "suppressed": 0, "runtime": {}}


def save(tmp_path: Path, name: str, data: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def html_of(data: dict[str, Any]) -> str:
    return render(check_data(data, "test"), "html")


def memprobe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memprobe", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


# -- the command --------------------------------------------------------------------------------

def test_report_prints_a_saved_run_as_the_command_printed_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = save(tmp_path, "compare.json", compare_data())
    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    assert out == render(check_data(compare_data(), "x"), "text", color=False, width=140)
    assert "flask" in out and "bottle: not-installed" in out


@pytest.mark.parametrize("suffix, marker", [(".html", "<!DOCTYPE html>"), (".md", "## memprobe compare"),
                                            (".txt", "Memory before -> after"), (".json", '"result": "compare"')])
def test_the_output_format_follows_the_suffix(tmp_path: Path, suffix: str, marker: str) -> None:
    path = save(tmp_path, "compare.json", compare_data())
    out = tmp_path / f"report{suffix}"
    assert main(["report", str(path), "-o", str(out)]) == 0
    assert marker in out.read_text(encoding="utf-8")


def test_json_output_is_the_saved_run(tmp_path: Path) -> None:
    path = save(tmp_path, "hunt.json", hunt_data())
    out = tmp_path / "again.json"
    assert main(["report", str(path), "-o", str(out)]) == 0
    assert json.loads(out.read_text()) == hunt_data()


@pytest.mark.parametrize("make", [compare_data, hunt_data, check_result_data])
@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_every_kind_re_renders_in_every_format(make: Any, fmt: str) -> None:
    assert render(check_data(make(), "x"), fmt).strip()


def test_two_runs_show_what_a_change_did_to_memory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    after = compare_data()
    after["results"][0]["after"]["uss"] -= 4 * 2**20  # flask got leaner
    after["results"][1]["throughput_rps"] = 1000.0  # tornado got slower
    a, b = save(tmp_path, "before.json", compare_data()), save(tmp_path, "after.json", after)
    assert main(["report", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "before.json → after.json" in out
    assert re.search(r"flask: USS after .* \(better\)", out)
    assert re.search(r"tornado: req/s 1500 → 1000 \(worse\)", out)


def test_two_hunts_show_a_fixed_leak(tmp_path: Path) -> None:
    fixed = hunt_data()
    fixed["routes"][0] = route("/history", 0.2, "clean")
    a, b = save(tmp_path, "a.json", hunt_data()), save(tmp_path, "b.json", fixed)
    out = tmp_path / "diff.md"
    assert main(["report", str(a), str(b), "-o", str(out)]) == 0
    text = out.read_text()
    assert "/history: verdict leak → clean" in text
    html = tmp_path / "diff.html"
    assert main(["report", str(a), str(b), "-o", str(html)]) == 0
    assert html.read_text().count('class="plot" role="img"') == 1


def test_two_checks_list_fixed_findings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fixed = check_result_data()
    fixed["findings"], fixed["checklist"][0]["status"], fixed["checklist"][0]["findings"] = [], "pass", 0
    a, b = save(tmp_path, "a.json", check_result_data()), save(tmp_path, "b.json", fixed)
    assert main(["report", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "MP101: status fail → pass" in out and "fixed: MP101 app.py:35" in out


def test_runs_of_two_kinds_are_not_compared(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = save(tmp_path, "a.json", compare_data()), save(tmp_path, "b.json", hunt_data())
    assert main(["report", str(a), str(b)]) == 2
    assert "cannot compare a compare run with a hunt run" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    ("{not json", "not JSON"),
    ("[1, 2]", "not a memprobe result"),
    ('{"framework": "flask", "rss": 1}', 'no "result" key'),
    ('{"result": "profile"}', "cannot render a 'profile' result"),
    ('{"result": "compare", "schema": 99, "memprobe": "9.0"}', "written by a newer memprobe"),
    ('{"result": "hunt", "memprobe": "0.0.1", "target": "app.py:app"}', "a hunt result without routes"),
    ('{"result": "compare", "settings": {}, "results": [{"framework": "flask"}]}', "not a compare result this memprobe can read"),
    ('{"kind": "compare", "settings": {}, "results": [{"framework": "flask"}]}', "not a compare result this memprobe can read"),
])
def test_an_old_or_foreign_json_gets_one_line_and_exit_2(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "old.json"
    path.write_text(content)
    run = memprobe("report", str(path))
    assert run.returncode == 2
    assert message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr


def test_a_missing_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nope.json")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_without_matplotlib_html_fails_with_the_pip_command_and_exit_4(tmp_path: Path) -> None:
    env = {"PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "helpers" / "hide_modules"), str(REPO)]),
           "MEMPROBE_TEST_HIDE": "matplotlib"}
    path = save(tmp_path, "compare.json", compare_data())
    run = memprobe("report", str(path), "-o", str(tmp_path / "r.html"), env=env)
    assert run.returncode == 4
    assert "pip install memprobe[html]" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "r.html").exists()
    # the checklist has no plots: its HTML needs no matplotlib
    check = save(tmp_path, "check.json", check_result_data())
    run = memprobe("report", str(check), "-o", str(tmp_path / "c.html"), env=env)
    assert run.returncode == 0, run.stderr


# -- the HTML itself --------------------------------------------------------------------------

@pytest.mark.parametrize("make", [compare_data, hunt_data, check_result_data])
def test_the_html_page_needs_nothing_from_outside(make: Any) -> None:
    page = html_of(make())
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page, re.I)
    assert not re.search(r"url\(\s*['\"]?(https?:|//)", page, re.I)
    assert "@import" not in page and "@font-face" not in page
    assert "@media print" in page
    assert "Content-Security-Policy" in page


def test_the_compare_page_has_the_table_the_bars_and_the_lines() -> None:
    page = html_of(compare_data())
    assert page.count('class="plot" role="img"') == 2
    assert 'aria-label="memory before and after per framework: RSS, USS, PSS"' in page
    assert 'aria-label="memory over requests during the hammering, one line per framework"' in page
    for name in ("flask", "tornado", "bottle", "pip install bottle"):
        assert name in page


def test_the_hunt_page_has_the_verdict_error_bars_series_sites_types_and_holders() -> None:
    page = html_of(hunt_data())
    assert "LEAK (python) on /history" in page
    assert "+309.0 ± 0.4" in page
    assert page.count('class="plot" role="img"') == 3  # bytes/request, and one series per route
    assert "_history.append({&#x27;path&#x27;: request.path})" in page  # the source line, escaped
    assert "global _history" in page and "dict" in page


def test_the_check_page_has_the_checklist_and_the_evidence() -> None:
    page = html_of(check_result_data())
    assert "MP101" in page and "MP102" in page
    assert "measured: " in page and "+309.0 B/request traced" in page
    assert "<code>_history</code>" in page


def test_plots_carry_no_varying_metadata_and_the_page_is_reproducible() -> None:
    page = html_of(hunt_data())
    assert page == html_of(hunt_data())
    assert "<metadata" not in page and "<!--" not in page and "<?xml" not in page


def test_every_string_from_the_app_is_escaped() -> None:
    data = hunt_data()
    for r in data["routes"]:
        r["route"] = f"/{SCRIPT}"
        r["notes"] = [SCRIPT]
    leak = data["routes"][0]
    leak["sites"][0]["file"] = f"/srv/{SCRIPT}.py"
    leak["sites"][0]["code"] = f"x = '{SCRIPT}'"
    leak["types"][0]["type"] = SCRIPT
    leak["holders"][0]["description"] = SCRIPT
    leak["holders"][0]["chain"] = [SCRIPT, "--><script>alert(1)</script>"]
    data["target"] = f"--><{SCRIPT}"
    data["framework"] = SCRIPT
    page = html_of(data)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page

    compare = compare_data()
    compare["results"][0]["framework"] = SCRIPT
    compare["results"][2]["reason"] = SCRIPT
    assert "<script" not in html_of(compare).lower()
    check = check_result_data()
    check["findings"][0]["snippet"] = SCRIPT
    check["findings"][0]["message"] = f"`{SCRIPT}`"
    assert "<script" not in html_of(check).lower()


def test_a_dollar_in_a_route_is_shown_not_typeset() -> None:
    data = hunt_data()
    data["routes"][0]["route"] = "/price/$5/$x^2$"
    assert "/price/$5/$x^2$" in html_of(data)


def test_several_rounds_draw_a_line_per_round() -> None:
    data = compare_data()
    row = data["results"][0]
    samples = row.pop("samples")
    row["rounds"] = [{"samples": samples}, {"samples": copy.deepcopy(samples)}]
    row["samples"] = None
    assert html_of(data).count('class="plot" role="img"') == 2
