"""The hammer: exact counts, every outcome classified, bounded memory, real HTTP on loopback."""
from __future__ import annotations

import json
import random
import urllib.request

import pytest

from memprobe.errors import UsageError
from memprobe.http.hammer import Hammer, hammer
from memprobe.http.histogram import LatencyHistogram
from memprobe.process.child import Child, free_port


def stats(child: Child) -> dict[str, int]:
    with urllib.request.urlopen(child.url.rstrip("/") + "/stats", timeout=5) as resp:
        return json.load(resp)


# --- the latency histogram (pure) ---------------------------------------------------------

def test_histogram_percentiles_are_within_one_percent_of_exact() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(-6, 1.0) for _ in range(20_000)]
    hist = LatencyHistogram()
    for v in values:
        hist.add(v)
    ordered = sorted(values)
    for q in (50, 90, 99):
        exact = ordered[int(len(ordered) * q / 100) - 1]
        assert hist.percentile(q) == pytest.approx(exact, rel=0.011)
    assert hist.max == max(values) and hist.min == min(values)
    assert hist.count == len(values)


def test_histogram_memory_does_not_grow_with_the_number_of_samples() -> None:
    hist = LatencyHistogram()
    for i in range(200_000):
        hist.add(0.0005 + (i % 1000) * 1e-6)
    buckets_after_200k = len(hist.counts)
    for i in range(200_000):
        hist.add(0.0005 + (i % 1000) * 1e-6)
    assert len(hist.counts) == buckets_after_200k < 200


def test_histogram_merge_equals_adding_everything_to_one() -> None:
    a, b, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for i in range(1, 500):
        (a if i % 2 else b).add(i * 1e-4)
        both.add(i * 1e-4)
    a.merge(b)
    assert a.counts == both.counts and a.count == both.count
    assert a.percentile(90) == both.percentile(90)


# --- against a real server ----------------------------------------------------------------

@pytest.mark.slow
def test_sends_exactly_n_requests_on_c_reused_connections(behaviours: Child) -> None:
    result = hammer(behaviours.url, 537, concurrency=7, timeout=5)
    assert (result.sent, result.ok, result.failed) == (537, 537, 0)
    assert result.status_counts == {"200": 537}
    assert result.connections_opened == 7
    assert result.latency.count == 537
    assert result.throughput_rps > 0 and result.duration_s > 0


@pytest.mark.slow
def test_close_mode_opens_a_connection_per_request(behaviours: Child) -> None:
    result = hammer(behaviours.url, 60, concurrency=3, mode="close", timeout=5)
    assert result.ok == 60 and result.connections_opened == 60


@pytest.mark.slow
def test_burst_mode_starts_all_requests_at_once(behaviours: Child) -> None:
    result = hammer(behaviours.url, 80, mode="burst", timeout=5)
    assert result.concurrency == 80 and result.sent == 80 and result.connections_opened == 80


@pytest.mark.slow
@pytest.mark.parametrize("path", ["/chunked", "/close"])
def test_reads_chunked_and_close_delimited_bodies(behaviours: Child, path: str) -> None:
    result = hammer(behaviours.url.rstrip("/") + path, 40, concurrency=4, timeout=5)
    assert result.ok == 40 and result.failed == 0, result.to_dict()


@pytest.mark.slow
def test_counts_timeouts_and_does_not_wait_for_slow_answers(behaviours: Child) -> None:
    result = hammer(behaviours.url.rstrip("/") + "/slow", 4, concurrency=4, timeout=0.2)
    assert result.timeouts == 4 and result.failed == 4 and result.ok == 0
    assert result.duration_s < 2.0  # the server takes 2 s; the client gave up at 0.2 s


@pytest.mark.slow
def test_error_statuses_are_failures_in_the_status_histogram(behaviours: Child) -> None:
    result = hammer(behaviours.url.rstrip("/") + "/error", 25, concurrency=5, timeout=5)
    assert result.status_counts == {"500": 25}
    assert result.failed == 25 and result.ok == 0


@pytest.mark.slow
def test_n_in_the_path_makes_every_request_different(behaviours: Child) -> None:
    hammer(behaviours.url.rstrip("/") + "/item/{n}", 150, concurrency=5, timeout=5)
    assert stats(behaviours)["distinct_items"] == 150


def test_refused_connections_are_counted_not_raised() -> None:
    result = hammer(f"http://127.0.0.1:{free_port()}/", 10, concurrency=2, timeout=1)
    assert result.sent == 10 and result.failed == 10
    assert result.errors == {"refused": 10}


@pytest.mark.slow
def test_a_duration_runs_for_that_long(behaviours: Child) -> None:
    result = Hammer(behaviours.url, duration=0.5, concurrency=2).run()
    assert result.sent > 0 and result.failed == 0
    assert 0.5 <= result.duration_s


@pytest.mark.parametrize("kwargs, message", [
    ({"n": 0}, "positive"),
    ({"n": -5}, "positive"),
    ({"n": 10, "timeout": -1}, "timeout"),
    ({"n": 10, "concurrency": 0}, "concurrency"),
    ({"n": 10, "mode": "storm"}, "mode"),
])
def test_bad_arguments_are_usage_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Hammer("http://127.0.0.1:1/", **kwargs)


def test_only_http_urls_are_accepted() -> None:
    with pytest.raises(UsageError, match="http://"):
        Hammer("https://example.invalid/", 1)


@pytest.mark.slow
def test_first_shifts_n_so_later_rounds_ask_for_new_keys(behaviours: Child) -> None:
    url = behaviours.url.rstrip("/") + "/item/{n}"
    hammer(url, 100, concurrency=4, timeout=5)
    hammer(url, 100, concurrency=4, timeout=5, first=100)
    assert stats(behaviours)["distinct_items"] == 200
