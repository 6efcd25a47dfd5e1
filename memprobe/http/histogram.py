"""Latency in constant memory: a log-bucketed histogram, as HdrHistogram keeps it."""
from __future__ import annotations

import math


class LatencyHistogram:
    """Durations in log-spaced buckets, each 1 % wider than the last (as HdrHistogram does).

    Any percentile is within 1 % of the exact one; min, max, count and mean are exact. Memory
    is bounded by the bucket count (~2,100 from 1 µs to 1 h), whatever the number of samples.
    """

    _FLOOR = 1e-6
    _LOG_STEP = math.log(1.01)

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = 0.0

    def add(self, seconds: float) -> None:
        """Record one duration."""
        index = int(math.log(seconds / self._FLOOR) / self._LOG_STEP) if seconds > self._FLOOR else 0
        self.counts[index] = self.counts.get(index, 0) + 1
        self.count += 1
        self.total += seconds
        if seconds < self.min:
            self.min = seconds
        if seconds > self.max:
            self.max = seconds

    def merge(self, other: LatencyHistogram) -> None:
        """Add every sample of ``other`` to this histogram."""
        for index, n in other.counts.items():
            self.counts[index] = self.counts.get(index, 0) + n
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0-100) in seconds; 0.0 when empty."""
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(self.count * q / 100.0))
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                # geometric middle of the bucket, clipped to what was really seen
                value = self._FLOOR * math.exp((index + 0.5) * self._LOG_STEP)
                return min(max(value, self.min), self.max)
        return self.max

    def summary_ms(self) -> dict[str, float]:
        """p50/p90/p99/max/min/mean in milliseconds, as the JSON contract has them."""
        if not self.count:
            return {k: 0.0 for k in ("p50", "p90", "p99", "max", "min", "mean")}
        return {
            "p50": round(self.percentile(50) * 1e3, 3),
            "p90": round(self.percentile(90) * 1e3, 3),
            "p99": round(self.percentile(99) * 1e3, 3),
            "max": round(self.max * 1e3, 3),
            "min": round(self.min * 1e3, 3),
            "mean": round(self.total / self.count * 1e3, 3),
        }
