"""Streaming statistics in bounded memory: co-moments of vectors that merge (Chan et al.),
running means, and least squares solved from the co-moments alone (pure Python, no numpy).

A day of windows never keeps the windows: a series keeps a fixed number of epochs, each one
the count, mean vector and co-moment matrix of its points, and merges neighbours when it has
too many. Everything a fit needs (slopes, standard errors, variance inflation, which regressor
another is collinear with) comes from those sums.
"""
from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field

#: With exactly collinear regressors (the ridge's inverse), an entangled one's VIF passes this:
#: its slope is not known at all.
VIF_COLLINEAR = 1e6


@dataclass
class Moments:
    """Count, mean vector and co-moment matrix (sums of products of deviations from the mean)
    of vectors; the dimension may grow (a new coordinate was 0 in every earlier point)."""

    n: int = 0
    mean: list[float] = field(default_factory=list)
    co: list[list[float]] = field(default_factory=list)
    _mirrored: bool = field(default=True, repr=False, compare=False)

    def grow(self, dim: int) -> None:
        """Pad to ``dim`` coordinates (earlier points had 0 there)."""
        while len(self.mean) < dim:
            for row in self.co:
                row.append(0.0)
            self.mean.append(0.0)
            self.co.append([0.0] * len(self.mean))

    def add(self, x: Sequence[float]) -> None:
        """Welford's update with one point. Only the upper triangle is kept current: read
        the matrix through :meth:`at`, or :meth:`symmetric` first."""
        self.grow(len(x))
        self.n += 1
        n, mean, co = self.n, self.mean, self.co
        d = len(mean)
        xs = list(x) + [0.0] * (d - len(x))
        before = [a - b for a, b in zip(xs, mean)]
        mean[:] = [m + b / n for m, b in zip(mean, before)]
        after = [a - b for a, b in zip(xs, mean)]
        for i in range(d):
            bi = before[i]
            if bi:
                row = co[i]
                row[i:] = [c + bi * a for c, a in zip(row[i:], after[i:])]
        self._mirrored = False

    @classmethod
    def of(cls, points: Sequence[Sequence[float]]) -> Moments:
        """The moments of a batch of points at once (two passes, the products summed in C:
        several times faster per point than :meth:`add`)."""
        if not points:
            return cls()
        d = max(len(p) for p in points)
        n = len(points)
        cols = [[(p[i] if i < len(p) else 0.0) for p in points] for i in range(d)]
        mean = [math.fsum(c) / n for c in cols]
        dev = [[v - m for v in c] if any(c) else None for c, m in zip(cols, mean)]
        co = [[0.0] * d for _ in range(d)]
        for i in range(d):
            di = dev[i]
            if di is None:
                continue
            for j in range(i, d):
                dj = dev[j]
                if dj is not None:
                    co[i][j] = co[j][i] = sum(map(operator.mul, di, dj))
        return cls(n, mean, co)

    def at(self, i: int, j: int) -> float:
        """The co-moment of coordinates ``i`` and ``j``."""
        return self.co[i][j] if i <= j else self.co[j][i]

    def symmetric(self) -> Moments:
        """Itself, its lower triangle made a mirror of the upper one."""
        if not self._mirrored:
            d = len(self.mean)
            for i in range(d):
                for j in range(i + 1, d):
                    self.co[j][i] = self.co[i][j]
            self._mirrored = True
        return self

    def merged(self, other: Moments) -> Moments:
        """The moments of both sets of points (neither is changed)."""
        d = max(len(self.mean), len(other.mean))
        a, b = self.symmetric().copy(), other.symmetric().copy()
        a.grow(d)
        b.grow(d)
        if a.n == 0:
            return b
        if b.n == 0:
            return a
        n = a.n + b.n
        delta = [b.mean[i] - a.mean[i] for i in range(d)]
        w = a.n * b.n / n
        mean = [a.mean[i] + delta[i] * b.n / n for i in range(d)]
        co = [[a.co[i][j] + b.co[i][j] + delta[i] * delta[j] * w for j in range(d)] for i in range(d)]
        return Moments(n, mean, co)

    def without(self, part: Moments) -> Moments:
        """The moments of these points less those of ``part``, a subset of them (the inverse of
        :meth:`merged`: a delete-one jackknife subtracts each part from the total once instead
        of merging all the others again)."""
        d = max(len(self.mean), len(part.mean))
        t, a = self.copy(), part.copy()
        t.grow(d)
        a.grow(d)
        n = t.n - a.n
        if a.n == 0 or n <= 0:
            return t if a.n == 0 else Moments()
        mean = [(t.n * t.mean[i] - a.n * a.mean[i]) / n for i in range(d)]
        delta = [mean[i] - a.mean[i] for i in range(d)]
        w = a.n * n / t.n
        co = [[t.co[i][j] - a.co[i][j] - delta[i] * delta[j] * w for j in range(d)] for i in range(d)]
        return Moments(n, mean, co)

    def copy(self) -> Moments:
        """An independent copy (symmetric)."""
        self.symmetric()
        return Moments(self.n, list(self.mean), [list(r) for r in self.co])


def merge_all(parts: Sequence[Moments]) -> Moments:
    """The moments of every part together."""
    out = Moments()
    for p in parts:
        out = out.merged(p)
    return out


@dataclass
class Running:
    """Count, mean and sum of squared deviations of numbers (Welford), mergeable."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, x: float) -> None:
        """One more number."""
        self.n += 1
        d = x - self.mean
        self.mean += d / self.n
        self.m2 += d * (x - self.mean)

    def merged(self, other: Running) -> Running:
        """Both sets together."""
        if self.n == 0:
            return Running(other.n, other.mean, other.m2)
        if other.n == 0:
            return Running(self.n, self.mean, self.m2)
        n = self.n + other.n
        d = other.mean - self.mean
        return Running(n, self.mean + d * other.n / n, self.m2 + other.m2 + d * d * self.n * other.n / n)

    @classmethod
    def of_sums(cls, n: int, total: float, squares: float) -> Running:
        """The same from a count, a sum and a sum of squares (as an agent sends them)."""
        mean = total / n if n else 0.0
        return cls(n, mean, max(0.0, squares - n * mean * mean))

    @property
    def error(self) -> float:
        """Standard error of the mean (inf below two numbers)."""
        if self.n < 2:
            return math.inf
        return math.sqrt(self.m2 / (self.n - 1) / self.n)


def invert(matrix: Sequence[Sequence[float]]) -> list[list[float]] | None:
    """The inverse by Gauss-Jordan with partial pivoting; None when singular."""
    n = len(matrix)
    a = [list(map(float, row)) + [1.0 if i == j else 0.0 for j in range(n)] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        if abs(a[pivot][col]) < 1e-12:
            return None
        a[col], a[pivot] = a[pivot], a[col]
        p = a[col][col]
        a[col] = [v / p for v in a[col]]
        for r in range(n):
            if r != col and a[r][col]:
                f = a[r][col]
                a[r] = [v - f * c for v, c in zip(a[r], a[col])]
    return [row[n:] for row in a]


@dataclass
class Coefficient:
    """One regressor's slope, its standard error, its variance inflation factor and the
    regressor it is most entangled with (the largest partial correlation)."""

    value: float
    error: float
    vif: float
    #: the other regressors' partial correlations with this one (absolute)
    partials: dict[int, float] = field(default_factory=dict)

    def partner(self, among: Sequence[int] | None = None) -> int | None:
        """The regressor (of ``among``, default any) most entangled with this one."""
        cands = {k: v for k, v in self.partials.items() if among is None or k in among}
        return max(cands, key=lambda k: cands[k]) if cands else None


@dataclass
class Regression:
    """Least squares of one column on others, with a constant."""

    coefficients: dict[int, Coefficient]
    #: residual standard deviation and degrees of freedom
    sigma: float
    dof: int


def regress(m: Moments, y: int, xs: Sequence[int]) -> Regression | None:
    """Regress coordinate ``y`` on coordinates ``xs`` (and a constant) from the co-moments.
    Regressors that never varied are left out. Collinear regressors keep a coefficient with an
    infinite error, their VIF and partner say with what. None without enough points."""
    m = m.symmetric()
    xs = [x for x in xs if x < len(m.mean) and m.co[x][x] > 0]
    p = len(xs)
    dof = m.n - p - 1
    if p == 0 or dof < 1:
        return None
    scale = [math.sqrt(m.co[x][x]) for x in xs]
    corr = [[m.co[a][b] / (scale[i] * scale[j]) for j, b in enumerate(xs)] for i, a in enumerate(xs)]
    inv = invert(corr)
    if inv is None:
        # Exactly collinear: a tiny ridge gives the precision matrix's pattern (who with whom);
        # the slopes of the entangled regressors are then not known at all.
        inv = invert([[c + (1e-9 if i == j else 0.0) for j, c in enumerate(row)] for i, row in enumerate(corr)])
        exact = True
    else:
        exact = False
    if inv is None:
        return None
    cxy = [m.co[x][y] / scale[i] for i, x in enumerate(xs)]
    beta_std = [sum(inv[i][j] * cxy[j] for j in range(p)) for i in range(p)]
    rss = max(m.co[y][y] - sum(b * c for b, c in zip(beta_std, cxy)), 0.0)
    sigma = math.sqrt(rss / dof)
    out: dict[int, Coefficient] = {}
    for i, x in enumerate(xs):
        vif = inv[i][i]
        partials = {xs[j]: abs(inv[i][j]) / math.sqrt(inv[i][i] * inv[j][j]) for j in range(p)
                    if j != i and inv[i][i] > 0 and inv[j][j] > 0}
        collinear = exact and vif > VIF_COLLINEAR
        error = math.inf if collinear else sigma * math.sqrt(max(vif, 0.0)) / scale[i]
        out[x] = Coefficient(beta_std[i] / scale[i], error, vif, partials)
    return Regression(out, sigma, dof)


def with_sum(m: Moments, a: int, b: int) -> tuple[Moments, int]:
    """``m`` with one more coordinate, the sum of coordinates ``a`` and ``b`` (two routes
    counted as one); answers it and the new coordinate."""
    m = m.symmetric()
    out = m.copy()
    d = len(out.mean)
    out.grow(d + 1)
    out.mean[d] = m.mean[a] + m.mean[b]
    for j in range(d):
        out.co[d][j] = out.co[j][d] = m.co[a][j] + m.co[b][j]
    out.co[d][d] = m.co[a][a] + 2 * m.co[a][b] + m.co[b][b]
    return out, d


def combined(m: Moments, y: int, weights: dict[int, float]) -> tuple[float, float] | None:
    """Slope and standard error of ``y`` against one regressor made of others summed with
    ``weights`` (a worker's requests of every route: growth per request served)."""
    m = m.symmetric()
    var = sum(wa * wb * m.co[a][b] for a, wa in weights.items() for b, wb in weights.items()
              if a < len(m.co) and b < len(m.co))
    if var <= 0 or m.n < 3 or y >= len(m.co):
        return None
    cov = sum(w * m.co[a][y] for a, w in weights.items() if a < len(m.co))
    slope = cov / var
    rss = max(m.co[y][y] - slope * cov, 0.0)
    return slope, math.sqrt(rss / (m.n - 2) / var)
