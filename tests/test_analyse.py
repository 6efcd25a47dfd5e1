"""The growth model and the sites grouping, on fake series (no processes)."""
from __future__ import annotations

import random

import pytest

from memprobe.agent.attribution import group_sites
from memprobe.hunt.model import above_peak, judge, least_squares, shared_growth
from memprobe.results.hunt import Reading, WorkerResult
from memprobe.target.usercode import is_user_file

ROUND = 2000
STDLIB = random.__file__
SITE_PACKAGES = pytest.__file__


def series(traced_per_round: list[float], uss_per_round: list[float] | None = None,
           traced0: int = 1_000_000, uss0: int = 30_000_000) -> list[Reading]:
    """A baseline then one reading per round, from per-round increments in bytes."""
    uss_per_round = uss_per_round or [0.0] * len(traced_per_round)
    out = [Reading(0, traced0, uss0)]
    t, u = traced0, uss0
    for i, (dt, du) in enumerate(zip(traced_per_round, uss_per_round), 1):
        t, u = t + int(dt), u + int(du)
        out.append(Reading(i * ROUND, t, u))
    return out


def test_least_squares_recovers_a_line_and_its_error_is_zero_on_a_perfect_fit() -> None:
    slope, error = least_squares([0, 1, 2, 3], [5, 7, 9, 11])
    assert slope == pytest.approx(2.0)
    assert error == pytest.approx(0.0)


def test_above_peak_counts_only_growth_past_every_earlier_value() -> None:
    assert above_peak([10, 15, 12, 16, 16]) == [5, 0, 1, 0]


def test_one_small_int_per_request_is_a_python_leak() -> None:
    j = judge(series([36 * ROUND] * 5, [70 * ROUND] * 5))
    assert (j.verdict, j.kind) == ("leak", "python")
    assert j.traced is not None and j.traced.slope == pytest.approx(36, abs=0.5)


def test_a_flat_heap_with_page_noise_in_uss_is_clean() -> None:
    rng = random.Random(3)
    noise = [rng.choice([-8192, 0, 4096, 12288]) for _ in range(5)]
    j = judge(series([rng.randint(-300, 300) for _ in range(5)], noise))
    assert (j.verdict, j.kind) == ("clean", None)


def test_growth_that_stops_after_the_first_rounds_is_bounded() -> None:
    j = judge(series([300_000, 150_000, 0, 0, 0], [400_000, 200_000, 0, 0, 0]))
    assert j.verdict == "bounded"


def test_a_cache_that_evicts_and_refills_below_its_peak_is_bounded_not_a_leak() -> None:
    j = judge(series([400_000, -50_000, 40_000, -30_000, 30_000]))
    assert j.verdict == "bounded"


def test_uss_growing_while_the_traced_heap_is_flat_is_a_native_leak_with_both_slopes() -> None:
    j = judge(series([0] * 5, [1024 * ROUND] * 5))
    assert (j.verdict, j.kind) == ("leak", "native")
    assert j.uss is not None and j.uss.slope == pytest.approx(1024, rel=0.01)
    assert j.traced is not None and j.traced.slope == pytest.approx(0, abs=0.1)


def test_uss_well_above_a_growing_traced_heap_is_a_mixed_leak() -> None:
    j = judge(series([50 * ROUND] * 5, [1200 * ROUND] * 5))
    assert (j.verdict, j.kind) == ("leak", "mixed")


def test_a_python_leak_costing_twice_its_size_in_uss_stays_python() -> None:
    j = judge(series([100 * ROUND] * 5, [210 * ROUND] * 5))
    assert j.kind == "python"


def test_a_tiny_steady_creep_below_the_floor_is_clean() -> None:
    j = judge(series([2 * ROUND] * 5))
    assert j.verdict == "clean"


def test_a_single_jump_in_the_middle_is_not_a_leak() -> None:
    j = judge(series([0, 0, 200_000, 0, 0]))
    assert j.verdict != "leak"


def test_uss_arena_steps_below_the_uss_bar_are_clean() -> None:
    j = judge(series([0] * 5, [128 * 1024, 0, 0, 64 * 1024, 0]))
    assert j.verdict == "clean"


def test_judge_needs_a_baseline_and_two_rounds() -> None:
    with pytest.raises(ValueError):
        judge(series([1000]))


def test_missing_uss_is_judged_on_the_traced_heap_alone() -> None:
    readings = [Reading(r.requests, r.traced, None) for r in series([40 * ROUND] * 5)]
    j = judge(readings)
    assert (j.verdict, j.kind, j.uss) == ("leak", "python", None)


def test_user_files_are_neither_stdlib_nor_installed_packages_nor_memprobe() -> None:
    assert is_user_file(__file__)
    assert not is_user_file(STDLIB)
    assert not is_user_file(SITE_PACKAGES)
    assert not is_user_file(judge.__code__.co_filename)
    assert not is_user_file("<frozen importlib._bootstrap>")


def test_sites_are_grouped_by_the_users_frame_nearest_the_allocation() -> None:
    app = "/srv/app/views.py"
    diffs = [
        ([(STDLIB, 10), (app, 5), (app, 42), (STDLIB, 99)], 50_000, 1000),
        ([(STDLIB, 11), (app, 5), (app, 42), (SITE_PACKAGES, 7)], 30_000, 1000),
        ([(STDLIB, 10), (app, 7)], 4_000, 10),
    ]
    sites = group_sites(diffs, requests=1000)
    assert [(s.file, s.line) for s in sites] == [(app, 42), (app, 7)]
    top = sites[0]
    assert top.size_diff == 80_000 and top.bytes_per_request == pytest.approx(80)
    assert top.count_per_request == pytest.approx(2)
    assert [f["user"] for f in top.traceback] == [False, False, True, False]


def test_sites_without_user_code_are_grouped_by_their_most_recent_frame() -> None:
    sites = group_sites([([(STDLIB, 1), (SITE_PACKAGES, 9)], 10_000, 5)], requests=100)
    assert (sites[0].file, sites[0].line, sites[0].user) == (SITE_PACKAGES, 9, False)


def test_sites_in_the_users_code_come_before_bigger_framework_sites() -> None:
    app = "/srv/app/a.py"
    diffs = [([(SITE_PACKAGES, 1)], 90_000, 10), ([(app, 2)], 5_000, 10)]
    assert [(s.line, s.user) for s in group_sites(diffs, requests=10)] == [(2, True), (1, False)]


def test_small_sites_are_dropped_and_the_rest_sorted_biggest_first() -> None:
    app = "/srv/app/a.py"
    diffs = [([(app, 1)], 2_000, 1), ([(app, 2)], 500, 1), ([(app, 3)], 90_000, 1)]
    assert [s.line for s in group_sites(diffs, requests=10)] == [3, 1]


def test_uss_lagging_behind_a_python_heap_that_stopped_growing_is_bounded() -> None:
    j = judge(series([300_000, 300_000, 40_000, 0, 0], [200_000, 400_000, 300_000, 150_000, 150_000]))
    assert j.verdict == "bounded"


def test_uss_still_growing_fast_after_the_python_heap_stopped_is_a_native_leak() -> None:
    j = judge(series([300_000, 200_000, 0, 0, 0], [2_000_000] * 5))
    assert (j.verdict, j.kind) == ("leak", "native")
    assert "after the Python heap stopped" in j.reason


def test_a_rate_compares_like_a_number_and_keeps_its_error() -> None:
    from memprobe.results.hunt import Rate, rates_json

    rate = Rate(36.31, 0.27)
    assert rate < 64 and rate > 36 and rate.error == 0.27
    assert rates_json({"traced": rate, "uss": None}) == {"traced": {"value": 36.31, "error": 0.27}, "uss": None}


def process(role: str, pid: int, uss_per_round: list[float], requests_per_round: int = ROUND) -> WorkerResult:
    """One process of a server judged on its own series (a worker on the requests it served)."""
    readings = [Reading(0, 1_000_000, 30_000_000)]
    u = 30_000_000
    for i, du in enumerate(uss_per_round, 1):
        u += int(du)
        readings.append(Reading(i * requests_per_round, 1_000_000, u))
    return WorkerResult(judgement=judge(readings), readings=readings, sites=[], types=[], holders=[],
                        pid=pid, role=role, requests=0 if role == "master" else requests_per_round * len(uss_per_round))


def two_workers(uss_per_round: list[float], other: list[float] | None = None) -> list[WorkerResult]:
    """A master read from outside (flat) and two workers sharing the server's requests."""
    return [process("master", 1, [0] * 5), process("worker", 2, uss_per_round, ROUND // 2),
            process("worker", 3, other if other is not None else uss_per_round, ROUND // 2)]


def test_server_pss_growth_that_no_process_holds_privately_is_shared_pages_and_clean() -> None:
    readings = series([0] * 5, [550 * ROUND] * 5)
    server = judge(readings, memory="pss")
    assert (server.verdict, server.kind) == ("leak", "native")
    j = shared_growth(server, two_workers([2048, 0, 4096, 0, 2048], [0, 4096, 0, 0, 4096]), readings)
    assert (j.verdict, j.kind) == ("clean", None)
    assert j.uss is server.uss
    assert "PSS +550.0" in j.reason and "pages they share" in j.reason


def test_server_pss_that_grew_early_and_stopped_while_the_workers_did_not_is_clean() -> None:
    readings = series([0] * 5, [1_000_000, 600_000, 0, 20_000, 0])
    server = judge(readings, memory="pss")
    assert (server.verdict, server.kind) == ("bounded", "native")
    j = shared_growth(server, two_workers([60_000, 40_000, 0, 8_000, 0]), readings)
    assert j.verdict == "clean"


def test_private_growth_too_small_for_each_worker_alone_keeps_the_servers_native_leak() -> None:
    # 80 B per request each worker served: below one worker's bar in total, not below the server's.
    readings = series([0] * 5, [80 * ROUND] * 5)
    server = judge(readings, memory="pss")
    assert server.verdict == "leak"
    procs = two_workers([80 * ROUND // 2] * 5)
    assert all(p.verdict == "clean" for p in procs)
    assert shared_growth(server, procs, readings) is server


def test_a_worker_that_leaks_on_its_own_keeps_the_servers_verdict() -> None:
    readings = series([0] * 5, [1024 * ROUND] * 5)
    server = judge(readings, memory="pss")
    procs = two_workers([2048 * ROUND // 2] * 5, [0] * 5)
    assert procs[1].verdict == "leak"
    assert shared_growth(server, procs, readings) is server


def test_a_process_that_missed_a_reading_or_a_python_leak_leaves_the_verdict_as_judged() -> None:
    readings = series([0] * 5, [1024 * ROUND] * 5)
    native = judge(readings, memory="pss")
    died = two_workers([0] * 5)
    died[2] = process("worker", 3, [0] * 3, ROUND // 2)
    assert shared_growth(native, died, readings) is native
    assert shared_growth(native, [], readings) is native
    python_readings = series([40 * ROUND] * 5, [80 * ROUND] * 5)
    python = judge(python_readings, memory="pss")
    assert shared_growth(python, two_workers([0] * 5), python_readings) is python


def test_a_leak_seen_in_blocks_only_is_python_however_much_uss_each_block_costs() -> None:
    # bytes(300) kept per request: one block, ~350 B of USS; a block's bytes are not read, so
    # USS "well above" the Python heap cannot be told from the counts.
    readings = [Reading(i * ROUND, None, 30_000_000 + i * 354 * ROUND, 50_000 + i * ROUND) for i in range(6)]
    j = judge(readings)
    assert (j.verdict, j.kind) == ("leak", "python")
    assert j.traced is None and j.blocks is not None
