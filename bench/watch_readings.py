"""What each cheap heap reading costs on a large heap, before watch decides when to call it.

``sys.getallocatedblocks()`` and glibc ``mallinfo2()`` through ctypes, on this interpreter's
heap grown to ~N objects (plus a fragmented C heap: many malloc'd buffers, every other one
freed, so mallinfo2 has free chunks to walk), against ``time.monotonic()`` and
``gc.get_count()`` for scale. Prints one row per reading: the median and the 99th percentile
of single calls in microseconds. ``watch`` reads the blocks per request only where that stays
far under a request's cost, and mallinfo2 once per window.

    python bench/watch_readings.py [--objects 3000000]
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import statistics
import sys
import time
from collections.abc import Callable


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]


def _mallinfo2() -> Callable[[], int]:
    libc = ctypes.CDLL(None)
    fn = libc.mallinfo2
    fn.restype = _Mallinfo2
    return lambda: int(fn().uordblks)


def _timed(fn: Callable[[], object], calls: int) -> tuple[float, float]:
    times = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    times.sort()
    return statistics.median(times) / 1000, times[int(len(times) * 0.99)] / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=3_000_000)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    readings: dict[str, Callable[[], object]] = {
        "time.monotonic()": time.monotonic,
        "gc.get_count()": gc.get_count,
        "sys.getallocatedblocks()": sys.getallocatedblocks,
        "mallinfo2() (ctypes)": _mallinfo2(),
    }
    print(f"Python {sys.version.split()[0]}; single calls, microseconds (median / p99)")
    print(f"{'heap':<34}{'reading':<28}{'median':>9}{'p99':>9}")
    keep: list[object] = []
    for label, grow in (("small (fresh interpreter)", 0), (f"{args.objects:,} objects + C heap", args.objects)):
        if grow:
            keep.append([{"i": i, "s": str(i)} for i in range(grow // 2)])
            # A fragmented C heap: 200k buffers of mixed sizes, every other one freed.
            buffers = [ctypes.create_string_buffer(600 + (i % 7) * 300) for i in range(200_000)]
            keep.append(buffers[::2])
            del buffers
        blocks = sys.getallocatedblocks()
        for name, fn in readings.items():
            median, p99 = _timed(fn, args.calls)
            print(f"{label:<34}{name:<28}{median:>9.2f}{p99:>9.2f}")
        print(f"{'':<34}(allocated blocks: {blocks:,}; C heap in use: {_mallinfo2()() / 2**20:,.0f} MiB)")


if __name__ == "__main__":
    main()
