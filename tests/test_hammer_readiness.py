"""``memprobe hammer URL -n N``: the server sees exactly N requests, whichever engine sends them.

Whether something listens is a TCP connect to the URL's host and port, never an HTTP request:
a server counting its requests sees N, not N + 1, and a POST endpoint never gets a GET.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from memprobe.process.child import LOOPBACK, Child, free_port
from tests.conftest import REPO, counted

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

needs_locust = pytest.mark.skipif(importlib.util.find_spec("locust") is None, reason="needs memprobe[locust]")




def memprobe(*argv: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "memprobe", *argv, "--no-save", "-q"], env=env, text=True,
                          capture_output=True, timeout=240)


ENGINES = [pytest.param([], id="native"),
           pytest.param(["--engine", "locust", "--locust-workers", "1"], id="locust", marks=needs_locust)]


@pytest.mark.parametrize("engine", ENGINES)
def test_the_server_counts_exactly_n_requests(counting_server: Child, engine: list[str]) -> None:
    run = memprobe("hammer", f"http://{LOOPBACK}:{counting_server.port}/items", "-n", "40", "-c", "2", *engine)
    assert run.returncode == 0, run.stderr
    seen = counted(counting_server)
    assert seen["by_method"] == {"GET": 40}
    assert seen["by_agent"] == {"memprobe": 40}


@pytest.mark.parametrize("engine", ENGINES)
def test_a_post_endpoint_gets_only_the_posts(counting_server: Child, engine: list[str]) -> None:
    run = memprobe("hammer", f"http://{LOOPBACK}:{counting_server.port}/orders", "-n", "25", "-c", "2",
                   "-X", "POST", "--body", '{"qty": 1}', "-H", "Content-Type: application/json", *engine)
    assert run.returncode == 0, run.stderr
    assert counted(counting_server)["by_method"] == {"POST": 25}


def test_nothing_listening_is_still_one_line_and_exit_3() -> None:
    port = free_port()
    url = f"http://{LOOPBACK}:{port}/orders"
    run = memprobe("hammer", url, "-n", "10", "-X", "POST")
    assert run.returncode == 3
    assert run.stderr.strip().splitlines() == [f"memprobe: nothing listens at {LOOPBACK}:{port} ({url})"]
