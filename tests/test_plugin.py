"""The pytest plugin, as a user's test suite sees it (each case runs pytest with pytester)."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from memprobe.hunt import hunt_in_process
from tests.conftest import SERVERS, ctrl_c_reaches_it, wait_until

pytest_plugins = ["pytester"]

LEAKY_APP = '''
from __future__ import annotations

_kept: list[bytes] = []


def app(environ, start_response):
    if environ["PATH_INFO"] == "/leak":
        _kept.append(bytes(1000))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
'''
#: Small rounds: the signal (~1 KB/request in child mode, ~140 B in-process) allows it.
# Few requests, to be quick: a clean route's readings cannot see a 16 B/request leak in them, so
# its verdict is inconclusive, passed here on purpose (tests/test_verdicts.py has the default).
COUNTS = "requests=200, rounds=3, warmup=50"
SMALL = f'{COUNTS}, inconclusive="pass"'
CHILD = 'requests=300, rounds=3, warmup=100, inconclusive="pass"'


def _pids_dead(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            continue
    return alive


@pytest.fixture
def leaky_app(pytester: pytest.Pytester) -> Path:
    """app.py next to the tests: /leak keeps 1 KB per request, / keeps nothing."""
    return pytester.makepyfile(app=LEAKY_APP)


def test_the_plugin_imports_nothing_heavy_in_a_session_that_does_not_use_it(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_plain='''
        import sys

        def test_nothing_heavy_was_imported():
            assert "memprobe.pytest_plugin" in sys.modules
            heavy = ["psutil", "rich", "memprobe.hunt", "memprobe.http.hammer", "memprobe.process.child",
                     "memprobe.process.memory", "memprobe.hunt.protocol", "memprobe.agent.control", "guppy"]
            assert [m for m in heavy if m in sys.modules] == []
    ''')
    # Only memprobe's plugin: another one installed beside it (pytest-memray imports rich) is not
    # what this test is about.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = pytester.runpytest_subprocess("-p", "memprobe.pytest_plugin")

    result.assert_outcomes(passed=1)
    assert "memprobe" not in result.stdout.str().split("collected", 1)[1]


def test_the_marker_is_registered_with_its_documentation(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")

    result.stdout.fnmatch_lines(["@pytest.mark.memprobe_limit(target=None, route=None, *, cmd=None, cwd=None,"
                                 " routes=None, requests=None, per_request=None, metric='traced',*"
                                 "*fail the test when a route grows more than PER_REQUEST*"])


def test_the_options_are_documented_with_their_ini_twins(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")

    result.stdout.fnmatch_lines(["*--memprobe-json=FILE*", "*--memprobe-requests=N*",
                                 "*--memprobe-off*", "*memprobe_json (string)*",
                                 "*memprobe_requests (string)*", "*memprobe_off (bool)*"])


def test_a_limit_just_above_the_growth_passes_and_just_below_fails(
        pytester: pytest.Pytester, leaky_app: Path) -> None:
    measured = hunt_in_process(f"{leaky_app}:app", routes=["/leak"], requests=200, rounds=3, warmup=50)
    slope = measured.routes[0].judgement.traced.slope
    above, below = math.ceil(slope * 1.03), math.floor(slope * 0.97)
    pytester.makepyfile(test_limits=f'''
        import pytest

        @pytest.mark.memprobe_limit("app.py:app", route="/leak", {SMALL}, in_process=True,
                                    per_request="{above} B", leak=None)
        def test_above():
            pass

        @pytest.mark.memprobe_limit("app.py:app", route="/leak", {SMALL}, in_process=True,
                                    per_request="{below} B", leak=None)
        def test_below():
            pass
    ''')
    result = pytester.runpytest()

    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*test_limits.py::test_above*PASSED*", "*test_limits.py::test_below*FAILED*"])
    result.stdout.re_match_lines([
        rf"^memprobe: /leak grew 1\.\d KiB/request \(limit {below} B\) over 600 requests$"])


def test_a_growth_limit_is_checked_on_the_total(pytester: pytest.Pytester, leaky_app: Path) -> None:
    pytester.makepyfile(test_growth=f'''
        import pytest

        @pytest.mark.memprobe_limit("app.py:app", route="/leak", {SMALL}, in_process=True,
                                    growth="1 MiB", leak=None)
        def test_under_a_mebibyte():
            pass

        @pytest.mark.memprobe_limit("app.py:app", route="/leak", {SMALL}, in_process=True,
                                    growth="100 KiB", leak=None)
        def test_over_100_kib():
            pass
    ''')
    result = pytester.runpytest()

    result.assert_outcomes(passed=1, failed=1)
    result.stdout.re_match_lines([
        r"^memprobe: /leak grew \d+\.\d KiB in total \(limit 100 KiB\) over 600 requests$"])


def test_a_failure_has_one_line_then_a_section_with_the_site_and_the_holder(
        pytester: pytest.Pytester, leaky_app: Path) -> None:
    pytester.makepyfile(test_fail=f'''
        import pytest

        @pytest.mark.memprobe_limit("app.py:app", route="/leak", {SMALL}, in_process=True,
                                    per_request="64 B")
        def test_items_do_not_leak():
            pass
    ''')
    result = pytester.runpytest()

    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines([
        "test_fail.py M*",
        "*_ test_items_do_not_leak _*",
        "memprobe: /leak grew 1.? KiB/request (limit 64 B) over 600 requests (and 1 more, see "
        "the memprobe section)",
        "*- memprobe -*",
        "target */app.py:app (wsgi, in-process): 3 rounds x 200 requests after 50 warm-up",
        "violations:",
        "  /leak grew 1.? KiB/request (limit 64 B) over 600 requests",
        "  /leak leaks (python): +10??.? ± *.? B/request traced over 600 requests",
        "route /leak: leak (python): the Python heap grows steadily*",
        "  top allocation sites (growth per request):",
        "*app.py:8  _kept.append(bytes(1000))",
        # read before the attribution round, as in a child
        "  held by: module app.py, global _kept (list, 650 entries)",
    ])
    assert "Traceback" not in out and "def test_items_do_not_leak" not in out
    result.stdout.fnmatch_lines(["FAILED test_fail.py::test_items_do_not_leak - Failed: memprobe:*"])


def test_the_summary_lists_every_measured_test_and_the_json_file_has_them_all(
        pytester: pytest.Pytester, leaky_app: Path) -> None:
    pytester.makepyfile(test_many=f'''
        import pytest

        @pytest.mark.memprobe_limit("app.py:app", route="/", {SMALL}, in_process=True,
                                    per_request="16 B")
        def test_index():
            pass

        @pytest.mark.memprobe_limit("app.py:app", route="/leak", {SMALL}, in_process=True)
        def test_leak():
            pass

        def test_with_the_fixture(memprobe):
            result = memprobe.hunt("app.py:app", routes=["/leak"], {COUNTS}, in_process=True)
            assert result.verdict == "leak", result.summary()

        def test_not_measured():
            pass
    ''')
    result = pytester.runpytest("--memprobe-json", "out/memprobe.json")

    result.assert_outcomes(passed=3, failed=1)
    result.stdout.re_match_lines([
        r"^=+ memprobe =+$",
        r"^test\s+route\s+verdict\s+traced B/req\s+USS B/req\s+limit\s+result$",
        r"^test_many\.py::test_index\s+/\s+inconclusive\s+[+-]\d\.\d ± \d\.\d\s+-\s+16 B/req, no leak\s+PASSED$",
        r"^test_many\.py::test_leak\s+/leak\s+leak\s+\+10\d\d\.\d ± \d+\.\d\s+-\s+no leak\s+FAILED$",
        r"^test_many\.py::test_with_the_fixture\s+/leak\s+leak\s+.*\(fixture\)\s+PASSED$",
        r"^memprobe: 3 result\(s\) written to .*out/memprobe.json$",
    ])
    assert "test_not_measured" not in result.stdout.str().split("= memprobe =")[1]
    data = json.loads((pytester.path / "out" / "memprobe.json").read_text())
    assert data["result"] == "pytest"
    tests = {t["nodeid"].split("::")[1]: t for t in data["tests"]}
    assert set(tests) == {"test_index", "test_leak", "test_with_the_fixture"}
    assert tests["test_leak"]["outcome"] == "failed" and tests["test_leak"]["violations"]
    assert tests["test_index"]["limits"]["per_request_bytes"] == 16
    assert tests["test_with_the_fixture"]["source"] == "fixture"
    assert tests["test_with_the_fixture"]["result"]["routes"][0]["sites"]


def test_the_ini_twins_set_the_json_file_the_default_requests_and_off(
        pytester: pytest.Pytester, leaky_app: Path) -> None:
    pytester.makeini("[pytest]\nmemprobe_json = session.json\nmemprobe_requests = 150\n"
                     "memprobe_inconclusive = pass\n")
    pytester.makepyfile(test_ini='''
        import pytest

        @pytest.mark.memprobe_limit("app.py:app", route="/", rounds=2, warmup=10, in_process=True)
        def test_default_requests():
            pass
    ''')
    pytester.runpytest().assert_outcomes(passed=1)
    data = json.loads((pytester.path / "session.json").read_text())
    assert data["tests"][0]["result"]["settings"]["requests"] == 150

    result = pytester.runpytest("--memprobe-requests", "120")
    data = json.loads((pytester.path / "session.json").read_text())
    assert data["tests"][0]["result"]["settings"]["requests"] == 120

    pytester.makeini("[pytest]\nmemprobe_off = true\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert "= memprobe =" not in result.stdout.str()


def test_memprobe_off_checks_no_marker_and_skips_hunts(pytester: pytest.Pytester,
                                                      leaky_app: Path) -> None:
    pytester.makepyfile(test_off=f'''
        import pytest

        @pytest.mark.memprobe_limit("app.py:app", route="/leak", {SMALL}, in_process=True,
                                    per_request="1 B")
        def test_would_fail():
            pass

        def test_hunt(memprobe):
            memprobe.hunt("app.py:app", routes=["/leak"], in_process=True)
    ''')
    result = pytester.runpytest("--memprobe-off", "-rs")

    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED * memprobe is off (--memprobe-off)"])


@pytest.mark.parametrize(("args", "message"), [
    ('per_request="64 bytes"', "memprobe_limit: not a size: '64 bytes' (write e.g. '64 B', "
                               "'2 KiB', '1.5 MB', '512')"),
    ('per_request="64 B", metric="rss"', "memprobe_limit: metric must be one of traced, uss, "
                                         "not 'rss'"),
    ("colour='red'", "memprobe_limit: memprobe_limit() got an unexpected keyword argument "
                     "'colour'"),
])
def test_a_wrong_marker_argument_fails_the_test_with_a_clear_line(
        pytester: pytest.Pytester, leaky_app: Path, args: str, message: str) -> None:
    pytester.makepyfile(test_bad=f'''
        import pytest

        @pytest.mark.memprobe_limit("app.py:app", route="/", in_process=True, {args})
        def test_bad():
            pass
    ''')
    result = pytester.runpytest()

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([message.replace("[", "[[]")])


def test_a_target_that_cannot_load_fails_the_test_with_the_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(broken="raise RuntimeError('no database configured')\n", test_broken='''
        import pytest

        @pytest.mark.memprobe_limit("broken.py:app", route="/", in_process=True)
        def test_broken():
            pass
    ''')
    result = pytester.runpytest()

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["memprobe: could not measure */broken.py:app: importing "
                                 "*broken.py raised RuntimeError: no database configured at "
                                 "broken.py:1"])


# ---- child-process mode: real servers, real HTTP on 127.0.0.1 (each run is a subprocess) ----

CHILD_TESTS = f'''
import pytest

@pytest.mark.memprobe_limit("app.py:app", route="/leak", {CHILD}, per_request="256 B")
def test_leaky_route():
    pass

@pytest.mark.memprobe_limit("app.py:app", route="/", {CHILD}, per_request="256 B")
def test_clean_route():
    pass
'''


@pytest.mark.slow
def test_in_a_child_process_the_leaky_route_fails_and_its_clean_twin_passes(
        pytester: pytest.Pytester, leaky_app: Path) -> None:
    pytester.makepyfile(test_child=CHILD_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:xdist")

    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "memprobe: /leak grew 1.? KiB/request (limit 256 B) over 900 requests (and 1 more*",
        "target */app.py:app (wsgi, child process): 3 rounds x 300 requests after 100 warm-up",
        "*app.py:8  _kept.append(bytes(1000))",
        "  held by: module app.py, global _kept (list, *",
    ])
    # The verdict of a flat route in a child can be "bounded" from start-up noise; never a leak (and
    # 900 requests cannot see a 16 B/request leak: inconclusive, passed on purpose).
    result.stdout.re_match_lines([r"^test_child\.py::test_clean_route\s+/\s+(inconclusive|bounded)\s.*PASSED$"])


@pytest.mark.slow
def test_with_xdist_each_worker_measures_and_the_json_file_is_written_once(
        pytester: pytest.Pytester, leaky_app: Path) -> None:
    pytester.makepyfile(test_child=CHILD_TESTS)
    result = pytester.runpytest_subprocess("-n", "2", "--memprobe-json", "x.json")

    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert out.count("= memprobe =") == 1
    assert "memprobe: /leak grew" in out
    assert sorted(pytester.path.glob("*.json")) == [pytester.path / "x.json"]
    data = json.loads((pytester.path / "x.json").read_text())
    assert sorted(t["nodeid"] for t in data["tests"]) == [
        "test_child.py::test_clean_route", "test_child.py::test_leaky_route"]
    assert {t["worker"] for t in data["tests"]} <= {"gw0", "gw1"}


SERVE_TESTS = '''
import json
import os
import time

import psutil


def _write_pids(name):
    pids = [p.pid for p in psutil.Process().children(recursive=True)]
    with open(name, "w") as fh:
        json.dump(pids, fh)


def test_serve_and_hammer(memprobe):
    server = memprobe.serve("app.py:app")
    load = memprobe.hammer(server.url + "/", 50, concurrency=2)
    assert load.ok == 50
    assert server.hammer("/leak", 20).ok == 20
    assert server.memory().uss > 0
    _write_pids("passing.json")


def test_fails_while_serving(memprobe):
    server = memprobe.serve("app.py:app")
    _write_pids("failing.json")
    assert server.pid < 0, "this test fails on purpose"


def test_interrupted_while_serving(memprobe):
    if not os.environ.get("INTERRUPT_ME"):
        return
    memprobe.serve("app.py:app")
    _write_pids("interrupted.json")
    time.sleep(60)
'''


@pytest.mark.slow
def test_servers_the_fixture_started_are_gone_after_a_passing_and_a_failing_test(
        pytester: pytest.Pytester, leaky_app: Path) -> None:
    pytester.makepyfile(test_serve=SERVE_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:xdist")

    result.assert_outcomes(passed=2, failed=1)
    for name in ("passing.json", "failing.json"):
        pids = json.loads((pytester.path / name).read_text())
        assert pids, f"{name}: the server was not a child of the pytest process"
        assert _pids_dead(pids) == [], f"{name}: left running"


@pytest.mark.slow
def test_servers_the_fixture_started_are_gone_after_an_interrupted_test(
        pytester: pytest.Pytester, leaky_app: Path) -> None:
    pytester.makepyfile(test_serve=SERVE_TESTS)
    marker = pytester.path / "interrupted.json"
    env = {**os.environ, "INTERRUPT_ME": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:xdist", "-p",
                             "no:cacheprovider", "test_serve.py::test_interrupted_while_serving"],
                            cwd=pytester.path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, preexec_fn=ctrl_c_reaches_it)
    try:
        def started() -> bool:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            return marker.exists() and bool(marker.read_text())

        wait_until(started, 60, "the test starts its server")
        pids = json.loads(marker.read_text())
        assert pids
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        out = proc.communicate(timeout=30)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "KeyboardInterrupt" in out
    assert _pids_dead(pids) == []


PORT_RACE_TEST = '''
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from memprobe.process import child


class Impostor(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_serve_on_a_port_taken_meanwhile(memprobe, monkeypatch):
    impostor = HTTPServer(("127.0.0.1", 0), Impostor)
    threading.Thread(target=impostor.serve_forever, daemon=True).start()
    given, real = [], child.free_port
    monkeypatch.setattr(child, "free_port",
                        lambda host="127.0.0.1": given.append(real(host) if given else impostor.server_address[1])
                        or given[-1])
    server = memprobe.serve(cmd=sys.executable + " BEHAVIOURS --port {port}")
    assert given[0] == impostor.server_address[1] and server.port == given[1]
    assert server.hammer("/", 20, concurrency=1).ok == 20
    impostor.shutdown()
'''


@pytest.mark.slow
def test_serve_starts_the_server_again_when_its_port_was_taken_meanwhile(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_race=PORT_RACE_TEST.replace("BEHAVIOURS", str(SERVERS / "behaviours.py")))
    result = pytester.runpytest_subprocess("-p", "no:xdist")
    result.assert_outcomes(passed=1)
