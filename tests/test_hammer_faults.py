"""``memprobe hammer`` given a bad URL, header or concurrency: one line, the documented code."""
from __future__ import annotations

import pytest

from memprobe.http.hammer import Hammer
from memprobe.process.child import Child
from tests.conftest import run_cli


def test_a_port_that_is_not_a_number_is_one_line_and_exit_2() -> None:
    code, _, err = run_cli("hammer", "http://127.0.0.1:abc/", "-n", "10", "--no-save")
    assert code == 2, err
    assert err.startswith("memprobe: ") and "port" in err
    assert len(err.strip().splitlines()) == 1


def test_a_header_that_is_not_latin_1_is_one_line_and_exit_2() -> None:
    code, _, err = run_cli("hammer", "http://127.0.0.1:1/", "-n", "10", "-H", "X-City: Łódź", "--no-save")
    assert code == 2, err
    assert "latin-1" in err and len(err.strip().splitlines()) == 1


def test_a_latin_1_header_is_sent_as_latin_1_obs_text() -> None:
    hammer = Hammer("http://127.0.0.1:1/", 1, headers={"X-Name": "Zoë"})
    assert b"X-Name: Zo\xeb\r\n" in hammer._request("/")


@pytest.mark.timeout(120)
def test_a_burst_above_the_soft_open_file_limit_raises_it(behaviours: Child) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(soft, 256)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        result = Hammer(behaviours.url, 400, mode="burst", timeout=30).run()
        assert result.sent == 400 and "too-many-open-files" not in result.errors
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
