"""The pytest plugin on a deployed server: ``memprobe_limit(cmd=...)`` and ``memprobe.hunt(cmd=...)``
hunt a real ``gunicorn -w 2`` worker by worker (tests/servers/workers/), the server judged as a
whole, and the failure line names the worst worker. Each case runs pytest with pytester, in a
subprocess; real gunicorn, real HTTP on 127.0.0.1.
"""
from __future__ import annotations

import glob
import json
import os
import sys

import pytest

from tests.conftest import SERVERS

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.slow

APPS = SERVERS / "workers"
GUNICORN = f"{sys.executable} -m gunicorn -w 2 -k gthread --threads 2 -b 127.0.0.1:{{port}} %s:app"
#: 2,500 requests shared by two workers. A server's PSS moves by the pages its processes share
#: (±270 B/request seen on a loaded CI machine), so a clean route is called clean at 256 B/request.
ROUNDS = "requests=500, rounds=5, warmup=400, sensitivity=256"

TESTS = f'''
import time

import pytest

APPS = {str(APPS)!r}


@pytest.mark.memprobe_limit(cmd={GUNICORN % "wsgi_leaky"!r}, cwd=APPS, route="/leak", {ROUNDS})
def test_leaky_server():
    pass


# a route that keeps nothing may grow a few B/request too significantly to call in 2,500
# requests on a loaded machine: inconclusive, which this gate lets pass (a leak still fails)
@pytest.mark.memprobe_limit(cmd={GUNICORN % "wsgi_clean"!r}, cwd=APPS, route="/leak", inconclusive="pass", {ROUNDS})
def test_clean_twin():
    pass


def test_the_fixture_gives_one_result_per_process(memprobe):
    result = memprobe.hunt(cmd={GUNICORN % "wsgi_leaky"!r}, cwd=APPS, routes=["/leak"], {ROUNDS})
    route = result.routes[0]
    assert result.settings.mode == "workers" and route.memory == "pss"
    assert [w.role for w in route.workers] == ["master", "worker", "worker"]
    assert all(w.verdict == "leak" for w in route.workers if w.role == "worker")
    assert sum(w.requests for w in route.workers) >= 5 * 500 - 8


def test_a_served_server_is_hunted_as_it_runs(memprobe):
    server = memprobe.serve(cmd={GUNICORN % "wsgi_leaky"!r}, cwd=APPS, path="/ok")
    deadline = time.monotonic() + 30
    while len(server.workers()) < 2 and time.monotonic() < deadline:  # the agents come up with the workers
        time.sleep(0.05)
    assert len(server.workers()) == 2 and server.pid not in server.workers()
    assert memprobe.hammer(server.url + "/ok", 20).ok == 20
    result = server.hunt(["/leak", "/ok"], {ROUNDS})
    leak, ok = result.routes
    # /ok keeps nothing: never a leak (inconclusive where a loaded machine's 2,500 requests
    # grew a few B/request too significantly to call)
    assert leak.verdict == "leak" and ok.verdict in ("clean", "inconclusive")
    assert {{w.pid for w in leak.workers if w.role == "worker"}} == set(server.workers())
    assert all(w.verdict == "leak" and w.holders for w in leak.workers if w.role == "worker")
    assert memprobe.hammer(server.url + "/ok", 20).ok == 20  # it keeps serving
'''


@pytest.mark.timeout(400)
def test_a_leaky_gunicorn_fails_naming_its_worst_worker_and_the_clean_twin_passes(
        pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    private = tmp_path_factory.mktemp("tmpdir")  # the run's own: a parallel run's channel is not ours
    monkeypatch.setenv("TMPDIR", str(private))
    pytester.makepyfile(test_server=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:xdist", "--memprobe-json", "x.json")

    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines([
        "memprobe: /leak leaks (python): +* B/request traced, * B/request PSS over 2,5?? requests; "
        "worst worker: pid *, leak, +* B/request traced over * requests it served",
        "target *wsgi_leaky:app (flask, worker by worker): 5 rounds x 500 requests after 400 warm-up",
        "  per process (each on the requests it served):",
        "    pid * master (serves none): clean, *",
        "    pid * worker (* requests): leak, +* B/request traced, *wsgi_leaky.py:11; held by module "
        "wsgi_leaky.py, global _seen *",
    ])
    result.stdout.re_match_lines([r"^test_server\.py::test_clean_twin\s+/leak\s+(clean|inconclusive)\s.* PSS\s.*PASSED$"])
    data = json.loads((pytester.path / "x.json").read_text())
    leaky = next(t for t in data["tests"] if t["nodeid"].endswith("test_leaky_server"))
    assert leaky["mode"] == "workers" and leaky["limits"]["cmd"] == GUNICORN % "wsgi_leaky"
    route = leaky["routes"][0]
    assert route["memory"] == "pss" and [w["role"] for w in route["workers"]] == ["master", "worker", "worker"]
    assert leaky["result"]["routes"][0]["workers"][1]["sites"]
    served = next(t for t in data["tests"] if t["nodeid"].endswith("test_a_served_server_is_hunted_as_it_runs"))
    assert served["mode"] == "workers" and [r["route"] for r in served["routes"]] == ["/leak", "/ok"]
    assert glob.glob(os.path.join(private, "memprobe-run-*")) == [], "a channel directory was left behind"


def test_a_marker_with_both_a_target_and_a_command_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bad='''
        import pytest

        @pytest.mark.memprobe_limit("app.py:app", cmd="gunicorn -b 127.0.0.1:{port} app:app")
        def test_both():
            pass
    ''')
    result = pytester.runpytest()

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*memprobe_limit: give a target or cmd=, not both and not neither*"])
