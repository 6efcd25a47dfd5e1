"""Verdicts the evidence allows: 'inconclusive' when the readings could not see the leaks looked
for, 'errors' when a route never answered 2xx/3xx, each with its exit code and what to do.

The post-judge layer (memprobe.hunt.evidence) is fed readings here; the CLI and the pytest
plugin are run on httpbin, a real third-party Flask app, under memprobe's child.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from memprobe.errors import ExitCode
from memprobe.hunt.evidence import weigh
from memprobe.hunt.model import judge
from memprobe.results.hunt import Fit, HuntResult, HuntSettings, Judgement, Reading, RouteResult

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parent.parent
#: a fixed scatter for fake readings (bytes): no randomness in a specification
SCATTER = [0, 310, -280, 150, -90, 260, -300, 40, 200, -170, 120]


def series(per_request: float, step: int, rounds: int, scatter: float = 1.0,
           uss: bool = False) -> list[Reading]:
    """A baseline and ``rounds`` readings ``step`` requests apart, growing ``per_request`` B each."""
    out = []
    for i in range(rounds + 1):
        y = 1_000_000 + int(per_request * i * step + scatter * SCATTER[i % len(SCATTER)])
        out.append(Reading(i * step, y, 50_000_000 + y if uss else None))
    return out


def weighed(readings: list[Reading], stopped: str | None = "time_limit", statuses: dict[str, int] | None = None,
            seconds: float = 40.0):  # type: ignore[no-untyped-def]
    return weigh(judge(readings, "uss", 0.2), readings, target=16.0, stopped=stopped,
                 statuses=statuses if statuses is not None else {"200": readings[-1].requests},
                 seconds=seconds, max_seconds=40.0, max_requests=10_000)


def test_a_flat_route_with_too_few_requests_is_inconclusive_with_what_it_could_see_and_what_to_do() -> None:
    readings = series(0.0, 16, 5, scatter=1.0)  # 80 requests, as /drip at 2 s a request
    out = weighed(readings)
    assert judge(readings).verdict == "clean"
    assert out.judgement.verdict == "inconclusive" and out.judged == "clean"
    assert out.judgement.reason.startswith("could see ")
    assert "B/request or more traced; 80 requests in 40 s" in out.judgement.reason
    assert out.advice["max_seconds"] > 40 and out.advice["sensitivity"] > 16


def test_a_clean_the_sequential_protocol_decided_on_evidence_stays_clean() -> None:
    readings = series(0.0, 16, 5)
    assert weighed(readings, stopped="clean").judgement.verdict == "clean"


def test_a_slope_seven_standard_errors_above_zero_under_the_total_bar_is_inconclusive_growth() -> None:
    # Django's / in the issue: +14.8 ± 2.1 B/request, under 32 KiB in all
    readings = series(14.8, 200, 10, scatter=8.0)
    j = judge(readings, "uss", 0.2)
    assert j.verdict == "clean" and j.traced is not None and j.traced.slope > 5 * j.traced.error
    out = weighed(readings)
    assert out.judgement.verdict == "inconclusive"
    assert out.judgement.reason.startswith("growing +14.")
    assert "standard errors above zero), too little to call a leak or growth that stops in 2,000 requests " \
        "in 40 s (a leak must grow 32.0 KiB in all)" in out.judgement.reason
    assert "no growth beyond noise" not in out.judgement.reason


def test_a_flat_route_measured_long_enough_is_clean_whatever_stopped_it() -> None:
    readings = series(0.0, 1_000, 8, scatter=0.5)
    out = weighed(readings, stopped="fixed")
    assert out.judgement.verdict == "clean" and out.judged is None and not out.advice


def test_growth_under_the_target_is_clean_in_words_that_say_so() -> None:
    readings = series(6.0, 500, 8, scatter=0.05)
    fits = Fit(6.0, 0.6, 6.0, 6.0, 24_000, "clean")
    j = Judgement("clean", None, fits, None, "no growth beyond noise (...)")
    out = weigh(j, readings, target=16.0, stopped="time_limit", statuses={"200": 4000}, seconds=40.0,
                max_seconds=40.0, max_requests=10_000)
    assert out.judgement.verdict == "clean"
    assert out.judgement.reason.startswith("grew traced +6.0 ± 0.6 B/request, under the 16.0 B/request traced "
                                           "this hunt looks for")


def test_a_route_that_answered_only_errors_is_errors_and_one_with_some_2xx_stays_judged() -> None:
    readings = series(0.0, 1_000, 8, scatter=0.5)
    out = weighed(readings, stopped="clean", statuses={"401": 8_000, "404": 100})
    assert out.judgement.verdict == "errors" and out.judged == "clean"
    assert out.judgement.reason.startswith("every answer was an error (8,000 x 401, 100 x 404)")
    assert weighed(readings, stopped="clean", statuses={"200": 10, "401": 7_990}).judgement.verdict == "clean"


def test_a_leak_stays_a_leak_whatever_the_answers_were() -> None:
    readings = series(500.0, 1_000, 8)
    out = weighed(readings, stopped="leak", statuses={"500": 8_000})
    assert out.judgement.verdict == "leak" and out.judged is None


def _route(verdict: str, name: str) -> RouteResult:
    j = Judgement(verdict, "python" if verdict == "leak" else None, Fit(1.0, 0.5, 0, 0, 0, "clean"), None, "r")
    return RouteResult(judgement=j, readings=series(0.0, 10, 3), sites=[], types=[], holders=[], route=name,
                       judged="clean" if verdict in ("errors", "inconclusive") else None,
                       advice={"max_seconds": 410, "sensitivity": 898} if verdict == "inconclusive" else {})


@pytest.mark.parametrize(("verdicts", "code"), [
    (["clean", "bounded"], ExitCode.OK),
    (["clean", "inconclusive"], ExitCode.INCONCLUSIVE),
    (["inconclusive", "errors", "bounded"], ExitCode.ERRORS),
    (["errors", "leak", "inconclusive"], ExitCode.FAILED),
])
def test_the_exit_code_is_the_worst_verdict_a_leak_first(verdicts: list[str], code: ExitCode) -> None:
    result = HuntResult("app", HuntSettings(), routes=[_route(v, f"/{i}") for i, v in enumerate(verdicts)])
    assert result.exit_code == code
    assert (ExitCode.INCONCLUSIVE, ExitCode.ERRORS) == (5, 6)


def test_the_json_keeps_the_verdict_key_and_adds_what_the_judge_said_and_the_advice() -> None:
    result = HuntResult("app", HuntSettings(), routes=[_route("inconclusive", "/drip")])
    data = json.loads(json.dumps(result.to_dict()))
    route = data["routes"][0]
    assert (data["verdict"], route["verdict"], route["judged_verdict"]) == ("inconclusive",) * 2 + ("clean",)
    assert route["advice"] == {"max_seconds": 410, "sensitivity": 898}
    back = HuntResult.from_dict(data)
    assert back.routes[0].advice == route["advice"] and back.exit_code == ExitCode.INCONCLUSIVE


# -- the CLI on httpbin ---------------------------------------------------------------------

def run_hunt(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memprobe", "hunt", "httpbin:app", "--no-save", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


@pytest.mark.slow
def test_httpbins_slow_drip_is_inconclusive_with_exit_5_and_one_line_saying_what_to_do(tmp_path: Path) -> None:
    pytest.importorskip("httpbin")
    out = tmp_path / "drip.json"
    proc = run_hunt("--route", "/drip?duration=0.4&numbytes=4&delay=0", "--max-seconds", "6",
                    "--warmup", "60", "--json", str(out))
    assert proc.returncode == ExitCode.INCONCLUSIVE, proc.stdout + proc.stderr
    route = json.loads(out.read_text())["routes"][0]
    assert (route["verdict"], route["judged_verdict"], route["stopped_because"]) == \
        ("inconclusive", "clean", "time_limit")
    line = proc.stderr.strip().splitlines()[-1]
    # "could see ..." or, when a signal grew over the few requests, "growing ...; could see ..."
    assert line.startswith("memprobe: /drip?duration=0.4&numbytes=4&delay=0: inconclusive: ")
    assert "could see " in line and " B/request or more traced" in line
    assert "--max-seconds" in line and "--sensitivity" in line
    assert "inconclusive" in proc.stdout and "-> exit 5" in proc.stdout
    assert "warm-up cut to" in proc.stdout  # the route is slow: what the cut risks is said


@pytest.mark.slow
def test_httpbins_bearer_without_a_token_is_errors_with_exit_6_and_with_one_is_judged(tmp_path: Path) -> None:
    pytest.importorskip("httpbin")
    out = tmp_path / "bearer.json"
    proc = run_hunt("--route", "/bearer", "--route", "/status/404", "--max-seconds", "20", "--warmup", "100",
                    "--json", str(out))
    assert proc.returncode == ExitCode.ERRORS, proc.stdout + proc.stderr
    routes = {r["route"]: r for r in json.loads(out.read_text())["routes"]}
    assert routes["/bearer"]["verdict"] == routes["/status/404"]["verdict"] == "errors"
    assert routes["/bearer"]["reason"].startswith("every answer was an error (")
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("memprobe: /bearer (and 1 more route): errors: every answer was an error (")
    assert "x 401" in line and "-X METHOD, -H 'Name: value' or --body" in line

    proc = run_hunt("--route", "/bearer", "-H", "Authorization: Bearer x", "--max-seconds", "30",
                    "--warmup", "100", "--json", str(out))
    assert proc.returncode == ExitCode.OK, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    assert data["routes"][0]["verdict"] == "clean"
    assert data["routes"][0]["load"]["status_counts"].keys() == {"200"}
    assert data["settings"]["header_names"] == ["Authorization"]
    assert "Bearer x" not in out.read_text()  # a header's value stays out of the report


def test_a_header_that_is_not_name_colon_value_is_a_usage_error() -> None:
    proc = run_hunt("--route", "/", "-H", "Authorization Bearer x", timeout=60)
    assert proc.returncode == ExitCode.USAGE
    assert proc.stderr.strip() == "memprobe: a header is 'Name: value', not 'Authorization Bearer x'"


# -- the pytest plugin ----------------------------------------------------------------------

APP = '''
def app(environ, start_response):
    if environ["PATH_INFO"] == "/private" and environ.get("HTTP_AUTHORIZATION") != "Bearer x":
        start_response("401 Unauthorized", [("Content-Type", "text/plain")])
        return [b"no"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
'''


def test_the_plugin_fails_an_inconclusive_route_unless_asked_and_an_all_error_route_always(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(app=APP)
    pytester.makepyfile(test_it='''
        import pytest

        SMALL = dict(requests=100, rounds=3, warmup=20, in_process=True)

        @pytest.mark.memprobe_limit("app.py:app", route="/", **SMALL)
        def test_default():
            pass

        @pytest.mark.memprobe_limit("app.py:app", route="/", inconclusive="pass", **SMALL)
        def test_asked_to_pass():
            pass

        @pytest.mark.memprobe_limit("app.py:app", route="/private", inconclusive="pass", **SMALL)
        def test_unauthorised():
            pass

        @pytest.mark.memprobe_limit("app.py:app", route="/private", headers={"Authorization": "Bearer x"},
                                    inconclusive="pass", **SMALL)
        def test_authorised():
            pass
    ''')
    result = pytester.runpytest("-p", "no:xdist", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines([
        "memprobe: / is inconclusive: could see * B/request or more traced; 300 requests in * s; to get "
        "evidence: requests=690 (more requests), or sensitivity=* (accept that leaks below * B/request go "
        "unseen), or inconclusive='pass'",
        "memprobe: /private answered only errors: every answer was an error (320 x 401): the code behind the "
        "route was not exercised*; to exercise it: hunt it with the request it needs, route= with method=, "
        "headers= or body=*",
    ])
    assert "no site or holder found" not in result.stdout.str()
