"""The hammer at the edges of what it accepts: latin-1 headers, bursts above the soft open-file
limit. The bad inputs themselves (a port that is not a number, a header latin-1 cannot carry,
a limit that cannot be raised) are cases of tests/test_faults.py."""
from __future__ import annotations

import pytest

from memprobe.http.hammer import Hammer
from memprobe.process.child import Child


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
        # The server's backlog leaves some connections unanswered until their timeout: a short one.
        result = Hammer(behaviours.url, 400, mode="burst", timeout=3).run()
        assert result.sent == 400 and "too-many-open-files" not in result.errors
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
