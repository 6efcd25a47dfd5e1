"""Memory readings from outside: real processes, bounded series, settling."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from memprobe.errors import TargetError
from memprobe.process.memory import (
    MemoryReading,
    Sampler,
    Series,
    SettleWatch,
    read_memory,
    read_tree,
    settle,
)


def test_a_reading_of_a_live_process_has_every_field_in_bytes() -> None:
    r = read_memory(os.getpid())
    assert r.rss > 0 and r.vms >= r.rss
    assert r.uss is not None and 0 < r.uss <= r.rss
    assert r.pss is not None and r.uss <= r.pss <= r.rss
    assert r.swap is not None


def test_the_cheap_reading_skips_uss_pss_and_swap() -> None:
    r = read_memory(os.getpid(), full=False)
    assert (r.uss, r.pss, r.swap) == (None, None, None) and r.rss > 0


def test_reading_a_process_that_is_gone_is_a_target_error() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with pytest.raises(TargetError, match=f"process {proc.pid} is gone"):
        read_memory(proc.pid)


def test_delta_is_later_minus_earlier_and_none_where_unknown() -> None:
    a = MemoryReading(rss=100, vms=1000, uss=50, pss=None, swap=0)
    b = MemoryReading(rss=130, vms=900, uss=80, pss=70, swap=0)
    assert a.delta(b) == {"rss": 30, "vms": -100, "uss": 30, "pss": None, "swap": 0}


def test_a_tree_reading_sums_the_process_and_its_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        tree = read_tree(os.getpid())
        assert child.pid in tree.processes and os.getpid() in tree.processes
        assert tree.total.rss == sum(r.rss for r in tree.processes.values())
        assert set(tree.to_dict()["processes"]) >= {str(child.pid), str(os.getpid())}
    finally:
        child.kill()
        child.wait()


def test_a_series_keeps_its_memory_bounded_by_halving_and_doubling_its_stride() -> None:
    series = Series(capacity=64)
    for i in range(10_000):
        series.add(float(i), i, 1000 + i, None)
    assert len(series.t) < 64
    assert series.stride > 1
    assert series.requests == sorted(series.requests)  # still in order, first point kept
    assert series.requests[0] == 0


def test_the_sampler_records_requests_done_beside_memory() -> None:
    done = iter(range(1_000_000))
    with Sampler(os.getpid(), interval=0.01, progress=lambda: next(done)) as sampler:
        while len(sampler.series.t) < 5:
            pass
    data = sampler.series.to_dict()
    assert data["requests"][:5] == [0, 1, 2, 3, 4]
    assert all(r > 0 for r in data["rss"]) and data["t_s"][0] == 0.0


def test_settle_returns_once_memory_is_still() -> None:
    waited = settle(os.getpid(), max_s=10.0, quiet_s=0.1)
    assert waited < 10.0


def test_a_sampler_whose_process_is_gone_says_it_died_and_why() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    with Sampler(proc.pid, interval=0.01) as sampler:
        while len(sampler.series.t) < 2:
            pass
        proc.kill()
        proc.wait()
        sampler.join(timeout=10)
    assert isinstance(sampler.error, TargetError)
    assert sampler.died is not None and f"process {proc.pid} is gone" in sampler.died
    assert "points" in sampler.died


def test_any_error_in_the_sampler_thread_is_kept_not_lost() -> None:
    def progress() -> int:
        raise ZeroDivisionError("a bug in the caller's progress")

    with Sampler(os.getpid(), interval=0.01, progress=progress) as sampler:
        sampler.join(timeout=10)
    assert isinstance(sampler.error, ZeroDivisionError)
    assert sampler.died is not None and "ZeroDivisionError: a bug in the caller's progress" in sampler.died


def test_a_sampler_that_ran_to_the_end_has_no_error() -> None:
    with Sampler(os.getpid(), interval=0.01) as sampler:
        while len(sampler.series.t) < 2:
            pass
    assert sampler.error is None and sampler.died is None


def test_sampling_a_process_that_is_already_gone_is_a_target_error() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with pytest.raises(TargetError, match="is gone"):
        Sampler(proc.pid)


GROWS_UNTIL_TOLD = """
import os, sys, time
held = []
while not os.path.exists(sys.argv[1]):
    held.append(bytearray(256 * 1024))
    time.sleep(0.01)
print("still", flush=True)
sys.stdin.read()
"""


@pytest.fixture()
def grows_until_told(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    flag = tmp_path / "stop-growing"
    proc = subprocess.Popen([sys.executable, "-c", GROWS_UNTIL_TOLD, str(flag)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        yield proc, flag
    finally:
        proc.kill()
        proc.wait()


def test_a_settle_watch_waits_out_growth_then_returns_once_memory_is_still(
        grows_until_told: tuple[subprocess.Popen[str], Path]) -> None:
    proc, flag = grows_until_told
    with SettleWatch(proc.pid, quiet_s=0.1, poll_s=0.01) as watch:
        assert watch.wait(max_s=0.3) >= 0.3  # still growing: only the cap ends the wait
        flag.touch()
        assert proc.stdout is not None and proc.stdout.readline() == "still\n"
        watch.restart()
        waited = watch.wait(max_s=60.0)
    assert 0.1 <= waited < 60.0  # the quiet time is counted from the restart, never from before it


def test_a_settle_watch_counts_quiet_time_spent_elsewhere() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        with SettleWatch(proc.pid, quiet_s=0.05, poll_s=0.01) as watch:
            threading.Event().wait(0.5)  # the caller busy elsewhere while the watch reads on
            assert 0.5 <= watch.wait(max_s=60.0) < 60.0  # settled meanwhile: no new quiet time
    finally:
        proc.kill()
        proc.wait()


def test_a_settle_watch_of_a_process_that_is_gone_raises_target_error() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    with SettleWatch(proc.pid, poll_s=0.01) as watch:
        proc.kill()
        proc.wait()
        with pytest.raises(TargetError, match=f"process {proc.pid} is gone"):
            watch.wait(max_s=60.0)


def test_leaving_a_settle_watch_ends_a_wait_in_another_thread(
        grows_until_told: tuple[subprocess.Popen[str], Path]) -> None:
    proc, _ = grows_until_told
    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            watch.wait(max_s=600.0)
        except TargetError as err:
            errors.append(err)

    with SettleWatch(proc.pid, poll_s=0.01) as watch:
        thread = threading.Thread(target=waiter)
        thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert errors and "stopped watching" in str(errors[0])
