"""Memory guards for the example Flask apps, as a project would write them.

    pytest examples/pytest_example -v
    pytest examples/pytest_example -n 2 --memprobe-json reports/pytest-memory.json

The marker measures after the test body passes; the fixture gives the same measurements to a
test that wants to assert on them itself. Targets are found from this file's directory.
"""
from __future__ import annotations

import pytest

CLEAN = "../clean_flask/app.py:app"
LEAKY = "../leaky_flask/app.py:app"


@pytest.mark.memprobe_limit(CLEAN, routes=["/", "/history", "/session", "/render", "/audit"],
                            requests=300, rounds=3, warmup=300, per_request="16 B",
                            in_process=True)
def test_no_route_of_the_clean_app_keeps_memory_per_request() -> None:
    """Fast, in the test process: the Python heap of every route stays flat."""


@pytest.mark.memprobe_limit(CLEAN, route="/history", requests=500, rounds=3, warmup=300,
                            leak=False)
def test_the_clean_app_served_for_real_does_not_leak_on_history() -> None:
    """In a child process over real HTTP, as a deployment sees it: no leak verdict."""


@pytest.mark.memprobe_limit(LEAKY, route="/session", requests=300, rounds=3, warmup=100,
                            leak=True, in_process=True)
def test_the_leaky_session_route_is_still_caught() -> None:
    """A guard on the guard: the known leak must keep being found."""


def test_the_leaky_history_route_names_its_line_and_its_holder(memprobe) -> None:
    result = memprobe.hunt(LEAKY, routes=["/history"], requests=300, rounds=3, warmup=100,
                           in_process=True)

    route = result.routes[0]
    assert route.verdict == "leak", result.summary()
    assert any(site.code.startswith("_history.append(") for site in route.sites)
    assert "global _history" in route.holders[0].description


def test_a_served_app_answers_and_its_memory_can_be_read(memprobe) -> None:
    server = memprobe.serve(CLEAN)
    load = memprobe.hammer(server.url + "/", 200, concurrency=4)

    assert load.ok == 200
    assert server.memory().uss > 0
