"""When a route has been measured enough: the sequential protocol's stopping rule (pure).

A default hunt does not send a fixed count. After each reading it asks whether the series
already answers, and stops the route when it does; a maximum (requests, seconds) ends the
routes that stay undecided, and :func:`memprobe.hunt.model.judge` gives their verdict as it
would after a fixed count. The verdict is always ``judge``'s: this module only says *when* the
evidence is enough for it, from the noise each signal shows.

For each signal read (the traced heap; the outside USS or PSS), with ``N`` the requests
measured, the least-squares slope ``b`` and its standard error ``se`` (from the residuals of
the fit: the noise measured on this route, not a constant):

* **sensitivity** - the smallest slope a leak must have had to clear every threshold of the
  judge by two standard errors: ``max(floor, min_total / N, SIGMAS * se) + 2 * se`` (the judge
  calls a leak only once it grew ``min_total`` bytes in all and its slope clears ``floor`` and
  ``SIGMAS`` standard errors). It is what the report states: "could see leaks of N B/request
  or more".
* **leak** - ``judge`` says leak, after at least :data:`MIN_ROUNDS_LEAK` rounds and as many
  requests as a clean verdict needs (:func:`clean_requests`: a cache that fills, a dict that
  grows until it compacts, look like a leak over fewer), with the slope
  :data:`LEAK_SIGMAS` standard errors above the floor (more than the judge's 3: the question is
  asked after every round), more growth in all than bounded growth may show (the judge's
  ``min_bounded``: Tornado's ``re`` cache churning 2,000 patterns grew +9 to +14 B/request
  for its first ~3,000 requests, then stopped), and growth above the previous peak in both
  halves of the rounds (early above the floor, late above half the slope): bounded warm-up
  growth stops in the first half and is not called a leak. Every signal the judge calls
  leaking must pass, not only one (CherryPy's ``malloc`` leak, clear in USS, once showed the
  traced heap at +17.0 ± 4.9 B/request: called then, it would have been "mixed").
* **clean** - ``judge`` says clean and every signal is flat within what a leak at the target
  (``sensitivity`` of the settings: 16 B/request traced by default; the outside signal's target
  is as many times larger as its bar in total, ``min_total``) would have shown by now: the
  upper bound ``b + SIGMAS * se`` is below the target - over the whole series, or over its
  late half, where a steady leak shows as much and warm-up growth no longer does - and the
  sensitivity reached the target; and no signal's slope is :data:`LEAK_SIGMAS` standard errors
  above its floor: a small steady leak (one pointer, 8 B/request) is below the target but not
  flat, and is measured on until it has grown enough for the judge (or the maximum ends it).
* **bounded** - ``judge`` says bounded and the late half of the rounds is flat by the same
  test as clean, measured on that half alone: growth that stopped and stayed flat long enough
  for a leak at the target to show.

The signals are named by :class:`Signal` (which field of a reading, its floor and totals), so
another signal (object counts, allocated blocks) can be judged by the same rule.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from memprobe.hunt import model
from memprobe.results.hunt import Fit, Judgement, Reading

#: Rounds before a leak may be called early, and before anything may be.
MIN_ROUNDS_LEAK = 6
MIN_ROUNDS = 5
#: Standard errors above the floor for an early leak (the judge asks for 3 once).
LEAK_SIGMAS = 5.0
#: Standard errors of margin in the sensitivity: a leak that large is found ~98% of the time.
MARGIN_SIGMAS = 2.0
#: The "last round" of the judge, with many small rounds: the last fifth of the requests
#: (the last of today's five rounds).
LAST_SHARE = 0.2
#: The traced heap's target: a default hunt stops a flat route once it could see leaks of
#: this many bytes per request (one small int per request is ~36).
TARGET = 16.0


@dataclass(frozen=True)
class Signal:
    """One signal of a reading and the judge's thresholds for it."""

    name: str
    floor: float
    min_total: int
    #: what bounded growth may reach (the judge's bar for "bounded"): an early leak must
    #: have grown more, so that a cache filling for its first thousands of requests is not one
    min_bounded: int

    def values(self, readings: Sequence[Reading]) -> list[int] | None:
        """The signal's values (None when a reading lacks it)."""
        ys = [getattr(r, self.name) for r in readings]
        return None if any(y is None for y in ys) else ys

    def target(self, traced_target: float) -> float:
        """This signal's target for a traced target: scaled by its bar in total."""
        return traced_target * self.min_total / model.TRACED_MIN_TOTAL


SIGNALS = (Signal("traced", model.TRACED_FLOOR, model.TRACED_MIN_TOTAL, model.TRACED_MIN_BOUNDED),
           Signal("uss", model.USS_FLOOR, model.USS_MIN_TOTAL, model.USS_MIN_BOUNDED))


@dataclass(frozen=True)
class Decision:
    """Why a route stops: ``verdict`` (the judge's), ``because`` (``leak``, ``clean``,
    ``bounded``: the evidence sufficed; ``max_requests``, ``time_limit``: the maximum ended it;
    ``fixed``: the fixed-count protocol ran its rounds) and the judgement."""

    because: str
    judgement: Judgement


def sensitivity(xs: Sequence[int], ys: Sequence[int], signal: Signal) -> float:
    """The smallest slope (B/request) a leak must have had to be called one, given the noise
    of ``ys`` and the requests ``xs`` span (see the module's docstring); inf with < 3 points."""
    if len(xs) < 3 or xs[-1] <= xs[0]:
        return math.inf
    _, se = model.least_squares(xs, ys)
    if not math.isfinite(se):
        return math.inf
    return max(signal.floor, signal.min_total / (xs[-1] - xs[0]), model.SIGMAS * se) + MARGIN_SIGMAS * se


def sensitivities(readings: Sequence[Reading]) -> dict[str, float | None]:
    """Per signal, :func:`sensitivity` over the whole series (None for a signal not read)."""
    if (step := model.one_off_step(readings)) is not None:
        readings = model.without_step(readings, step)  # as the judge reads them
    xs = [r.requests for r in readings]
    out: dict[str, float | None] = {}
    for s in SIGNALS:
        ys = s.values(readings)
        out[s.name] = None if ys is None or len(ys) < 3 else sensitivity(xs, ys, s)
    return out


def below(xs: Sequence[int], ys: Sequence[int], target: float) -> bool:
    """Whether the slope's upper bound (``SIGMAS`` standard errors) is below ``target``, over
    the whole series or over its late half: a steady leak shows in the late half as much as in
    the whole, warm-up growth (a server's first connections, lazy state) only early."""
    half = (len(xs) - 1) // 2
    for start in (0, half) if len(xs) - half >= 4 else (0,):
        slope, se = model.least_squares(xs[start:], ys[start:])
        if math.isfinite(se) and slope + model.SIGMAS * se < target:
            return True
    return False


def flat(xs: Sequence[int], ys: Sequence[int], signal: Signal, target: float) -> bool:
    """Whether ``ys`` is flat within what a leak at ``target`` would have shown over ``xs``:
    the slope's upper bound (:func:`below`) and the sensitivity below the target."""
    if len(xs) < 4:
        return False
    return below(xs, ys, target) and sensitivity(xs, ys, signal) <= target


def clean_requests(target: float = TARGET) -> int:
    """Measured requests before a flat route can be called clean: a leak at the target must
    have grown every signal's ``min_total`` by then (the targets scale alike: one count)."""
    return math.ceil(model.TRACED_MIN_TOTAL / target)


def decide(readings: Sequence[Reading], memory: str = "uss", target: float = TARGET) -> Decision | None:
    """The decision after the latest reading (``readings[0]`` the baseline), or None to go on."""
    rounds = len(readings) - 1
    if rounds < MIN_ROUNDS:
        return None
    judgement = model.judge(readings, memory, LAST_SHARE)
    if (step := model.one_off_step(readings)) is not None:
        readings = model.without_step(readings, step)  # as the judge read them
    xs = [r.requests for r in readings]
    read = [(s, ys) for s in SIGNALS if (ys := s.values(readings)) is not None]
    fits = {"traced": judgement.traced, "uss": judgement.uss}

    def grows(f: Fit | None, s: Signal) -> bool:
        return f is not None and f.slope - LEAK_SIGMAS * f.error > s.floor

    if judgement.verdict == "leak":
        if rounds < MIN_ROUNDS_LEAK or xs[-1] - xs[0] < clean_requests(target):
            return None
        leaking = [(s, f) for s, _ in read if (f := fits[s.name]) is not None and f.verdict == "leak"]
        clear = [s for s, f in leaking
                 if grows(f, s) and f.total >= s.min_bounded
                 and f.early > s.floor and f.late > max(s.floor, 0.5 * f.slope)]
        # Every signal the judge calls leaking must be clear, not only one: a signal at three
        # standard errors decides the kind (python, native, mixed) as much as the clear one.
        return Decision("leak", judgement) if clear and len(clear) == len(leaking) else None
    if judgement.verdict == "clean":
        growing = any(grows(fits[s.name], s) for s, _ in read)
        if not growing and all(flat(xs, ys, s, s.target(target)) for s, ys in read):
            return Decision("clean", judgement)
        return None
    half = rounds // 2
    if all(flat(xs[half:], ys[half:], s, s.target(target)) for s, ys in read):
        return Decision("bounded", judgement)
    return None
