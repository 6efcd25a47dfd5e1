"""From rounds of readings to a verdict: leak, bounded or clean (pure: no I/O, no processes).

The series is one baseline reading after warm-up and ``gc.collect()``, then one reading after
each round of requests. Two signals are judged the same way:

* **traced** - the Python heap as tracemalloc counts it: exact to the byte, so it is the
  sensitive signal (a clean app shows 0 B/request; one small int per request shows ~36);
* **uss** - the memory only this process holds, read from outside: honest (it sees C
  allocations too), but it moves in 4 KiB pages and allocator pools, so its bar is higher.

For each signal: a least-squares slope of bytes vs requests with its standard error, and
objgraph's "growth above the previous peak" per round, which stops counting once a cache is
full or warm-up effects are over. A signal **leaks** when its slope is clearly above zero and
the growth above the peak goes on into the last rounds; it is **bounded** when it grew in the
early rounds and the last rounds are flat.
"""
from __future__ import annotations

import math
import os
import sys
import sysconfig
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

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

_MEMPROBE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_SYSTEM_DIRS = tuple(sorted(
    {os.path.abspath(p) + os.sep for p in (
        sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")) if p}
    | {os.path.abspath(p) + os.sep for p in sys.path if p.endswith("-packages")},
    key=len))


def is_user_file(filename: str) -> bool:
    """Whether ``filename`` is the user's code: not the standard library, not an installed
    package, not memprobe, not a frozen or generated module."""
    if not filename or filename.startswith("<"):
        return False
    path = os.path.abspath(filename)
    if path.startswith(_MEMPROBE_DIR) or f"{os.sep}site-packages{os.sep}" in path \
            or f"{os.sep}dist-packages{os.sep}" in path:
        return False
    return not any(path.startswith(d) for d in _SYSTEM_DIRS)


class Rate(float):
    """Bytes per request from a fitted slope: a float, so it compares with a limit as it is
    (``result.bytes_per_request["uss"] < 256``), that carries its standard error."""

    error: float

    def __new__(cls, value: float, error: float) -> Rate:
        rate = super().__new__(cls, value)
        rate.error = error
        return rate

    def to_dict(self) -> dict[str, float]:
        """The JSON form: ``{"value": ..., "error": ...}``."""
        return {"value": round(float(self), 2), "error": round(self.error, 2)}

    def __repr__(self) -> str:
        return f"Rate({float(self):.2f} ± {self.error:.2f})"


def rates_json(rates: dict[str, Rate | None]) -> dict[str, dict[str, float] | None]:
    """``{"traced": Rate, "uss": Rate}`` as JSON."""
    return {name: (rate.to_dict() if rate is not None else None) for name, rate in rates.items()}


@dataclass(frozen=True)
class Reading:
    """One point of the series: requests done since the baseline, and the two signals."""

    requests: int
    traced: int | None
    uss: int | None


@dataclass
class Fit:
    """One signal's growth: least-squares slope (bytes/request) with its standard error, the
    growth above the previous peak in the early and late halves of the rounds (bytes/request),
    and the judgement of that signal alone."""

    slope: float
    error: float
    early: float
    late: float
    total: int
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``value`` and ``error`` in bytes per request, and the model's numbers."""
        return {"value": round(self.slope, 2), "error": round(self.error, 2),
                "early": round(self.early, 2), "late": round(self.late, 2),
                "total_bytes": self.total, "verdict": self.verdict}


@dataclass
class Judgement:
    """The verdict of a series and the numbers behind it."""

    verdict: str
    kind: str | None
    traced: Fit | None
    uss: Fit | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"verdict": self.verdict, "kind": self.kind, "reason": self.reason,
                "traced": self.traced.to_dict() if self.traced else None,
                "uss": self.uss.to_dict() if self.uss else None}


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
               min_bounded: int | None = None) -> Fit:
    """Judge one signal: ``leak``, ``bounded`` or ``clean``."""
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
    last = rises[-1] / (steps[-1] or 1) if rounds else 0.0
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


def judge(readings: Sequence[Reading]) -> Judgement:
    """The verdict of a series (the first reading is the baseline)."""
    if len(readings) < 3:
        raise ValueError("judge needs a baseline and at least two rounds")
    xs = [r.requests for r in readings]
    traced = uss = None
    if all(r.traced is not None for r in readings):
        traced = fit_signal(xs, [r.traced for r in readings], TRACED_FLOOR,  # type: ignore[misc]
                            TRACED_MIN_TOTAL, TRACED_MIN_BOUNDED)
    if all(r.uss is not None for r in readings):
        uss = fit_signal(xs, [r.uss for r in readings], USS_FLOOR, USS_MIN_TOTAL,  # type: ignore[misc]
                         USS_MIN_BOUNDED)
    t = traced.verdict if traced else "clean"
    u = uss.verdict if uss else "clean"
    if u == "leak" and t == "bounded" and uss is not None and uss.late < NATIVE_AFTER_BOUNDED:
        # The Python heap filled up and stopped; USS lagging behind it (pools freed by
        # evictions are reused slowly) is not a native leak unless it keeps growing clearly.
        u = "bounded"
    if t == "leak" or u == "leak":
        kind = _kind(traced, uss)
        verdict = "leak"
    elif t == "bounded" or u == "bounded":
        verdict = "bounded"
        kind = "python" if t == "bounded" else "native"
    else:
        verdict, kind = "clean", None
    return Judgement(verdict, kind, traced, uss, _reason(verdict, kind, traced, uss))


def _kind(traced: Fit | None, uss: Fit | None) -> str:
    if traced is None or traced.verdict != "leak":
        return "native"
    if uss is None or uss.verdict != "leak":
        return "python"
    # Python objects cost USS beyond their traced size (allocator pools, list over-allocation):
    # ~2x for small ints here. "Well above" is more than twice that on top.
    gap = uss.slope - traced.slope
    if gap > max(USS_FLOOR, 2 * traced.slope, SIGMAS * uss.error):
        return "mixed"
    return "python"


def _reason(verdict: str, kind: str | None, traced: Fit | None, uss: Fit | None) -> str:
    def show(name: str, f: Fit | None) -> str:
        return f"{name} {f.slope:+.1f} ± {f.error:.1f} B/request" if f else f"{name} n/a"

    both = f"{show('traced', traced)}, {show('USS', uss)}"
    if verdict == "leak":
        if kind == "native" and traced is not None and traced.verdict == "bounded":
            return f"USS keeps growing per request after the Python heap stopped ({both})"
        if kind == "native":
            return f"USS grows per request and the Python heap does not ({both})"
        if kind == "mixed":
            return f"both grow, USS well above the Python heap ({both})"
        return f"the Python heap grows steadily, into the last rounds ({both})"
    if verdict == "bounded":
        return f"memory grew in the early rounds and stopped ({both})"
    return f"no growth beyond noise ({both})"


@dataclass
class Site:
    """An allocation site that grew: the user's line, its traceback, growth per request."""

    file: str
    line: int
    bytes_per_request: float
    count_per_request: float
    size_diff: int
    count_diff: int
    traceback: list[dict[str, Any]] = field(default_factory=list)
    user: bool = True
    code: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form (traceback oldest frame first; the user's frame has ``"user": true``)."""
        return {"file": self.file, "line": self.line,
                "bytes_per_request": round(self.bytes_per_request, 2),
                "count_per_request": round(self.count_per_request, 4),
                "size_diff": self.size_diff, "count_diff": self.count_diff,
                "user_code": self.user, "code": self.code, "traceback": self.traceback}


def group_sites(diffs: Iterable[tuple[Sequence[tuple[str, int]], int, int]], requests: int,
                limit: int = 10, min_bytes: int = 1024) -> list[Site]:
    """Group traceback diffs by the first frame in the user's code (from the allocation back).

    ``diffs`` holds (frames oldest first as (file, line), size_diff, count_diff). Allocations
    with no user frame are grouped by their most recent frame. Sorted by growth, biggest first,
    the sites in the user's code before the others.
    """
    groups: dict[tuple[str, int], list[Any]] = {}
    for frames, size, count in diffs:
        if not frames:
            continue
        user_index = next((i for i in range(len(frames) - 1, -1, -1)
                           if is_user_file(frames[i][0])), None)
        key = frames[user_index] if user_index is not None else frames[-1]
        entry = groups.setdefault(tuple(key), [0, 0, None, 0, user_index is not None])
        entry[0] += size
        entry[1] += count
        if entry[2] is None or size > entry[3]:
            entry[2], entry[3] = (frames, user_index), size
    sites = []
    per = max(requests, 1)
    for (file, line), (size, count, (frames, user_index), _, user) in groups.items():
        if size < min_bytes:
            continue
        tb = [{"file": f, "line": n, "user": i == user_index} for i, (f, n) in enumerate(frames)]
        sites.append(Site(file, line, size / per, count / per, size, count, tb, user))
    # The user's own lines first: an allocation with no user frame on its stack is the
    # framework's, and often a block first allocated there and reused from a free list for an
    # object the user's code keeps (tracemalloc remembers the first allocation only).
    sites.sort(key=lambda s: (not s.user, -s.size_diff))
    return sites[:limit]
