"""Repeated rounds of one measurement folded into one row: medians, and the spread around them.

Works on the JSON form of rounds (dicts), so a row of medians has exactly a round's keys.
"""
from __future__ import annotations

import statistics
from typing import Any

_SPREAD_KEYS = {
    "rss_after": ("after", "rss"),
    "uss_after": ("after", "uss"),
    "uss_delta": ("delta", "uss"),
    "rss_delta": ("delta", "rss"),
    "throughput_rps": ("throughput_rps", None),
    "p50_ms": ("latency_ms", "p50"),
    "p99_ms": ("latency_ms", "p99"),
}


def _pick(row: dict[str, Any], path: tuple[str, str | None]) -> float | None:
    value = row.get(path[0])
    if path[1] is not None:
        value = value.get(path[1]) if isinstance(value, dict) else None
    return value if isinstance(value, (int, float)) else None


def spread(rounds: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Min, max and standard deviation of each key figure over the rounds."""
    out = {}
    for name, path in _SPREAD_KEYS.items():
        values = [v for v in (_pick(r, path) for r in rounds) if v is not None]
        if values:
            out[name] = {"min": min(values), "max": max(values),
                         "stdev": round(statistics.pstdev(values), 3)}
    return out


def median_row(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Field-wise median of numeric leaves; non-numeric leaves from the first round."""

    def merge(values: list[Any]) -> Any:
        first = values[0]
        if isinstance(first, dict):
            keys = {k for v in values if isinstance(v, dict) for k in v}
            return {k: merge([v.get(k) for v in values if isinstance(v, dict)]) for k in sorted(keys)}
        nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if nums and len(nums) == len(values):
            m = statistics.median(nums)
            return int(m) if all(isinstance(v, int) for v in nums) else round(m, 3)
        return first

    lists = ("samples", "steps", "processes")
    merged = {k: merge([r.get(k) for r in rounds]) for k in rounds[0] if k not in lists}
    merged["samples"] = rounds[0].get("samples")  # the first round's series, for the plots
    if rounds[0].get("steps") is not None:
        merged["steps"] = [merge([r["steps"][i] for r in rounds if len(r.get("steps") or []) > i])
                           for i in range(len(rounds[0]["steps"]))]
    if rounds[0].get("processes") is not None:
        merged["processes"] = rounds[0]["processes"]  # pids differ between rounds: the first's
    merged["pid"] = rounds[0].get("pid")
    merged["pids"] = [r.get("pid") for r in rounds]
    return merged
