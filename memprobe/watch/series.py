"""One series of windows (a worker's, or the server's) as the analysis keeps it: the points of
its regression in bounded epochs, the means of its requests that ran alone, and the
delete-one-epoch jackknife of a fit over them (pure: no I/O; :mod:`memprobe.watch.analysis`
judges them)."""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from memprobe.watch.stats import Moments, Regression, Running, merge_all, regress

#: the heap signals a window can carry, and their coordinates in a series' vectors (0 is time)
SIGNALS = ("blocks", "heap_bytes", "uss")
COORD = {"blocks": 1, "heap_bytes": 2, "uss": 3}
ROUTE0 = 4

#: Epochs: points per epoch at first, epochs kept before neighbours are merged.
EPOCH_POINTS = 8
EPOCHS_KEPT = 32
#: Points folded into an epoch's moments at once.
BATCH = 64


@dataclass
class Epochs:
    """A series' points in at most :data:`EPOCHS_KEPT` closed epochs plus an open one: the
    regression's moments and, per route, the running mean of requests that ran alone."""

    size: int = EPOCH_POINTS
    closed: list[tuple[Moments, dict[int, Running]]] = field(default_factory=list)
    moments: Moments = field(default_factory=Moments)
    alone: dict[int, Running] = field(default_factory=dict)
    points: int = 0
    #: points not yet folded into ``moments`` (at most :data:`BATCH`: folding a batch at once
    #: is several times cheaper than point by point)
    pending: list[list[float]] = field(default_factory=list)

    def flush(self) -> None:
        """Fold the pending points into the open epoch."""
        if self.pending:
            self.moments = self.moments.merged(Moments.of(self.pending))
            self.pending = []

    def add(self, x: list[float] | None, alone: dict[int, list[int]]) -> None:
        """A point (None: only alone deltas) and its window's alone deltas."""
        if x is not None:
            self.pending.append(x)
            if len(self.pending) >= BATCH:
                self.flush()
        for route, deltas in alone.items():
            r = self.alone.setdefault(route, Running())
            for d in deltas:
                r.add(float(d))
        self.points += 1
        if self.points >= self.size:
            self.flush()
            self.closed.append((self.moments, self.alone))
            self.moments, self.alone, self.points = Moments(), {}, 0
            if len(self.closed) > EPOCHS_KEPT:
                pairs = zip(self.closed[0::2], self.closed[1::2])
                merged = [(a[0].merged(b[0]), merge_alone([a[1], b[1]])) for a, b in pairs]
                if len(self.closed) % 2:
                    merged.append(self.closed[-1])
                self.closed, self.size = merged, self.size * 2

    def parts(self, half: str = "") -> list[tuple[Moments, dict[int, Running]]]:
        """Every epoch, or the ``early`` or ``late`` half of them (by epochs; the open one is
        always in the late half). Halves need two closed epochs."""
        self.flush()
        everything = self.closed + [(self.moments, self.alone)]
        if not half:
            return everything
        if len(self.closed) < 2:
            return []
        cut = (len(self.closed) + 1) // 2
        return everything[:cut] if half == "early" else everything[cut:]

    def total(self, half: str = "") -> tuple[Moments, dict[int, Running]]:
        """The merged moments and alone means of :meth:`parts`."""
        parts = self.parts(half)
        return merge_all([p[0] for p in parts]), merge_alone([p[1] for p in parts])


#: Epochs a fit needs for its delete-one-epoch jackknife; with fewer, its errors are not known.
MIN_JACKKNIFE = 4


def jackknifed(fit: Regression, parts: list[Moments], y: int, xs: list[int]) -> Regression:
    """``fit`` with each coefficient's error at least its delete-one-epoch jackknife's.

    Why: the heap's level is regressed over windows, and its residuals are not independent: a
    leak that only some request data causes (a POST with a certain field) leaves a random walk
    in them, and the least-squares error, which assumes independent residuals, was 5 times too
    small (a clean route called a leak at +0.56 ± 0.11 blocks/request). Epochs are runs of
    consecutive windows, so leaving one out at a time measures how much the slope really moves
    with the traffic it saw."""
    if len(parts) < MIN_JACKKNIFE:
        coefficients = {k: replace(c, error=math.inf) for k, c in fit.coefficients.items()}
        return replace(fit, coefficients=coefficients)
    slopes: dict[int, list[float]] = {k: [] for k in fit.coefficients}
    total = merge_all(parts)
    for part in parts:
        other = regress(total.without(part), y, xs)
        for k in slopes:
            c = other.coefficients.get(k) if other is not None else None
            slopes[k].append(c.value if c is not None and math.isfinite(c.value) else math.nan)
    n = len(parts)
    coefficients = {}
    for k, c in fit.coefficients.items():
        values = slopes[k]
        if any(math.isnan(v) for v in values):
            coefficients[k] = replace(c, error=math.inf)
            continue
        mean = sum(values) / n
        jack = math.sqrt((n - 1) / n * sum((v - mean) ** 2 for v in values))
        coefficients[k] = replace(c, error=max(c.error, jack))
    return replace(fit, coefficients=coefficients)


#: Keys of an epoch's alone means besides the routes' own (``r``): ``-1 - r``, the deltas of
#: requests that ran just after one of route ``r``; :data:`ALL_ALONE`, every delta.
ALL_ALONE = -1_000_000


def corrected(alone: dict[int, Running], r: int) -> Running | None:
    """Route ``r``'s mean delta with what requests leave to be freed during the next one taken
    out (None: no delta of its own).

    A request's delta is what it keeps, plus what it leaves for later (objects freed only once
    the next request runs: a gc pass, a framework's per-thread state reset at the next
    request), minus what the one before it left: ``d = r_A + k_A - k_prev``. Over a random mix,
    the mean of route A's deltas is ``r_A + k_A - k̄`` and the mean of the deltas that follow a
    request of A is ``r̄ + k̄ - k_A``; their sum less the mean of all deltas (``r̄``) is
    ``r_A``. Measured under gunicorn sync with a Locust mix: ``GET /items`` alone +8.0 ± 1.3
    blocks a request, ``GET /search`` -6.5 ± 3.7, both keeping nothing. Without the deltas that
    follow (an agent before this change), the plain mean."""
    own = alone.get(r)
    if own is None:
        return None
    after, every = alone.get(-1 - r), alone.get(ALL_ALONE)
    if after is None or every is None or after.n < 2 or every.n < 2:
        return own
    mean = own.mean + after.mean - every.mean
    error = math.sqrt(own.error ** 2 + after.error ** 2 + every.error ** 2)
    return Running(own.n, mean, error * error * (own.n - 1) * own.n if own.n > 1 else 0.0)


def merge_alone(parts: Iterable[dict[int, Running]]) -> dict[int, Running]:
    """The alone means of several epochs, key by key, merged."""
    out: dict[int, Running] = {}
    for part in parts:
        for route, r in part.items():
            out[route] = out.get(route, Running()).merged(r)
    return out


@dataclass
class Series:
    """One worker's (``pid``) or the server's (None) cumulative growth and requests."""

    pid: int | None
    t0: float
    signals: tuple[str, ...] | None = None
    cumulative: dict[int, int] = field(default_factory=dict)
    growth: dict[str, float] = field(default_factory=dict)
    #: every request seen (with windows without a difference), for the counts shown
    seen: dict[int, int] = field(default_factory=dict)
    first_t: float | None = None
    last_t: float = 0.0
    epochs: Epochs = field(default_factory=Epochs)

    def count(self, start: float, end: float, requests: dict[int, int]) -> None:
        """Requests seen in a window (shown; whether measured or not)."""
        self.first_t = start if self.first_t is None else min(self.first_t, start)
        self.last_t = max(self.last_t, end)
        for r, n in requests.items():
            self.seen[r] = self.seen.get(r, 0) + n

    def add(self, t: float, requests: dict[int, int], diffs: dict[str, int],
            alone: dict[int, list[int]]) -> list[float] | None:
        """A measured point: the window's requests and each signal's change. Answers the
        point's vector (None when a signal this series tracks was not read this time: the
        point is left out of the fit, its growth comes with the next difference)."""
        if self.signals is None:
            self.signals = tuple(s for s in SIGNALS if s in diffs)
        for r, n in requests.items():
            self.cumulative[r] = self.cumulative.get(r, 0) + n
        for s, d in diffs.items():
            self.growth[s] = self.growth.get(s, 0.0) + d
        x: list[float] | None = None
        if all(s in diffs for s in self.signals):
            x = [t - self.t0, 0.0, 0.0, 0.0]
            for s in self.signals:
                x[COORD[s]] = self.growth[s]
            top = max(self.cumulative, default=-1)
            x += [float(self.cumulative.get(r, 0)) for r in range(top + 1)]
        self.epochs.add(x, alone)
        return x
