"""memprobe watch's statistics, on simulated workers whose truth is known: a heap that grows a
fixed number of blocks per request of one route only, plus the noise of objects in flight."""
from __future__ import annotations

import random
import tracemalloc
from collections.abc import Iterator

import pytest

from memprobe.results.watch import Window
from memprobe.watch.analysis import MIN_REQUESTS, Analysis
from memprobe.watch.series import EPOCHS_KEPT
from memprobe.watch.stats import Moments, Running, regress

RATES = {"GET /a": 10.0, "GET /b": 30.0, "POST /c": 5.0}


def simulate(seconds: int, *, workers: int = 2, rates: dict[str, float] = RATES,
             leak: dict[str, float] | None = None, noise: float = 150.0, overlap: bool = True,
             seed: int = 1, background: float = 0.0, heap_bytes: dict[str, float] | None = None,
             stop_after: int | None = None, pids: Iterator[int] | None = None,
             respawn_every: int | None = None) -> Iterator[Window]:
    """One-second windows of ``workers`` workers: each route's requests Poisson-like around its
    rate, the heap growing ``leak[route]`` blocks per request of that route (until
    ``stop_after`` seconds, when the growth stops: a cache full), ``background`` blocks a
    second, and readings scattered by ``noise`` blocks. With ``overlap`` False the workers
    serve one request at a time and report each request's own delta."""
    rng = random.Random(seed)
    leak = leak or {}
    pid_source = pids or iter(range(1000, 100000))
    level = {next(pid_source): 50_000.0 for _ in range(workers)}
    native = dict.fromkeys(level, 10_000_000.0)
    for t in range(seconds):
        if respawn_every and t and t % respawn_every == 0:
            old = next(iter(level))
            level.pop(old)
            native.pop(old)
            new = next(pid_source)
            level[new], native[new] = 50_000.0, 10_000_000.0
        for pid in list(level):
            growing = stop_after is None or t < stop_after
            counts = {r: sum(1 for _ in range(int(2 * lam)) if rng.random() < 0.5) for r, lam in rates.items()}
            alone: dict[str, list[int]] = {}
            for route, n in counts.items():
                per = leak.get(route, 0.0) if growing else 0.0
                level[pid] += per * n
                native[pid] += (heap_bytes or {}).get(route, 0.0) * n if growing else 0.0
                if not overlap:
                    alone[route] = [round(per + rng.gauss(0, 3)) for _ in range(n)]
            level[pid] += background
            yield Window(pid, float(t), float(t + 1), counts, int(level[pid] + rng.gauss(0, noise)),
                         int(native[pid] + rng.gauss(0, noise * 20)) if heap_bytes is not None else None,
                         None, None, 4 if overlap else 1, alone)


def analyse(windows: Iterator[Window]) -> Analysis:
    analysis = Analysis()
    for w in windows:
        analysis.add(w)
    return analysis


def verdicts(analysis: Analysis) -> dict[str, str]:
    return {line.route: line.verdict for line in analysis.routes()}


def test_the_streaming_regression_recovers_known_slopes_and_their_errors() -> None:
    rng = random.Random(0)
    m = Moments()
    for _ in range(2000):
        x, z = rng.random(), rng.random()
        m.add([x, 2 * x + 3 * z + rng.gauss(0, 0.1), z])
    fit = regress(m, 1, [0, 2])
    assert fit is not None
    assert fit.coefficients[0].value == pytest.approx(2.0, abs=4 * fit.coefficients[0].error)
    assert fit.coefficients[2].value == pytest.approx(3.0, abs=4 * fit.coefficients[2].error)
    assert 0.005 < fit.coefficients[0].error < 0.02  # 0.1 / sqrt(2000 * var(U(0,1)))


def test_merged_moments_equal_moments_of_all_points() -> None:
    rng = random.Random(3)
    points = [[rng.gauss(5, 2), rng.gauss(-1, 3)] for _ in range(300)]
    whole, a, b = Moments(), Moments(), Moments()
    for i, p in enumerate(points):
        whole.add(p)
        (a if i < 120 else b).add(p)
    merged = a.merged(b)
    assert merged.n == whole.n
    assert merged.mean == pytest.approx(whole.mean)
    assert [v for row in merged.co for v in row] == pytest.approx([v for row in whole.symmetric().co for v in row])
    # and taking one part out of the whole again gives the other
    rest = whole.without(a)
    assert rest.n == b.n and rest.mean == pytest.approx(b.mean)
    assert [v for row in rest.co for v in row] == pytest.approx([v for row in b.symmetric().co for v in row])
    r1, r2 = Running(), Running()
    for x in (1.0, 2.0, 4.0):
        r1.add(x)
    r2.add(7.0)
    assert r1.merged(r2).mean == pytest.approx(3.5)


def test_overlapping_requests_name_the_leaking_route_and_its_slope_within_its_error() -> None:
    # 40 minutes of steady traffic: the errors are the epochs' jackknife, not least squares'
    analysis = analyse(simulate(2400, leak={"GET /a": 2.0}))
    lines = {line.route: line for line in analysis.routes()}
    a = lines["GET /a"]
    assert a.verdict == "leak" and a.method == "regression"
    assert a.blocks is not None and abs(a.blocks.value - 2.0) < 3 * a.blocks.error
    assert a.bytes is not None and a.bytes_from.startswith("blocks x 64")
    assert lines["GET /b"].verdict == "clean"
    assert lines["POST /c"].verdict != "leak"
    assert a.rate == pytest.approx(20.0, rel=0.05)  # two workers at 10 a second each


def test_heap_bytes_are_the_bytes_where_they_were_read() -> None:
    analysis = analyse(simulate(900, leak={"GET /a": 2.0}, heap_bytes={"GET /a": 300.0}))
    a = next(line for line in analysis.routes() if line.route == "GET /a")
    assert a.bytes_from == "heap_bytes" and a.verdict == "leak"
    assert a.bytes is not None and abs(a.bytes.value - 300.0) < 3 * a.bytes.error


def test_too_little_traffic_is_never_clean() -> None:
    short = analyse(simulate(5, rates={"GET /a": 2.0}))
    assert verdicts(short) == {"GET /a": "not enough traffic yet"}
    line = short.routes()[0]
    assert line.requests < MIN_REQUESTS or "windows measured" in line.reason


def test_requests_that_ran_alone_give_a_mean_even_when_few_requests_keep_memory() -> None:
    # One request in five keeps 10 blocks: the median is 0, the mean 2 per request.
    rng = random.Random(5)
    analysis = Analysis()
    for t in range(200):
        deltas = [10 if rng.random() < 0.2 else 0 for _ in range(5)]
        analysis.add(Window(7, float(t), float(t + 1), {"POST /login": 5, "GET /": 5}, 1000 + t * 10, None,
                            None, None, 1, {"POST /login": deltas, "GET /": [0, 1, -1, 0, 0]}))
    lines = {line.route: line for line in analysis.routes()}
    login = lines["POST /login"]
    assert login.method == "alone" and login.verdict == "leak"
    assert login.blocks is not None and abs(login.blocks.value - 2.0) < 3 * login.blocks.error
    assert lines["GET /"].verdict == "clean"


def test_routes_always_called_together_cannot_be_separated() -> None:
    # Every /checkout is followed by /receipt: the counts never vary apart.
    rng = random.Random(2)
    analysis = Analysis()
    level = 0.0
    for t in range(600):
        n = rng.randint(5, 30)
        m = rng.randint(5, 30)
        level += 3.0 * n
        analysis.add(Window(9, float(t), float(t + 1), {"POST /checkout": n, "GET /receipt": n, "GET /": m},
                            int(level + rng.gauss(0, 100)), None, None, None, 4))
    lines = {line.route: line for line in analysis.routes()}
    assert lines["POST /checkout"].verdict == "cannot be separated from route GET /receipt"
    assert lines["GET /receipt"].verdict == "cannot be separated from route POST /checkout"
    both = lines["POST /checkout"].blocks
    # What is known is the pair's: 3 blocks per checkout-and-receipt, 1.5 per request of either.
    assert both is not None and abs(both.value - 1.5) < 3 * both.error
    assert lines["GET /"].verdict == "clean"


def test_growth_that_stops_is_bounded() -> None:
    analysis = analyse(simulate(1600, leak={"GET /a": 3.0}, stop_after=400, noise=60))
    assert verdicts(analysis)["GET /a"] == "bounded"


def test_background_growth_is_not_charged_to_a_route() -> None:
    rates = {"GET /a": 10.0, "GET /b": 10.0}
    rng = random.Random(11)
    analysis = Analysis()
    level = 0.0
    for t in range(900):  # traffic that varies (a quiet minute every few) tells time from requests
        busy = 1.0 if (t // 60) % 3 else 0.2
        counts = {r: int(rng.gauss(lam * busy, 3)) if lam * busy > 3 else rng.randint(0, 3) for r, lam in rates.items()}
        counts = {r: max(n, 0) for r, n in counts.items()}
        level += 20.0  # a log buffer: 20 blocks a second whatever the traffic
        analysis.add(Window(3, float(t), float(t + 1), counts, int(level + rng.gauss(0, 100)), None, None, None, 4))
    assert set(verdicts(analysis).values()) == {"clean"}
    worker = analysis.workers()[0]
    assert worker.growth_per_s is not None
    assert worker.growth_per_s.value == pytest.approx(20.0 * 64, rel=0.05)


def test_a_respawned_worker_starts_its_own_series_and_the_server_carries_on() -> None:
    analysis = analyse(simulate(2400, leak={"GET /a": 2.0}, respawn_every=800))
    workers = analysis.workers()
    assert len({w.pid for w in workers}) == len(workers) >= 4
    assert sum(w.alive for w in workers) == 2
    assert any("stopped sending windows" in n for n in analysis.notes())
    assert verdicts(analysis)["GET /a"] == "leak"
    server = sum(line.requests for line in analysis.routes())
    assert server == sum(w.requests for w in workers)


def test_a_lost_window_leaves_out_its_growth_and_its_requests() -> None:
    analysis = Analysis()
    for t in range(100):
        if t == 50:
            continue  # lost: 100 requests and their 200 blocks unknown
        analysis.add(Window(4, float(t), float(t + 1), {"GET /a": 100}, 1000 + 2 * 100 * (t + 1), None, None,
                            None, 4))
    assert analysis.lost == 1
    assert analysis.server is not None
    assert analysis.server.cumulative[0] == 100 * 97  # the first window and the one after the gap
    assert analysis.server.growth["blocks"] == 2 * 100 * 97


def cheap_windows(seconds: int, workers: int = 2) -> Iterator[Window]:
    """Windows without the simulation's cost: counts from a short table, a heap growing 1
    block per request of /a, scattered by a fixed pattern."""
    pattern = [(7, 25, 3), (12, 31, 6), (9, 28, 4), (14, 35, 5), (8, 30, 7)]
    level = dict.fromkeys(range(1, workers + 1), 10_000)
    for t in range(seconds):
        for pid in level:
            a, b, c = pattern[(t * 7 + pid) % len(pattern)]
            level[pid] += a
            yield Window(pid, float(t), float(t + 1), {"GET /a": a, "GET /b": b, "POST /c": c},
                         level[pid] + (t * 37 % 101) - 50, None, None, None, 4)


def test_a_day_of_windows_keeps_memory_flat() -> None:
    # The windows are made before tracing starts, so what is traced is the analysis alone.
    windows = list(cheap_windows(50_000))  # 100,000 windows: two workers, 50,000 s
    analysis = Analysis()
    used = []
    tracemalloc.start()
    try:
        for i, w in enumerate(windows, 1):
            analysis.add(w)
            if i % 20_000 == 0:
                used.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    assert analysis.windows == 100_000
    # Flat: the state after 100,000 windows is no larger than after 20,000, give or take the
    # timeline's thinning (a few hundred points); keeping the windows would be tens of MiB.
    assert max(used) - min(used) < 256 * 1024, used
    assert used[-1] < 1024 * 1024, used
    assert analysis.server is not None and len(analysis.server.epochs.closed) <= EPOCHS_KEPT
    assert len(analysis.timeline().t) < 500
    assert [line.verdict for line in analysis.routes() if line.route == "GET /a"] == ["leak"]


def test_two_routes_first_seen_late_and_always_together_still_give_a_report() -> None:
    # Found live: a half of the series from before either route existed has no coordinate for
    # them, and refitting the pair there raised IndexError at the end of a watch.
    rng = random.Random(3)
    analysis = Analysis()
    level = 0.0
    for t in range(400):
        requests = {"GET /": rng.randint(5, 15)}
        if t >= 200:
            n = rng.randint(5, 15)
            requests.update({"POST /x": n, "GET /x/done": n})
        level += rng.gauss(0, 30)
        analysis.add(Window(pid=1, start=float(t), end=t + 1.0, requests=requests, blocks=int(10_000 + level)))
    lines = {line.route: line for line in analysis.routes()}
    assert set(lines) == {"GET /", "POST /x", "GET /x/done"}
    assert lines["POST /x"].verdict != "leak" and lines["GET /x/done"].verdict != "leak"


def test_a_slope_that_would_keep_more_than_the_heap_grew_is_not_a_leak() -> None:
    # The heap rises with each burst of /a and falls back with time (what /a holds is freed at a
    # steady pace): against its cumulative requests and time the fit gives /a +2 blocks a request
    # and time -20 a second, yet the heap did not grow. Retention adds up, so no route can keep
    # more than the server grew.
    rng = random.Random(4)
    analysis = Analysis()
    done = 0
    for t in range(900):
        n = rng.randint(0, 20)
        done += n
        level = 50_000 + 2.0 * (done - 10.0 * (t + 1))
        analysis.add(Window(5, float(t), float(t + 1), {"GET /a": n, "GET /b": 10}, int(level + rng.gauss(0, 20)),
                            None, None, None, 4))
    a = next(line for line in analysis.routes() if line.route == "GET /a")
    assert a.blocks is not None and a.blocks.value == pytest.approx(2.0, abs=3 * a.blocks.error)
    assert a.verdict == "not enough traffic yet"
    assert "more than twice what the series grew" in a.reason


def test_a_leak_the_servers_series_shows_and_no_workers_own_series_does_is_not_called() -> None:
    # Worker 1's heap follows worker 2's /health traffic (a stand-in for what makes the server's
    # sum of the workers' growth misleading): against the server's requests /health seems to keep
    # memory, against each worker's own requests it keeps none. Both heaps also grow 50 blocks a
    # second, so the growth is there to be shared out.
    rng = random.Random(8)
    analysis = Analysis()
    health2 = 0
    for t in range(1200):
        counts = {pid: {"GET /a": rng.randint(5, 30), "GET /health": rng.randint(0, 10)} for pid in (1, 2)}
        health2 += counts[2]["GET /health"]
        levels = {1: 50_000 + 50 * t + 4.0 * (health2 - 5 * (t + 1)), 2: 50_000 + 50 * t}
        for pid in (1, 2):
            analysis.add(Window(pid, float(t), float(t + 1), counts[pid], int(levels[pid] + rng.gauss(0, 20)),
                                None, None, None, 4))
    health = next(line for line in analysis.routes() if line.route == "GET /health")
    assert health.blocks is not None and health.blocks.value > 3 * health.blocks.error  # the server's series
    assert health.verdict == "not enough traffic yet"
    assert "its workers' own series say" in health.reason


def test_alone_deltas_that_all_share_a_bias_keep_no_more_than_the_heap_grew() -> None:
    # Every request's own delta says +16 blocks (a bias all of them share, which the correction
    # for what one route leaves to the next cannot take out), while the heap stays flat.
    rng = random.Random(6)
    analysis = Analysis()
    for t in range(300):
        deltas = {r: [16 + rng.randint(-3, 3) for _ in range(5)] for r in ("GET /health", "GET /")}
        analysis.add(Window(7, float(t), float(t + 1), {r: 5 for r in deltas}, 50_000 + rng.randint(-20, 20), None,
                            None, None, 1, deltas))
    health = next(line for line in analysis.routes() if line.route == "GET /health")
    assert health.method == "alone" and health.blocks is not None and health.blocks.value > 10
    assert health.verdict == "not enough traffic yet" and "more than twice what the series grew" in health.reason
