"""Watch's attribution windows: what one window in a worker finds (a real Flask app, real
tracemalloc, requests through the same wrapper gunicorn's workers get), how it samples, and
how the parent weighs windows against the heap's analysis (fed windows, as the agent sends
them).

The end-to-end case, real servers under Locust, is tests/test_watch_detection.py.
"""
from __future__ import annotations

import gc
import random
import sys
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, request
from werkzeug.test import Client

from memprobe.agent.inject import CountingWSGI, Served
from memprobe.agent.watch_trace import TraceWindow
from memprobe.agent.watching import Recorder, hook_frameworks, unhook_frameworks
from memprobe.results.watch import PerRequest, RouteLine, TracedRoute, TracedWindow
from memprobe.watch.analysis import UNDECIDED
from memprobe.watch.attribution import TRACED_FLOOR, TracePolicy, Traces
from memprobe.watch.series import ALL_ALONE, corrected
from memprobe.watch.stats import Running

_kept: dict[int, dict[str, str]] = {}


def shop() -> Flask:
    app = Flask("attribution_shop")

    @app.post("/orders")
    def orders() -> dict[str, bool]:
        data = request.get_json(silent=True) or {}
        if data.get("gift"):
            _kept[data["id"]] = {"note": "x" * 100}  # a small dict: the free lists' kind
        return {"ok": True}

    @app.get("/search")
    def search() -> dict[str, list[str]]:
        return {"r": [str(i) for i in range(50)]}

    return app


@pytest.fixture
def recorder() -> Iterator[tuple[Recorder, Client]]:
    _kept.clear()
    rec = Recorder(60.0)
    served = Served()
    hook_frameworks()
    try:
        yield rec, Client(CountingWSGI(shop(), lambda: served, lambda: rec))
    finally:
        rec.close_trace("test over")
        unhook_frameworks()
        assert not tracemalloc.is_tracing()


def _traffic(client: Client, first: int, n: int) -> None:
    for i in range(first, first + n):
        client.get("/search").close()
        client.post("/orders", json={"id": i, "gift": i % 2 == 0}).close()


def _shuffled(client: Client, first: int, n: int) -> dict[str, int]:
    """``n`` requests of the shop, searches and orders (half of them gifts) in a random order
    (seeded by ``first``): how many of each route."""
    rng = random.Random(first)
    sent = {"GET /search": 0, "POST /orders": 0}
    for i in range(first, first + n):
        if rng.random() < 0.5:
            client.get("/search").close()
            sent["GET /search"] += 1
        else:
            client.post("/orders", json={"id": i, "gift": rng.random() < 0.5}).close()
            sent["POST /orders"] += 1
    return sent


@pytest.mark.timeout(60)
def test_a_window_charges_what_stays_to_the_route_whose_handler_made_it_with_its_line_and_holder(
        recorder: tuple[Recorder, Client]) -> None:
    rec, client = recorder
    _traffic(client, 0, 100)  # warm: the app's first requests fill its caches
    rec.open_trace(seconds=600, requests=10_000, frames=16, sample=1, share=1.0, screen_s=0.2)
    screening = _screen(rec, client)
    before = (set(_kept), sys.getsizeof(_kept))
    sent = _shuffled(client, 1000, 600)
    rec.close_trace("test")
    # what the traced orders made _kept hold: its new entries (a dict and an int key each) and
    # its table's growth
    kept = sum(sys.getsizeof(_kept[k]) + sys.getsizeof(k) for k in set(_kept) - before[0])
    truth = (kept + sys.getsizeof(_kept) - before[1]) / sent["POST /orders"]
    found = TracedWindow.from_dict(rec.traced[0])
    orders, search = found.route("POST /orders"), found.route("GET /search")
    assert orders is not None and search is not None
    # Every request (each ran alone), read as the client dropped its response.
    assert found.samples == 600 and found.overlapped == 0
    assert (orders.samples, search.samples) == (sent["POST /orders"], sent["GET /search"])
    assert (orders.requests, search.requests) == (sent["POST /orders"] + screening["POST /orders"],
                                                  sent["GET /search"] + screening["GET /search"])
    assert search.bytes == 0
    # half the orders keep a new dict (the note is one folded constant) and its key, and the
    # table's share per entry
    assert orders.per_request > TRACED_FLOOR
    assert orders.per_request == pytest.approx(truth, rel=0.15)
    assert orders.sites and orders.sites[0].file == __file__
    assert "_kept" in orders.holders[0]["description"]
    assert 0 < orders.holders[0]["routes"]["POST /orders"] < orders.samples
    assert found.frames == 16 and found.closed == "test"


def _screen(rec: Recorder, client: Client) -> dict[str, int]:
    """The shop's traffic until the window's screening is over (traced requests start after
    it, following the containers that grew meanwhile): how many requests of each route it took."""
    assert rec.trace is not None
    n = {"GET /search": 0, "POST /orders": 0}
    while not rec.trace.screened:
        for route, count in _shuffled(client, 500_000 + sum(n.values()), 1).items():
            n[route] += count
    return n


@pytest.mark.timeout(60)
def test_a_window_traces_one_request_in_n_and_no_more_than_its_share_of_time(
        recorder: tuple[Recorder, Client]) -> None:
    rec, client = recorder
    _traffic(client, 0, 50)
    rec.open_trace(seconds=600, requests=10_000, frames=16, sample=10, share=1.0, screen_s=0.1)
    _screen(rec, client)
    _traffic(client, 1000, 200)
    rec.close_trace("test")
    found = TracedWindow.from_dict(rec.traced[0])
    assert found.samples == 40 and found.sample == 10 and found.overlapped == 0
    assert found.traced_s > 0
    rec.traced.clear()
    rec.open_trace(seconds=600, requests=10_000, frames=16, sample=1, share=1e-9, screen_s=0.1)
    _screen(rec, client)
    _traffic(client, 2000, 200)
    rec.close_trace("test")
    assert TracedWindow.from_dict(rec.traced[0]).samples <= 1  # the first one spent the share


@pytest.mark.timeout(60)
def test_a_window_is_refused_where_tracemalloc_is_someone_elses() -> None:
    tracemalloc.start(1)
    try:
        with pytest.raises(RuntimeError, match="already on"):
            TraceWindow(10, 100)
        assert tracemalloc.is_tracing()  # left as found
    finally:
        tracemalloc.stop()


@pytest.mark.timeout(60)
def test_a_traced_request_leaves_the_collector_and_tracemalloc_as_it_found_them(
        recorder: tuple[Recorder, Client]) -> None:
    rec, client = recorder
    rec.open_trace(seconds=600, requests=10_000, frames=16, sample=1, share=1.0, screen_s=0.1)
    _screen(rec, client)
    _traffic(client, 0, 20)
    assert rec.trace is not None
    rec.close_trace("test")
    assert gc.get_freeze_count() == 0 and not tracemalloc.is_tracing()
    gc.freeze()  # the app froze its objects itself (gunicorn's preload idiom): left frozen
    try:
        rec.open_trace(seconds=600, requests=10_000, frames=16, sample=1, share=1.0, screen_s=0.1)
        _screen(rec, client)
        _traffic(client, 100, 20)
        rec.close_trace("test")
        assert gc.get_freeze_count() > 0 and not tracemalloc.is_tracing()
        assert TracedWindow.from_dict(rec.traced[-1]).samples == 40
    finally:
        gc.unfreeze()


def _window(pid: int, kept: dict[str, list[int]], unrouted: dict[str, int] | None = None,
            at: float = 0.0) -> TracedWindow:
    """A window as the agent sends it: per route, what each of its traced requests kept (one
    request in ten traced), and outside any handler what each left."""
    outside = unrouted or {}
    routes = [TracedRoute(r, 10 * len(v), sum(v), len(v), samples=len(v), bytes_sq=float(sum(x * x for x in v)),
                          unrouted=outside.get(r, 0) * len(v), unrouted_sq=float(outside.get(r, 0) ** 2 * len(v)))
              for r, v in kept.items()]
    return TracedWindow(pid, 10.0, {r: 10 * len(v) for r, v in kept.items()}, 16, routes=routes, at=at, sample=10,
                        samples=sum(len(v) for v in kept.values()))


def _line(route: str, verdict: str, **extra: Any) -> RouteLine:
    return RouteLine(route, 1000, 10.0, verdict, **extra)


def test_a_route_the_heap_could_not_separate_is_a_leak_once_windows_agree_it_keeps_memory() -> None:
    traces = Traces()
    for i in range(3):  # half the orders keep 200 B
        traces.add(_window(100 + i % 2, {"POST /orders": [0, 200] * 15, "GET /search": [0] * 30}, at=10.0 * i))
    lines = [_line("POST /orders", "cannot be separated from route GET /search"),
             _line("GET /search", "cannot be separated from route POST /orders")]
    traces.refine(lines, server_growing=True)
    orders, search = lines
    assert orders.verdict == "leak" and orders.method == "traced windows"
    assert orders.bytes is not None and orders.bytes.value == 100.0
    assert 100 / 90 ** 0.5 < orders.bytes.error < 1.2 * 100 / 90 ** 0.5  # the spread of 90 traced requests
    assert search.verdict.startswith("cannot be separated")  # the windows never make a route clean


def test_a_cache_that_filled_and_stopped_is_not_a_leak_on_its_windows() -> None:
    traces = Traces()
    for i, b in enumerate((300, 250, 0)):
        traces.add(_window(100, {"GET /report": [b] * 30}, at=10.0 * i))
    lines = [_line("GET /report", UNDECIDED)]
    traces.refine(lines, server_growing=True)
    assert lines[0].verdict == UNDECIDED


def test_windows_need_two_of_them_and_a_growing_server_or_container() -> None:
    one = Traces()
    one.add(_window(100, {"POST /orders": [200] * 60}))
    lines = [_line("POST /orders", UNDECIDED)]
    one.refine(lines, server_growing=True)
    assert lines[0].verdict == UNDECIDED
    two = Traces()
    for i in range(2):
        two.add(_window(100, {"POST /orders": [200] * 60}, at=i))
    lines = [_line("POST /orders", UNDECIDED)]
    two.refine(lines, server_growing=False)
    assert lines[0].verdict == UNDECIDED
    # the heap's blocks not clear yet, but a container grew with the route's entries
    holder = {"description": "module shop.py, global _gifts (list, 1,795 entries)", "routes": {"POST /orders": 8}}
    for window in two.windows:
        window.routes[0].holders = [holder]
    two.refine(lines, server_growing=False)
    assert lines[0].verdict == "leak" and lines[0].method == "traced windows"


def test_a_leak_of_python_blocks_that_the_windows_saw_no_handler_keep_is_taken_back() -> None:
    traces = Traces()
    for i in range(3):
        traces.add(_window(100, {"GET /items": [0] * 20, "GET /": [0] * 20}, at=i))
    line = _line("GET /items", "leak", blocks=PerRequest(4.3, 0.4, "blocks"),
                 bytes=PerRequest(275.0, 25.0, "B"), bytes_from="blocks x 64 B (assumed)", method="alone")
    traces.refine([line], server_growing=True)
    assert line.verdict == UNDECIDED and "attribution windows saw its handler keep" in line.reason


def test_a_leak_whose_requests_grow_a_container_is_not_taken_back_and_a_bounded_one_is_a_leak() -> None:
    """Its traced requests add entries to a container that keeps growing: whatever the bytes
    its handler was seen to keep, the windows cannot rule it out, and "bounded" is contradicted."""
    traces = Traces()
    holder = {"description": "module app.py, global _seen (list, 900 entries)", "routes": {"GET /items": 40}}
    for i in range(3):
        window = _window(100, {"GET /items": [0] * 20, "POST /orders": [0, 200] * 15}, at=10.0 * i)
        for r in window.routes:
            r.holders = [holder] if r.route == "GET /items" else [dict(holder, routes={"POST /orders": 15})]
        traces.add(window)
    items = _line("GET /items", "leak", blocks=PerRequest(4.3, 0.4, "blocks"),
                  bytes=PerRequest(275.0, 25.0, "B"), bytes_from="blocks x 64 B (assumed)", method="alone")
    orders = _line("POST /orders", "bounded")
    traces.refine([items, orders], server_growing=True)
    assert items.verdict == "leak"
    assert orders.verdict == "leak" and orders.method == "traced windows"


def test_windows_open_one_at_a_time_in_each_worker_in_turn_and_not_too_often() -> None:
    traces = Traces(TracePolicy(every=60.0))
    lines = [_line("POST /orders", "leak")]
    assert traces.reason(lines, server_growing=False, now=0.0) is not None
    assert [traces.next_worker([7, 5]) for _ in range(3)] == [5, 7, 5]
    traces.open_pid = 5
    assert traces.reason(lines, server_growing=True, now=100.0) is None  # one open already
    traces.add(_window(5, {"POST /orders": [1] * 30}, at=100.0))
    assert traces.open_pid is None
    assert traces.reason(lines, server_growing=True, now=130.0) is None  # too soon after the last
    assert traces.reason(lines, server_growing=True, now=161.0) is not None
    assert Traces(TracePolicy(enabled=False)).reason(lines, True, 1e9) is None
    clean = [_line("GET /", "clean")]
    assert traces.reason(clean, server_growing=True, now=1e9) is None


def test_alone_deltas_are_corrected_for_what_a_request_leaves_to_the_next_one() -> None:
    """Route A keeps 2 blocks and leaves 10 to be freed during the next request; B keeps
    nothing and leaves nothing: the plain means say A +12 and B -10-ish, the corrected ones the
    truth."""
    rng = random.Random(7)
    keep, leave = {0: 2.0, 1: 0.0}, {0: 10.0, 1: 0.0}
    alone: dict[int, Running] = {}
    prev = 1
    for _ in range(20_000):
        cur = rng.choice((0, 1))
        d = keep[cur] + leave[cur] - leave[prev] + rng.gauss(0, 3)
        for key in (cur, -1 - prev, ALL_ALONE):
            alone.setdefault(key, Running()).add(d)
        prev = cur
    plain_a, plain_b = alone[0].mean, alone[1].mean
    a, b = corrected(alone, 0), corrected(alone, 1)
    assert a is not None and b is not None
    assert plain_a > 6 and plain_b < -4
    assert abs(a.mean - 2.0) < 3 * a.error and abs(b.mean) < 3 * b.error


def test_the_flask_hook_is_put_back_as_it_was_and_a_request_inside_it_still_runs() -> None:
    import flask.ctx

    from memprobe.agent.watching import _named_match  # the hook itself

    flask_own = flask.ctx.RequestContext.match_request
    hook_frameworks()
    hook_frameworks()  # twice: still one layer
    assert flask.ctx.RequestContext.match_request is _named_match
    app, served = shop(), Served()
    client = Client(CountingWSGI(app, lambda: served, lambda: None))
    unhook_frameworks()
    assert flask.ctx.RequestContext.match_request is flask_own
    ctx = app.test_request_context("/search")
    _named_match(ctx)  # a request that entered the hook before it was put back
    assert ctx.request.url_rule is not None and ctx.request.url_rule.rule == "/search"
    assert client.get("/search").status_code == 200


def test_a_route_called_clean_only_together_with_another_is_a_leak_once_windows_see_it_keep_memory() -> None:
    traces = Traces()
    for i in range(3):
        traces.add(_window(100, {"POST /orders": [0, 340] * 15, "GET /": [0] * 30, "GET /health": [300] * 30},
                           at=10.0 * i))
    together = _line("POST /orders", "clean", partner="route GET /")
    alone = _line("GET /health", "clean")
    traces.refine([together, alone], server_growing=True)
    assert together.verdict == "leak" and together.method == "traced windows"
    assert alone.verdict == "clean"  # clean on its own: a leak that large would have shown
    # ... unless a container that grew through the windows holds its traced requests' entries
    holder = {"description": "module app.py, global _seen (list, 900 entries)", "routes": {"GET /health": 30}}
    for window in traces.windows:
        next(r for r in window.routes if r.route == "GET /health").holders = [holder]
    traces.refine([alone], server_growing=True)
    assert alone.verdict == "leak" and alone.method == "traced windows"


def test_windows_call_a_leak_over_the_floor_and_two_errors_as_hunt_does() -> None:
    # 52 traced orders of a threaded worker: most keep nothing, the others a 193 B gift and, in
    # most of them, the holder's larger storage: +104 ± 28 B a request, for a truth of ~100
    kept = [0] * 40 + [500] * 10 + [193] * 2
    traces = Traces()
    for i in range(2):
        traces.add(_window(100 + i, {"POST /orders": kept[i::2]}, at=10.0 * i))
    lines = [_line("POST /orders", UNDECIDED)]
    traces.refine(lines, server_growing=True)
    est = lines[0].bytes
    assert est is not None and est.value - 2 * est.error < 48 < est.value  # not beyond two errors of the floor
    assert lines[0].verdict == "leak"


def test_a_route_the_heap_suspects_is_reason_enough_for_a_window() -> None:
    traces = Traces()
    suspect = _line("POST /orders", UNDECIDED, bytes=PerRequest(20_660.0, 4_979.0, "B"))
    unclear = _line("GET /search", UNDECIDED, bytes=PerRequest(2_000.0, 4_000.0, "B"))
    assert traces.reason([unclear], server_growing=False, now=0.0) is None
    assert traces.reason([unclear, suspect], server_growing=False, now=0.0) == "POST /orders may keep memory"


def test_requests_during_a_window_and_long_after_give_no_alone_deltas(recorder: tuple[Recorder, Client]) -> None:
    """A window's collections empty the interpreter's free lists, which the next requests refill
    a block at a time: their deltas would say every route keeps memory."""
    rec, client = recorder

    def deltas(n: int) -> int:
        _traffic(client, 0, n)
        return sum(len(d) for w in rec.take() for d in w.alone_deltas.values())

    assert deltas(50) > 0
    rec.open_trace(seconds=600, requests=10_000, frames=8, sample=5, share=1.0, screen_s=0.1)
    _screen(rec, client)
    assert deltas(100) == 0
    rec.close_trace("test")
    assert deltas(100) == 0  # 200 requests of the 1,000 after the window
