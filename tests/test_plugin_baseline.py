"""``--memprobe-baseline``: a measured test fails when its bytes per request grew beyond the
stored figure, and ``--memprobe-update-baseline`` stores the new one (pytester runs a user's
suite against a real app in a child process)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

APP = '''
_kept = []


def app(environ, start_response):
    if environ["PATH_INFO"] == "/items":
        _kept.append(bytes({size}) if {size} else None)
        if not {size}:
            _kept.pop()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
'''
TEST = '''
def test_items(memprobe):
    memprobe.hunt("app.py:app", routes=["/items"], requests=300, rounds=3, warmup=100)
'''
LINE = re.compile(r"memprobe baseline: test_mem\.py::test_items /items grew from ([-+][\d.]+) ± [\d.]+ "
                  r"to ([-+][\d.]+) ± [\d.]+ B/request traced")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:xdist", "-p", "no:anyio", "--memprobe-baseline",
                                         "baseline.json", *args)


@pytest.mark.slow
def test_a_test_that_grew_200_bytes_per_request_fails_until_the_baseline_is_updated(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(app=APP.format(size=0), test_mem=TEST)
    stored = run(pytester, "--memprobe-update-baseline")
    stored.assert_outcomes(passed=1)
    data = json.loads((pytester.path / "baseline.json").read_text())
    assert data["result"] == "pytest-baseline"
    before = data["tests"]["test_mem.py::test_items"]["/items"]
    assert before["metric"] == "traced" and abs(before["traced"]["value"]) < 20

    run(pytester).assert_outcomes(passed=1)

    pytester.makepyfile(app=APP.format(size=160))  # a bytes(160) and its list slot: ~200 B/request
    grown = run(pytester)
    grown.assert_outcomes(failed=1)
    # The failure's own line (the short summary repeats it, whole when $CI is set, cut to the
    # terminal's width otherwise).
    lines = [line for line in grown.outlines if line.startswith("memprobe baseline:") and LINE.search(line)]
    assert len(lines) == 1, grown.stdout.str()
    old, new = map(float, LINE.search(lines[0]).groups())  # type: ignore[union-attr]
    assert old == round(before["traced"]["value"], 1)
    assert 150 < new - old < 300

    run(pytester, "--memprobe-update-baseline").assert_outcomes(passed=1)
    run(pytester).assert_outcomes(passed=1)


def test_the_tolerance_and_the_file_come_from_the_ini_too(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nmemprobe_baseline = base/line.json\nmemprobe_tolerance = 1 KiB\n")
    pytester.makepyfile(test_conf='''
        def test_settings(request):
            manager = request.config.pluginmanager.get_plugin("memprobe_manager")
            assert manager.baseline.tolerance == 1024
            assert manager.baseline.path == request.config.rootpath / "base" / "line.json"
    ''')
    pytester.runpytest("-p", "no:xdist").assert_outcomes(passed=1)


def test_a_file_that_is_not_a_baseline_is_a_usage_error(pytester: pytest.Pytester) -> None:
    (pytester.path / "baseline.json").write_text('{"tests": []}')
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest("-p", "no:xdist", "--memprobe-baseline", "baseline.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "not a memprobe baseline" in result.stderr.str()


def test_updating_without_a_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest("-p", "no:xdist", "--memprobe-update-baseline")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_the_file_keeps_tests_that_did_not_run(tmp_path: Path) -> None:
    from memprobe.pytest_plugin.baseline import Baseline

    path = tmp_path / "b.json"
    rate = {"value": 1.0, "error": 0.5}
    record = {"nodeid": "t.py::a", "limits": None,
              "routes": [{"route": "/", "requests": 10, "bytes_per_request": {"traced": rate, "uss": None}}]}
    Baseline(path, update=True).write([record])
    Baseline.load(path, update=True).write([{**record, "nodeid": "t.py::b"}])
    again = Baseline.load(path)
    assert sorted(again.tests) == ["t.py::a", "t.py::b"]
    assert again.regressions("t.py::a", [record]) == []
    grown = {**record, "routes": [{**record["routes"][0], "bytes_per_request": {"traced": {"value": 34.0, "error": 0.5}}}]}
    assert again.regressions("t.py::a", [grown]) == []  # +33 B: within 2·√(0.5²+0.5²) + 32 = 33.4 B
    grown["routes"][0]["bytes_per_request"]["traced"]["value"] = 35.0
    assert len(again.regressions("t.py::a", [grown])) == 1
