"""Attribution on apps nobody here wrote (issue 28, points 3-5): the planted leak's own line
first among the sites, a Python leak's kind and holder whatever its traced slope's noise, and
a one-off step (one large block allocated once) not read as a cache filling.

Real children, real HTTP on 127.0.0.1, real packages from PyPI: httpbin (Flask) with a list that
keeps each request's arguments, pypiserver (its own Bottle) untouched and with a list that keeps
a tuple of two request strings per request. The pieces are checked on their own too.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from memprobe.agent.attribution import group_sites, held_to, kept_per_request, what_stays
from memprobe.hunt import hunt
from memprobe.hunt.model import held_in_python, judge, one_off_step
from memprobe.results.hunt import Fit, Holder, Judgement, Reading
from memprobe.target.usercode import is_console_script, is_user_file

SERVERS = Path(__file__).parent / "servers"
QUICK: dict[str, Any] = {"sensitivity": 64.0, "warmup": 300}


def _user_sites(route: Any) -> list[Any]:
    return [s for s in route.sites if s.user]


@pytest.mark.timeout(300)
def test_httpbin_planted_leak_is_the_first_site_not_werkzeugs_url_cache() -> None:
    pytest.importorskip("httpbin")
    result = hunt(f"{SERVERS / 'httpbin_leak.py'}:app", routes=["/anything?id={n}"], **QUICK)
    route = result.routes[0]
    assert (route.verdict, route.kind) == ("leak", "python"), route.judgement.reason
    top = route.sites[0]
    assert (os.path.basename(top.file), top.code) == (
        "httpbin_leak.py", "SEEN.append(request.args.to_dict())  # the planted leak"), route.sites
    # what the line keeps, not what the round churned: a dict of one short str per request
    assert 100 <= top.bytes_per_request <= 400, top
    assert "global SEEN" in route.holders[0].description
    assert "dict" in [t["type"] for t in route.types], route.types


@pytest.mark.timeout(300)
def test_a_tuple_leak_in_a_bottle_app_is_python_with_its_holder() -> None:
    pytest.importorskip("pypiserver")
    result = hunt(f"{SERVERS / 'pypiserver_leak.py'}:app", routes=["/simple/?id={n}"], **QUICK)
    route = result.routes[0]
    assert (route.verdict, route.kind) == ("leak", "python"), route.judgement.reason
    assert _user_sites(route)[0].code.startswith("SEEN.append((request.path"), route.sites
    assert route.sites[0].user, route.sites
    assert "global SEEN" in route.holders[0].description, route.holders


@pytest.mark.timeout(300)
def test_pypiservers_first_route_is_not_a_cache_filling() -> None:
    pytest.importorskip("pypiserver")
    result = hunt(f"{SERVERS / 'pypiserver_app.py'}:app", routes=["/simple/", "/packages/"], **QUICK)
    for route in result.routes:
        assert route.verdict == "clean", (route.route, route.judgement.reason)
    # the interpreter's table resize lands on whichever route runs first, when it does
    stepped = [r for r in result.routes if "one-off step" in r.judgement.reason]
    for route in stepped:
        assert "allocated once" in route.judgement.reason


# The pieces


def test_a_line_that_churned_over_the_measured_rounds_keeps_nothing_of_the_round() -> None:
    leak, churn = ("app.py", 10), ("parse.py", 504)
    stack = [("server.py", 1), ("app.py", 20)]
    diffs = [(stack + [leak], 100 * 60, 100, leak),          # the leak: 60 B a request
             (stack + [churn], 100 * 140, 300, churn)]       # an lru_cache evicting untraced
    kept = kept_per_request({leak: 1000, churn: 9000}, {leak: 1000 + 60 * 5000, churn: 9000}, 5000)
    assert kept == {leak: 60.0}
    sites = group_sites([d[:3] for d in what_stays(diffs, kept, 100)], 100)
    assert [(s.file, s.line) for s in sites] == [leak]
    assert sites[0].bytes_per_request == 60.0


def test_a_line_shared_by_what_stays_and_what_churns_is_held_to_what_it_kept() -> None:
    line = ("datastructures.py", 300)
    a = [("app.py", 5), line]
    b = [("app.py", 9), line]
    held = what_stays([(a, 3000, 30, line), (b, 1000, 10, line)], {line: 20.0}, 100)
    assert [(size, count) for _, size, count, _ in held] == [(1500, 15), (500, 5)]


def test_sites_rank_the_users_lines_first_then_by_growth() -> None:
    diffs = [([("lib/site-packages/x.py", 1)], 90_000, 10),
             ([("app.py", 1)], 2_000, 10), ([("app.py", 2)], 5_000, 10)]
    sites = group_sites(diffs, 10)
    assert [(s.file, s.line) for s in sites][:2] == [("app.py", 2), ("app.py", 1)]


def test_types_of_a_short_round_are_held_to_what_the_rounds_kept() -> None:
    types = [{"type": "str", "count_before": 100, "count": 460, "count_per_request": 40.0,
              "bytes_before": 5000, "bytes": 41_000, "bytes_per_request": 4000.0}]
    assert held_to(types, 0.0) == []
    assert held_to(types, 36_000.0) == types
    assert held_to(types, 18_000.0)[0]["bytes_per_request"] == 2000.0


def test_a_virtualenvs_console_script_is_not_the_users_code(tmp_path: Path) -> None:
    (tmp_path / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (tmp_path / "bin").mkdir()
    script = tmp_path / "bin" / "gunicorn"
    script.write_text("#!/venv/bin/python\nimport sys\nfrom gunicorn.app.wsgiapp import run\n")
    app = tmp_path / "app.py"
    app.write_text("x = 1\n")
    assert not is_user_file(str(script)) and is_user_file(str(app))
    # this interpreter's own scripts directory, and a pip wrapper anywhere
    assert not is_user_file(os.path.join(os.path.dirname(sys.executable), "gunicorn"))
    wrapper = tmp_path / "tool"
    wrapper.write_text("#!/usr/bin/python3\nimport sys\nfrom tool import main\nif __name__ == '__main__':\n"
                       "    sys.argv[0] = sys.argv[0].removesuffix('.exe')\n    sys.exit(main())\n")
    assert is_console_script(str(wrapper)) and not is_user_file(str(wrapper))


def _series(traced: list[int], blocks: list[int], step: int = 300) -> list[Reading]:
    return [Reading(i * step, t, 20_000_000 + t, b) for i, (t, b) in enumerate(zip(traced, blocks))]


def test_one_large_block_allocated_once_is_a_one_off_step_not_a_cache() -> None:
    flat = [72_000, 71_400, 71_500, 71_600, 71_500, 71_700, 71_600]
    stepped = flat[:4] + [t + 961_000 for t in flat[4:]]
    readings = _series(stepped + [1_032_900] * 6, [141_482] * 13)
    step = one_off_step(readings)
    assert step is not None and step.blocks == 0 and step.end == 1200
    judgement = judge(readings, last_share=0.2)
    assert judgement.verdict == "clean", judgement.reason
    assert judgement.reason.startswith("a one-off step, not growth per request: one block of 938")


def test_a_cache_filling_in_one_round_is_not_a_one_off_step() -> None:
    # 200 KiB in 2,000 new blocks: a thousand entries, not a table resized
    traced = [70_000] * 4 + [275_000] * 9
    blocks = [140_000] * 4 + [142_000] * 9
    assert one_off_step(_series(traced, blocks)) is None


def test_a_leak_keeps_its_slope_once_a_step_in_it_is_taken_out() -> None:
    traced = [70_000 + 200 * 300 * i + (961_000 if i >= 7 else 0) for i in range(13)]
    blocks = [140_000 + 2 * 300 * i for i in range(13)]
    judgement = judge(_series(traced, blocks), last_share=0.2)
    assert (judgement.verdict, judgement.kind) == ("leak", "python")
    assert judgement.traced is not None and abs(judgement.traced.slope - 200) < 1


def test_a_native_verdict_with_a_python_container_growing_per_request_is_python() -> None:
    noisy = Fit(330.0, 110.0, 300.0, 200.0, 900_000, "bounded")
    uss = Fit(490.0, 30.0, 480.0, 480.0, 1_400_000, "leak")
    native = Judgement("leak", "native", noisy, uss, "USS grows")
    holder = Holder("module app.py, global SEEN (list, 3,000 entries)", ["module app.py", "global SEEN"],
                    "list", 10, 3000, 1.0)
    assert held_in_python(native, [holder]).kind == "python"
    assert held_in_python(native, []).kind == "native"
    flat = Judgement("leak", "native", Fit(0.5, 0.5, 0.0, 0.0, 100, "clean"), uss, "USS grows")
    assert held_in_python(flat, [holder]).kind == "native"
