"""``memprobe report`` and the HTML renderers, on saved results made here (no server runs).

The browser half (a real compare and hunt opened in Chromium) is tests/test_html_browser.py.
"""
from __future__ import annotations

import copy
import dataclasses
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
from memprobe.results import CheckResult, CompareResult, HuntResult, read
from memprobe.results.compare import FrameworkResult
from memprobe.results.hunt import Judgement

REPO = Path(__file__).resolve().parent.parent
SCRIPT = "<script>document.title='pwned'</script>"


FIXTURES = REPO / "tests" / "fixtures" / "results"


def fixture(kind: str) -> dict[str, Any]:
    """The JSON the code before the result layer wrote for a real small run of ``kind``."""
    return json.loads((FIXTURES / f"{kind}.json").read_text(encoding="utf-8"))


def compare_result() -> CompareResult:
    """A real compare of flask (two rounds), and as if a second framework had run too and a
    third were not installed."""
    result = CompareResult.from_dict(fixture("compare"))
    flask = result.results[0]
    tornado = copy.deepcopy(flask)
    tornado.name, tornado.title, tornado.version = "tornado", "Tornado", "6.4"
    assert tornado.saved is not None and tornado.saved.load is not None
    tornado.saved.load.rate = 1500.0
    bottle = FrameworkResult("bottle", "Bottle", None, "", status="not-installed",
                             reason="bottle is not installed", pip="pip install bottle")
    result.results += [tornado, bottle]
    return result


def hunt_result() -> HuntResult:
    """A real hunt of examples/leaky_flask: /history leaks, / is clean."""
    return HuntResult.from_dict(fixture("hunt"))


def check_result() -> CheckResult:
    """A real check of examples/leaky_flask (four failed findings), one of them with the
    evidence ``check --run`` attaches."""
    result = CheckResult.from_dict(fixture("check"))
    result.findings[0].evidence = {"route": "/history", "verdict": "leak", "traced_bytes_per_request": 305.87,
                                   "holder": "module app.py, global _history"}
    return result


def save(tmp_path: Path, name: str, result: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(result.to_dict()), encoding="utf-8")
    return path


def html_of(result: Any) -> str:
    return render(result, "html")


def memprobe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memprobe", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


# -- the command --------------------------------------------------------------------------------

def test_report_prints_a_saved_run_as_the_command_printed_it(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    result = compare_result()
    path = save(tmp_path, "compare.json", result)
    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    assert out == render(result, "text", color=False, width=140)
    assert "flask" in out and "tornado" in out and "bottle: not-installed" in out


@pytest.mark.parametrize("suffix, marker", [(".html", "<!DOCTYPE html>"), (".md", "## memprobe compare"),
                                            (".txt", "Memory before -> after"),
                                            (".json", '"result": "compare"')])
def test_the_output_format_follows_the_suffix(tmp_path: Path, suffix: str, marker: str) -> None:
    path = save(tmp_path, "compare.json", compare_result())
    out = tmp_path / f"report{suffix}"
    assert main(["report", str(path), "-o", str(out)]) == 0
    assert marker in out.read_text(encoding="utf-8")


@pytest.mark.parametrize("kind", ["compare", "hunt", "check", "hammer"])
def test_json_output_is_the_saved_run(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.json"
    path.write_text(json.dumps(fixture(kind)), encoding="utf-8")
    out = tmp_path / "again.json"
    assert main(["report", str(path), "-o", str(out)]) == 0
    again = json.loads(out.read_text())
    assert again == read(again, "again").to_dict()
    assert set(fixture(kind)) <= set(again)  # every key it had
    assert again["result"] == kind and again["schema"] == 1


@pytest.mark.parametrize("make", [compare_result, hunt_result, check_result])
@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_every_kind_re_renders_in_every_format(make: Any, fmt: str) -> None:
    assert render(make(), fmt).strip()


def test_two_runs_show_what_a_change_did_to_memory(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    after = compare_result()
    flask, tornado = after.results[0].saved, after.results[1].saved
    assert flask is not None and flask.after is not None and flask.after.uss is not None
    assert tornado is not None and tornado.load is not None
    flask.after = dataclasses.replace(flask.after, uss=flask.after.uss - 4 * 2**20)  # flask got leaner
    tornado.load.rate = 1000.0  # tornado got slower
    a, b = save(tmp_path, "before.json", compare_result()), save(tmp_path, "after.json", after)
    assert main(["report", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "before.json → after.json" in out
    assert re.search(r"flask: USS after .* \(better\)", out)
    assert re.search(r"tornado: req/s 1500 → 1000 \(worse\)", out)


def test_two_hunts_show_a_fixed_leak(tmp_path: Path) -> None:
    fixed = hunt_result()
    history = fixed.routes[0]
    history.judgement = Judgement("clean", None, history.judgement.traced, history.judgement.uss, "no growth")
    a, b = save(tmp_path, "a.json", hunt_result()), save(tmp_path, "b.json", fixed)
    out = tmp_path / "diff.md"
    assert main(["report", str(a), str(b), "-o", str(out)]) == 0
    text = out.read_text()
    assert "/history: verdict leak → clean" in text
    html = tmp_path / "diff.html"
    assert main(["report", str(a), str(b), "-o", str(html)]) == 0
    assert html.read_text().count('class="plot" role="img"') == 1


def test_two_checks_list_fixed_findings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fixed = check_result()
    fixed.findings = [f for f in fixed.findings if f.rule != "MP102"]
    item = next(c for c in fixed.checklist if c.rule == "MP102")
    item.status, item.findings = "pass", 0
    a, b = save(tmp_path, "a.json", check_result()), save(tmp_path, "b.json", fixed)
    assert main(["report", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "MP102: status fail → pass" in out
    assert "fixed: MP102 ../baseline/examples/leaky_flask/app.py:53" in out


def test_runs_of_two_kinds_are_not_compared(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = save(tmp_path, "a.json", compare_result()), save(tmp_path, "b.json", hunt_result())
    assert main(["report", str(a), str(b)]) == 2
    assert "cannot compare a compare run with a hunt run" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    ("{not json", "not JSON"),
    ("\x00\xff garbage", "not JSON"),
    ("[1, 2]", "not a memprobe result"),
    ('{"framework": "flask", "rss": 1}', 'no "result" key'),
    ('{"result": "profile"}', "cannot render a 'profile' result"),
    ('{"result": "compare", "schema": 99, "memprobe": "9.0"}', "written by a newer memprobe"),
    ('{"result": "hunt", "memprobe": "0.0.1", "target": "app.py:app"}',
     "not a hunt result this memprobe can read (no 'routes'"),
    ('{"result": "compare", "settings": {}, "results": [{"framework": "flask"}]}',
     "not a compare result this memprobe can read"),
    ('{"kind": "compare", "settings": {}, "results": [{"framework": "flask"}]}',
     "not a compare result this memprobe can read"),
    ('{"result": "hunt", "target": "a", "routes": [{"route": "/", "series": 3}]}',
     "not a hunt result this memprobe can read"),
    ('{"result": "check", "target": "a", "checklist": [], "findings": [{"rule": "MP1", "severity": "x"}]}',
     "not a check result this memprobe can read"),
    ('{"result": "hammer", "url": "http://x/"}', "not a hammer result this memprobe can read"),
])
def test_an_old_or_foreign_json_gets_one_line_and_exit_2(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "old.json"
    path.write_text(content)
    run = memprobe("report", str(path))
    assert run.returncode == 2
    assert message in run.stderr and str(path) in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr


def test_a_missing_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nope.json")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_without_matplotlib_html_fails_with_the_pip_command_and_exit_4(tmp_path: Path) -> None:
    env = {"PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "helpers" / "hide_modules"), str(REPO)]),
           "MEMPROBE_TEST_HIDE": "matplotlib"}
    path = save(tmp_path, "compare.json", compare_result())
    run = memprobe("report", str(path), "-o", str(tmp_path / "r.html"), env=env)
    assert run.returncode == 4
    assert "pip install memprobe[html]" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "r.html").exists()
    # the checklist has no plots: its HTML needs no matplotlib
    check = save(tmp_path, "check.json", check_result())
    run = memprobe("report", str(check), "-o", str(tmp_path / "c.html"), env=env)
    assert run.returncode == 0, run.stderr


# -- the HTML itself --------------------------------------------------------------------------

@pytest.mark.parametrize("make", [compare_result, hunt_result, check_result])
def test_the_html_page_needs_nothing_from_outside(make: Any) -> None:
    page = html_of(make())
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page, re.I)
    assert not re.search(r"url\(\s*['\"]?(https?:|//)", page, re.I)
    assert "@import" not in page and "@font-face" not in page
    assert "@media print" in page
    assert "Content-Security-Policy" in page


def test_the_compare_page_has_the_table_the_bars_and_the_lines() -> None:
    page = html_of(compare_result())
    assert page.count('class="plot" role="img"') == 2
    assert 'aria-label="memory before and after per framework: RSS, USS, PSS"' in page
    assert 'aria-label="memory over requests during the hammering, one line per framework"' in page
    for name in ("flask", "tornado", "bottle", "pip install bottle"):
        assert name in page


def test_the_hunt_page_has_the_verdict_error_bars_series_sites_types_and_holders() -> None:
    page = html_of(hunt_result())
    assert "LEAK (python) on /history" in page
    assert "+305.9 ± 0.4" in page
    assert page.count('class="plot" role="img"') == 3  # bytes/request, and one series per route
    assert "_history.append({&quot;path&quot;: request.path" in page  # the source line, escaped
    assert "global _history" in page and "dict" in page


def test_the_check_page_has_the_checklist_and_the_evidence() -> None:
    page = html_of(check_result())
    assert "MP101" in page and "MP102" in page
    assert "measured: " in page and "+305.9 B/request traced" in page
    assert "<code>_history</code>" in page


def test_plots_carry_no_varying_metadata_and_the_page_is_reproducible() -> None:
    page = html_of(hunt_result())
    assert page == html_of(hunt_result())
    assert "<metadata" not in page and "<!--" not in page and "<?xml" not in page


def test_every_string_from_the_app_is_escaped() -> None:
    result = hunt_result()
    for r in result.routes:
        r.route = f"/{SCRIPT}"
        r.notes = [SCRIPT]
    leak = result.routes[0]
    leak.sites[0].file = f"/srv/{SCRIPT}.py"
    leak.sites[0].code = f"x = '{SCRIPT}'"
    leak.types[0]["type"] = SCRIPT
    leak.holders[0].description = SCRIPT
    leak.holders[0].chain = [SCRIPT, "--><script>alert(1)</script>"]
    result.target = f"--><{SCRIPT}"
    result.framework = SCRIPT
    page = html_of(result)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page

    compare = compare_result()
    compare.results[0].name = SCRIPT
    compare.results[2].reason = SCRIPT
    assert "<script" not in html_of(compare).lower()
    check = check_result()
    check.findings[0].snippet = SCRIPT
    check.findings[0].message = f"`{SCRIPT}`"
    assert "<script" not in html_of(check).lower()


def test_a_dollar_in_a_route_is_shown_not_typeset() -> None:
    result = hunt_result()
    result.routes[0].route = "/price/$5/$x^2$"
    assert "/price/$5/$x^2$" in html_of(result)


def test_several_rounds_draw_a_line_per_round() -> None:
    result = compare_result()
    result.results = result.results[:1]
    row = result.results[0]
    assert len(row.rounds) == 2 and all(r.samples for r in row.rounds)
    assert row.saved is not None
    row.saved.samples = None  # the rows' own series gone: each round's is drawn
    assert html_of(result).count('class="plot" role="img"') == 2


# --- a memory sampler that stopped early says so, in every format ---------------------------

@pytest.fixture(scope="module")
def sampler_stop() -> dict[str, Any]:
    """What a real sampler keeps (``samples.stopped``) when the process it reads dies under it."""
    from memprobe.process.memory import Sampler
    from tests.conftest import wait_until

    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        with Sampler(proc.pid, interval=0.01) as sampler:
            wait_until(lambda: len(sampler.series.t) >= 2, 10, "two points read")
            proc.kill()
            proc.wait()
            sampler.join(timeout=10)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.kill()
        proc.wait()
    stopped = sampler.stopped
    assert stopped is not None and stopped["points"] >= 2 and stopped["why"] == f"process {proc.pid} is gone"
    return stopped


def _stop_line(stopped: dict[str, Any]) -> str:
    return (f"memory sampler stopped at t={stopped['t_s']:.1f} s after {stopped['points']} points: "
            f"{stopped['why']}")


def test_a_compare_round_whose_sampler_stopped_says_when_after_how_many_points_and_why(
        sampler_stop: dict[str, Any]) -> None:
    data = fixture("compare")
    data["results"][0]["rounds"][1]["samples"]["stopped"] = sampler_stop
    result = CompareResult.from_dict(json.loads(json.dumps(data)))
    line = f"flask, round 2: {_stop_line(sampler_stop)}"
    assert line in render(result, "text", width=200)
    assert f"- {line}" in render(result, "markdown")
    html = render(result, "html")
    assert "Memory sampler" in html and line in html
    again = CompareResult.from_dict(json.loads(render(result, "json")))
    assert render(again, "text", width=200) == render(result, "text", width=200)


def test_a_hammer_whose_sampler_stopped_says_when_after_how_many_points_and_why(
        sampler_stop: dict[str, Any]) -> None:
    from memprobe.results import HammerResult

    data = fixture("hammer")
    data["samples"]["stopped"] = sampler_stop
    result = HammerResult.from_dict(json.loads(json.dumps(data)))
    line = _stop_line(sampler_stop)
    for fmt in ("text", "markdown", "html"):
        assert line in render(result, fmt), fmt


def test_a_sampler_that_ran_to_the_end_adds_no_line() -> None:
    from memprobe.results import HammerResult

    data = fixture("hammer")
    data["samples"]["stopped"] = None
    assert "sampler stopped" not in render(HammerResult.from_dict(data), "text")
    assert "sampler" not in render(CompareResult.from_dict(fixture("compare")), "markdown")
