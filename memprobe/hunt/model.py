"""From rounds of readings to a verdict: leak, bounded or clean (pure: no I/O, no processes).

The series is one baseline reading after warm-up and ``gc.collect()``, then one reading after
each round of requests. Two signals are judged the same way:

* **traced** - the Python heap as tracemalloc counts it: exact to the byte, so it is the
  sensitive signal (a clean app shows 0 B/request; one small int per request shows ~36);
* **uss** - the memory only this process holds, read from outside: honest (it sees C
  allocations too), but it moves in 4 KiB pages and allocator pools, so its bar is higher.

Where the agent also reads **blocks** (``sys.getallocatedblocks()``, in blocks, not bytes), they
are fitted the same way; the verdict's Python side is judged on them when there is no traced
heap (rounds run untraced, ``HuntSettings.signal == "blocks"``). They count objects, not bytes:
a new object per request shows (one int: +1.00 block/request), growth inside a block that
exists (a list's buffer, ``_seen.append(None)``: +8 B/request traced) does not.

For each signal: a least-squares slope of bytes vs requests with its standard error, and
objgraph's "growth above the previous peak" per round, which stops counting once a cache is
full or warm-up effects are over. A signal **leaks** when its slope is clearly above zero and
the growth above the peak goes on into the last rounds; it is **bounded** when it grew in the
early rounds and the last rounds are flat.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from memprobe.results.hunt import Fit, Holder, Judgement, Reading, WorkerResult, memory_name
from memprobe.units import format_bytes

#: Below this many bytes per request the traced heap is called flat (a clean Flask app: 0).
TRACED_FLOOR = 4.0
#: A signal must grow at least this much in total before it can be a leak (bytes).
TRACED_MIN_TOTAL = 32 * 1024
#: ... and this much before growth that stopped is called bounded: objects in flight when a
#: reading is taken (a server's connection state, pending callbacks) make ~20-30 KiB of noise.
TRACED_MIN_BOUNDED = 64 * 1024
#: USS moves in pages and allocator pools: the bars per request and in total are higher.
USS_FLOOR = 48.0
USS_MIN_TOTAL = 512 * 1024
USS_MIN_BOUNDED = 1024 * 1024
#: When the traced heap grew and stopped, USS must grow this much per request in the late
#: rounds to be called a native leak.
NATIVE_AFTER_BOUNDED = 4 * USS_FLOOR
#: How many standard errors the slope must clear.
SIGMAS = 3.0
#: The allocated blocks' bars, in blocks, from bench/verdict_signal.py (8 rounds of 1,000): the
#: five hello-worlds' slopes reach +0.06 ± 0.03 blocks/request (CherryPy; Tornado +0.05 ± 0.02,
#: Flask and Bottle 0.00), their readings scatter by up to ~230 blocks (residual SD; a capped
#: cache ~290). The floor is above the worst clean slope plus three of its errors, a quarter of
#: the one-int leak's +1.00; the totals are ~4x and ~8x the worst scatter.
BLOCKS_FLOOR = 0.25
BLOCKS_MIN_TOTAL = 1000
BLOCKS_MIN_BOUNDED = 2000
#: Bytes a leaked block stands for when only blocks were read (the corpus: one int 36.7 B, a
#: str key and a float 84.5 B for 1.00 block, an lru_cache entry 181 B for 3.00 blocks).
BLOCK_BYTES = 64.0

#: A one-off step: one round's rise of the traced heap, beyond what the other rounds grew at
#: their median rate, of at least this many bytes (and this many times their median round's
#: rise), made of new blocks this large on average (the allocated blocks' rise beyond their
#: own median rate): a table resized once (pypiserver's first route: the interpreter's interned
#: strings, one block of ~939 KiB), not growth per request. A cache of ordinary objects filling
#: in one round adds a block per ~100 B; a leak's rounds rise alike.
ONE_OFF_MIN = 64 * 1024
ONE_OFF_OUTLIER = 4.0
ONE_OFF_BLOCK_BYTES = 4096


@dataclass(frozen=True)
class Step:
    """A one-off step in a series (:func:`one_off_step`): the round it happened in (between the
    readings at ``start`` and ``end`` requests) and what it added to each signal."""

    start: int
    end: int
    traced: int
    blocks: int
    uss: int

    def describe(self) -> str:
        """``one block of 939 KiB allocated once, between requests 2,048 and 2,381``."""
        what = (f"one block of {format_bytes(self.traced)}" if self.blocks <= 1
                else f"{format_bytes(self.traced)} in {self.blocks:,} large blocks")
        return (f"a one-off step, not growth per request: {what} allocated once, between requests "
                f"{self.start:,} and {self.end:,} (a table resized: the interpreter's interned strings, "
                f"a dict or list past its size)")


def one_off_step(readings: Sequence[Reading]) -> Step | None:
    """The round in which the traced heap rose by a few large blocks beyond the other rounds'
    growth (see :data:`ONE_OFF_MIN`), or None. Needs the traced heap and the allocated blocks
    in every reading. A leak's steady growth around the step stays in the series."""
    if len(readings) < 4 or any(r.traced is None or r.blocks is None for r in readings):
        return None
    xs = [r.requests for r in readings]
    steps = [max(b - a, 1) for a, b in zip(xs, xs[1:])]

    def excess(ys: Sequence[int]) -> tuple[list[float], list[float]]:
        rises = [float(b - a) for a, b in zip(ys, ys[1:])]
        rates = sorted(r / n for r, n in zip(rises, steps))
        median = rates[len(rates) // 2]
        return [r - median * n for r, n in zip(rises, steps)], [median * n for n in steps]

    traced, expected = excess([r.traced for r in readings])  # type: ignore[misc]
    i = max(range(len(traced)), key=traced.__getitem__)
    step = traced[i]
    others = sorted(abs(e) for j, e in enumerate(expected) if j != i)
    blocks = excess([r.blocks for r in readings])[0][i]  # type: ignore[misc]
    if step < max(ONE_OFF_MIN, ONE_OFF_OUTLIER * others[len(others) // 2]) \
            or blocks * ONE_OFF_BLOCK_BYTES > step:
        return None
    uss = 0
    if all(r.uss is not None for r in readings):
        uss = int(max(0.0, excess([r.uss for r in readings])[0][i]))  # type: ignore[misc]
    return Step(xs[i], xs[i + 1], int(step), max(round(blocks), 0), uss)


def without_step(readings: Sequence[Reading], step: Step) -> list[Reading]:
    """The series as if the step had not happened: its bytes taken off every later reading."""
    out = []
    for r in readings:
        if r.requests < step.end:
            out.append(r)
            continue
        out.append(replace(r, traced=None if r.traced is None else r.traced - step.traced,
                           uss=None if r.uss is None else r.uss - step.uss))
    return out


def least_squares(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Slope of ``ys`` against ``xs`` and its standard error (0 with two points)."""
    n = len(xs)
    if n < 2:
        return 0.0, math.inf
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0, math.inf
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    if n == 2:
        return slope, 0.0
    residual = sum((y - my - slope * (x - mx)) ** 2 for x, y in zip(xs, ys))
    return slope, math.sqrt(residual / (n - 2) / sxx)


def above_peak(ys: Sequence[float]) -> list[float]:
    """Per step, how far the value rose above every earlier value (objgraph's show_growth)."""
    out, peak = [], ys[0]
    for y in ys[1:]:
        out.append(max(0.0, y - peak))
        peak = max(peak, y)
    return out


def fit_signal(xs: Sequence[int], ys: Sequence[int], floor: float, min_total: int,
               min_bounded: int | None = None, last_share: float = 0.0) -> Fit:
    """Judge one signal: ``leak``, ``bounded`` or ``clean``. ``last_share``: the "last round"
    whose growth must go on is the last rounds covering at least this share of the measured
    requests (0: the last round alone, as with a few large rounds)."""
    slope, error = least_squares(xs, ys)
    rises = above_peak(ys)
    steps = [b - a for a, b in zip(xs, xs[1:])]
    rounds = len(rises)
    split = rounds // 2  # early: the first half of the rounds; late: the rest (the larger half)
    early_req = sum(steps[:split]) or 1
    late_req = sum(steps[split:]) or 1
    early = sum(rises[:split]) / early_req if split else 0.0
    late = sum(rises[split:]) / late_req
    total = int(max(ys) - ys[0])
    last = _last(rises, steps, last_share) if rounds else 0.0
    bar = max(floor, SIGMAS * error if math.isfinite(error) else floor)
    grew = total >= min_total
    steady = late > max(floor, 0.25 * slope) and last > floor / 2
    if grew and slope > bar and steady:
        verdict = "leak"
    elif total >= (min_bounded or min_total) and (early > floor or slope > floor):
        verdict = "bounded"
    else:
        verdict = "clean"
    return Fit(slope, 0.0 if not math.isfinite(error) else error, early, late, total, verdict)


def _last(rises: Sequence[float], steps: Sequence[int], share: float) -> float:
    """Growth above the peak per request over the last rounds that cover ``share`` of the
    requests (at least the last round)."""
    want, grown, sent = share * sum(steps), 0.0, 0
    for rise, step in zip(reversed(rises), reversed(steps)):
        grown, sent = grown + rise, sent + step
        if sent >= want:
            break
    return grown / (sent or 1)


def judge(readings: Sequence[Reading], memory: str = "uss", last_share: float = 0.0) -> Judgement:
    """The verdict of a series (the first reading is the baseline); ``memory`` says what its
    outside signal is (``uss``, or ``pss`` summed over a server's processes) for the reason.
    ``last_share``: see :func:`fit_signal` (the sequential protocol's many small rounds)."""
    if len(readings) < 3:
        raise ValueError("judge needs a baseline and at least two rounds")
    step = one_off_step(readings)
    if step is not None:
        judgement = judge(without_step(readings, step), memory, last_share)
        return replace(judgement, reason=f"{step.describe()}; without it, {judgement.reason}")
    xs = [r.requests for r in readings]
    traced = uss = blocks = None
    if all(r.blocks is not None for r in readings):
        blocks = fit_signal(xs, [r.blocks for r in readings], BLOCKS_FLOOR,  # type: ignore[misc]
                            BLOCKS_MIN_TOTAL, BLOCKS_MIN_BOUNDED)
    if all(r.traced is not None for r in readings):
        traced = fit_signal(xs, [r.traced for r in readings], TRACED_FLOOR,  # type: ignore[misc]
                            TRACED_MIN_TOTAL, TRACED_MIN_BOUNDED, last_share)
    if all(r.uss is not None for r in readings):
        uss = fit_signal(xs, [r.uss for r in readings], USS_FLOOR, USS_MIN_TOTAL,  # type: ignore[misc]
                         USS_MIN_BOUNDED, last_share)
    # The Python side: the traced heap where it was read, else the allocated blocks.
    python = traced if traced is not None else blocks
    t = python.verdict if python else "clean"
    u = uss.verdict if uss else "clean"
    if u == "leak" and t == "bounded" and uss is not None and uss.late < NATIVE_AFTER_BOUNDED:
        # The Python heap filled up and stopped; USS lagging behind it (pools freed by
        # evictions are reused slowly) is not a native leak unless it keeps growing clearly.
        u = "bounded"
    if t == "leak" or u == "leak":
        kind = _kind(python, uss, traced.slope if traced is not None else None)
        verdict = "leak"
    elif t == "bounded" or u == "bounded":
        verdict = "bounded"
        kind = "python" if t == "bounded" else "native"
    else:
        verdict, kind = "clean", None
    reason = _reason(verdict, kind, traced, uss, memory_name(memory))
    if traced is None and blocks is not None:
        reason = _blocks_reason(reason, blocks)
    return Judgement(verdict, kind, traced, uss, reason, blocks)


def python_bytes(traced: Fit | None, blocks: Fit | None) -> float:
    """The Python heap's growth in bytes per request: traced, else blocks x :data:`BLOCK_BYTES`."""
    if traced is not None:
        return traced.slope
    return blocks.slope * BLOCK_BYTES if blocks is not None else 0.0


def _blocks_reason(reason: str, blocks: Fit) -> str:
    """The reason with the blocks' fit where the traced heap's would be."""
    return reason.replace("traced n/a", f"blocks {blocks.slope:+.2f} ± {blocks.error:.2f} /request")


def _kind(python: Fit | None, uss: Fit | None, python_slope: float | None) -> str:
    """``python_slope``: the traced bytes per request; None when the Python side is the
    allocated blocks, whose bytes are unknown (a leaked ``bytes(300)`` is one block, as is an
    int): "mixed" needs the bytes, so a leak in blocks is ``python``."""
    if python is None or python.verdict != "leak":
        return "native"
    if uss is None or uss.verdict != "leak" or python_slope is None:
        return "python"
    # Python objects cost USS beyond their traced size (allocator pools, list over-allocation):
    # ~2x for small ints here. "Well above" is more than twice that on top.
    gap = uss.slope - python_slope
    if gap > max(USS_FLOOR, 2 * python_slope, SIGMAS * uss.error):
        return "mixed"
    return "python"


def _reason(verdict: str, kind: str | None, traced: Fit | None, uss: Fit | None, name: str = "USS") -> str:
    def show(name: str, f: Fit | None) -> str:
        return f"{name} {f.slope:+.1f} ± {f.error:.1f} B/request" if f else f"{name} n/a"

    both = f"{show('traced', traced)}, {show(name, uss)}"
    if verdict == "leak":
        if kind == "native" and traced is not None and traced.verdict == "bounded":
            return f"{name} keeps growing per request after the Python heap stopped ({both})"
        if kind == "native":
            return f"{name} grows per request and the Python heap does not ({both})"
        if kind == "mixed":
            return f"both grow, {name} well above the Python heap ({both})"
        return f"the Python heap grows steadily, into the last rounds ({both})"
    if verdict == "bounded":
        return f"memory grew in the early rounds and stopped ({both})"
    return f"no growth beyond noise ({both})"




#: The share of the USS growth that must be in the allocators' in-use bytes for a native leak,
#: or in their free bytes (or given back by malloc_trim) for allocator retention.
ALLOCATOR_SHARE = 0.5


def account(judgement: Judgement, allocator: dict[str, Any] | None) -> tuple[Judgement, str | None]:
    """A native verdict weighed against what the allocators hold (``allocator``: the agent's
    :func:`memprobe.agent.allocator.compare`): USS growth the allocators hold free, with their
    bytes in use flat, is allocator retention, not a leak (verdict ``bounded``, kind
    ``retention``). Answers the judgement (the same one when nothing changes) and one sentence
    saying what the allocators showed (None when there is nothing to say)."""
    uss = judgement.uss
    if allocator is None or uss is None or judgement.verdict == "clean":
        return judgement, None
    if not allocator.get("glibc"):
        return judgement, (f"the allocator check was not available: the C library is "
                           f"{allocator.get('libc') or 'unknown'}, not glibc")
    requests = int(allocator.get("requests") or 0)
    if requests <= 0:
        return judgement, None
    per = float(requests)
    growth = max(uss.slope * per, 0.0)
    in_use = float(allocator.get("in_use_growth") or 0)
    free = float(allocator.get("free_growth") or 0)
    released = float(allocator.get("trim_released") or 0)
    # pymalloc's arenas are read at the end only (not while tracemalloc traces): the growth
    # outside glibc's arenas that pymalloc's free space could hold.
    outside = float(allocator.get("outside_glibc_growth") or 0)
    py_free = allocator.get("pymalloc_free")
    py_held = min(float(py_free), max(outside, 0.0)) if py_free is not None else 0.0
    held = max(free, released, py_held)
    figures = (f"bytes in use {in_use / per:+.1f} B/request, held free {free / per:+.1f} "
               f"B/request in glibc's arenas, malloc_trim(0) gave back "
               f"{format_bytes(max(released, 0.0))}")
    if py_free is not None:
        figures += f", pymalloc holds {format_bytes(float(py_free))} free in its arenas"
    if judgement.kind != "native":
        return judgement, figures
    if in_use >= ALLOCATOR_SHARE * growth and in_use / per >= USS_FLOOR / 2:
        return judgement, f"the memory is in use, not only resident: {figures}"
    if growth > 0 and held >= ALLOCATOR_SHARE * growth:
        reason = (f"allocator retention, not a leak: USS {uss.slope:+.1f} B/request, but the "
                  f"allocators' {figures}")
        return replace(judgement, verdict="bounded", kind="retention", reason=reason), reason
    return judgement, (f"the growth is neither in use nor held free by glibc's malloc or "
                       f"pymalloc ({figures}): memory mapped outside them (thread stacks, "
                       f"another allocator, a C library's own mmap)")


def will_it_stop(judgement: Judgement, holders: list[Holder], requests: int,
                 throughput: float = 0.0) -> Judgement:
    """Fill each capped holder's ceiling (``bytes_per_entry``, ``ceiling_bytes``,
    ``requests_to_cap``) and judge by the top one: a leak whose top holder has a cap larger
    than the run reached is ``bounded`` ("grows until ..."); one held by timers says when they
    fire. ``throughput``: requests per second of the measured rounds."""
    judgement = held_in_python(judgement, holders)
    traced = python_bytes(judgement.traced, judgement.blocks)
    for h in holders:
        cap = (h.bounds or {}).get("cap")
        if not cap or h.entries_per_request <= 0:
            continue
        per_entry = h.bounds.get("bytes_per_entry") or traced / h.entries_per_request  # type: ignore[union-attr]
        h.bounds = {**(h.bounds or {}), "bytes_per_entry": round(max(per_entry, 0.0), 1),
                    "ceiling_bytes": int(cap * max(per_entry, 0.0)),
                    "requests_to_cap": max(0, int((cap - h.entries) / h.entries_per_request))}
    top = holders[0] if holders else None
    if top is None or not top.bounds or judgement.verdict == "clean":
        return judgement
    b = top.bounds
    if judgement.verdict == "bounded":
        if b.get("cap") and b.get("requests_to_cap") == 0:
            reason = (f"stopped at its cap of {b['cap']:,} entries ({b['by']}), "
                      f"≈ {format_bytes(b['ceiling_bytes'])}: {top.description}; {judgement.reason}")
            return replace(judgement, verdict="bounded", reason=reason)
        return judgement
    if b.get("cap") and b["requests_to_cap"] > 0 and judgement.kind == "python":
        reason = (f"grows until {b['cap']:,} entries ({b['by']}), ≈ {format_bytes(b['ceiling_bytes'])}, "
                  f"after ≈ {b['requests_to_cap']:,} more requests: {top.description}; "
                  f"{judgement.reason}")
        return replace(judgement, verdict="bounded", kind="python", reason=reason)
    if b.get("timers"):
        plateau = ""
        if throughput > 0 and traced > 0:
            plateau = (f"; at {throughput:,.0f} requests/s they hold ≈ "
                       f"{format_bytes(traced * throughput * b['due_last_s'])} when the first fire")
        reason = (f"held by {b['timers']:,} timers due in {_seconds(b['due_median_s'])} "
                  f"(the last in {_seconds(b['due_last_s'])}): released when they fire{plateau}; "
                  f"{judgement.reason}")
        return replace(judgement, reason=reason)
    return judgement


#: Entries per request a Python container must gain to make a native verdict a Python leak.
HELD_ENTRIES = 0.5


def held_in_python(judgement: Judgement, holders: list[Holder]) -> Judgement:
    """A native leak whose traced heap grew too (only noisily: not a leak by its own bars) and
    whose growth a Python container holds, gaining entries with the requests, is a Python leak:
    the kind follows what was found, not the traced slope's noise."""
    traced = judgement.traced
    if judgement.verdict != "leak" or judgement.kind != "native" or traced is None \
            or traced.slope <= TRACED_FLOOR:
        return judgement
    top = next((h for h in holders if h.source == "roots"
                and h.entries_per_request >= HELD_ENTRIES), None)
    if top is None:
        return judgement
    reason = (f"a Python container grows with the requests ({top.description}: "
              f"{top.entries_per_request:+.2f} entries/request) and the Python heap grows too, "
              f"noisily ({judgement.reason})")
    return replace(judgement, kind="python", reason=reason)


def _seconds(s: float) -> str:
    return f"{s:,.0f} s"


def shared_growth(judgement: Judgement, processes: Sequence[WorkerResult], readings: Sequence[Reading],
                  last_share: float = 0.0) -> Judgement:
    """A server's native verdict weighed against its processes' own memory: growth of the PSS
    summed over a master and its workers (``readings``, the server's series) that their USS,
    summed reading by reading and judged by the same bars, does not show is in pages they
    share (a library's pages read in, pages a worker and the master both map, a page that
    changes hands), not memory a request keeps: the route is clean. Answers the judgement
    (the same one unless it changes; also when a process missed a reading)."""
    if judgement.verdict == "clean" or judgement.kind != "native" or judgement.uss is None \
            or not processes or len(readings) < 3:
        return judgement
    series = [p.readings for p in processes]
    if any(len(s) != len(readings) or any(r.uss is None for r in s) for s in series):
        return judgement
    private = [Reading(r.requests, None, sum(s[i].uss or 0 for s in series))
               for i, r in enumerate(readings)]
    own = judge(private, "uss", last_share)
    if own.verdict != "clean" or own.uss is None:
        return judgement
    pss, uss = judgement.uss, own.uss
    reason = (f"no growth beyond noise in the processes' own memory: the server's PSS "
              f"{pss.slope:+.1f} ± {pss.error:.1f} B/request ({format_bytes(pss.total)} in all), "
              f"their USS summed {uss.slope:+.1f} ± {uss.error:.1f} B/request "
              f"({format_bytes(uss.total)}): pages they share, not memory a request keeps")
    return replace(judgement, verdict="clean", kind=None, reason=reason)
