"""Routes side by side (``jobs``): one child per job, each route judged in its own child as it
would be in one, the routes back in the order asked, every child stopped. Real children,
real HTTP on 127.0.0.1."""
from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from memprobe.errors import TargetError, UsageError
from memprobe.hunt import HuntFailed, HuntResult, HuntSettings, hunt
from memprobe.hunt.parallel import idle_cores, resolve_jobs
from tests.conftest import SERVERS

#: Few requests, fast: a flat route is clean at the coarse sensitivity they can reach, not at 16 B.
SMALL = {"requests": 200, "rounds": 3, "warmup": 20, "sensitivity": 256}

APP = f"{SERVERS / 'side_app.py'}:app"


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.usefixtures("no_orphans")
def test_two_children_judge_their_routes_as_one_would_and_keep_the_order_asked() -> None:
    routes = ["/leak", "/", "/leak2", "/ok"]
    result = hunt(APP, routes=routes, jobs=2, **SMALL)

    assert [r.route for r in result.routes] == routes
    assert [r.verdict for r in result.routes] == ["leak", "clean", "leak", "clean"]
    for leak in (result.routes[0], result.routes[2]):
        assert leak.sites and leak.sites[0].file == str(SERVERS / "side_app.py")
        assert leak.holders[0].description.startswith("module side_app.py, global _kept (list, ")
    assert result.settings.jobs == 2 and result.to_dict()["settings"]["jobs"] == 2
    assert HuntResult.from_dict(result.to_dict()).settings.jobs == 2
    assert any("side by side in 2 children" in n for n in result.notes)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_one_job_is_one_child_and_says_nothing_of_jobs() -> None:
    result = hunt(APP, routes=["/leak", "/"], jobs=1, **SMALL)
    assert [r.verdict for r in result.routes] == ["leak", "clean"]
    assert result.settings.jobs == 1 and "jobs" not in result.to_dict()["settings"]
    assert not any("side by side" in n for n in result.notes)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.usefixtures("no_orphans")
def test_a_child_that_dies_fails_the_hunt_and_the_other_childs_route_is_kept() -> None:
    # The first child gets /die (and /ok, never reached); the second finishes / and stops.
    with pytest.raises(HuntFailed, match="died while hunting /die") as info:
        hunt(APP, routes=["/die", "/", "/ok"], jobs=2, **SMALL)
    assert isinstance(info.value.cause, TargetError)
    partial = info.value.partial
    assert "died" in partial.error
    assert [(r.route, r.verdict) for r in partial.routes] == [("/", "clean")]


def test_jobs_are_a_count_or_auto() -> None:
    assert resolve_jobs(3) == 3 and resolve_jobs("2") == 2
    assert 1 <= resolve_jobs("auto") <= (psutil.cpu_count() or 1)
    assert 1 <= idle_cores(0.05) <= (psutil.cpu_count() or 1)
    for bad in ("0", "many"):
        with pytest.raises(UsageError):
            resolve_jobs(bad)


def test_jobs_need_an_app_memprobe_starts_itself() -> None:
    with pytest.raises(UsageError, match="^jobs "):  # in the API's words: the CLI says --jobs
        hunt(cmd="python -m http.server {port}", jobs=2)


def test_settings_written_before_jobs_read_back_as_one_child() -> None:
    assert HuntSettings.from_dict({"requests": 10, "rounds": 2}).jobs == 1


def test_a_bad_job_count_is_a_usage_error_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="^jobs takes a count"):
        hunt(f"{tmp_path / 'missing.py'}:app", jobs="zero")
