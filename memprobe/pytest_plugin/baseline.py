"""``--memprobe-baseline FILE``: each measured test's bytes per request, compared with the figure
stored for it, so that a change that makes a route cost more per request fails its test.

    pytest --memprobe-baseline .memprobe/baseline.json                            # compare
    pytest --memprobe-baseline .memprobe/baseline.json --memprobe-update-baseline # store

The file is JSON meant to be committed: one entry a test (its node id), one a route, with the
bytes per request measured (value and standard error, traced heap and USS) and the metric that
is compared (the marker's ``metric``, else the traced heap, which is exact to the byte). A route
fails when it grew by more than twice the standard error of the difference plus the tolerance
(``--memprobe-tolerance``, default :data:`DEFAULT_TOLERANCE` bytes per request). Tests and routes
the file does not know pass (updating the file adds them); with ``--memprobe-update-baseline``
nothing fails on the baseline, and the file is rewritten at the end of the session, keeping the
entries of tests that did not run.

Like the rest of the plugin, this module imports nothing heavy.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memprobe.units import format_bytes, format_rate, parse_size

#: Bytes per request a route may grow beyond its error bars before its test fails.
DEFAULT_TOLERANCE = 32.0
#: The file's format version.
FORMAT = 1
_METRIC_NAME = {"traced": "traced", "uss": "USS"}


class BaselineError(Exception):
    """The baseline file cannot be read (a usage error of the session)."""


@dataclass
class Baseline:
    """The stored figures (``tests[nodeid][route]``) and how they are compared."""

    path: Path
    tolerance: float = DEFAULT_TOLERANCE
    update: bool = False
    tests: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, tolerance: float = DEFAULT_TOLERANCE, update: bool = False) -> Baseline:
        """The baseline at ``path``; a missing file is an empty baseline (everything is new)."""
        baseline = cls(path, tolerance, update)
        if not path.exists():
            return baseline
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise BaselineError(f"memprobe baseline {path}: cannot be read ({err})") from None
        if not isinstance(data, dict) or data.get("result") != "pytest-baseline" or not isinstance(data.get("tests"), dict):
            raise BaselineError(f"memprobe baseline {path}: not a memprobe baseline (write one with "
                                "--memprobe-update-baseline)")
        baseline.tests = {str(k): dict(v) for k, v in data["tests"].items()}
        return baseline

    def regressions(self, nodeid: str, records: list[dict[str, Any]]) -> list[str]:
        """One line per route of the test that grew beyond the stored figure (none when updating)."""
        if self.update:
            return []
        stored = self.tests.get(nodeid, {})
        out = []
        for route, now in entries(records).items():
            before = stored.get(route)
            if before is None:
                continue
            metric = now["metric"] if now.get(now["metric"]) and before.get(now["metric"]) else next(
                (m for m in ("traced", "uss") if now.get(m) and before.get(m)), None)
            if metric is None:
                continue
            old, new = before[metric], now[metric]
            allowed = self.tolerance + 2 * math.hypot(old["error"], new["error"])
            if new["value"] - old["value"] > allowed:
                out.append(f"memprobe baseline: {nodeid} {route} grew from {_rate(old)} to {_rate(new)} "
                           f"B/request {_METRIC_NAME[metric]}, more than the {allowed:.1f} allowed (error bars + "
                           f"tolerance {format_bytes(self.tolerance)}; baseline {self.path})")
        return out

    def write(self, records: list[dict[str, Any]]) -> int:
        """Store the figures of every measured test in ``records`` (others are kept); the number
        of tests written."""
        by_test: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            if record.get("nodeid") and record.get("routes"):
                by_test.setdefault(record["nodeid"], []).append(record)
        tests = dict(self.tests)
        for nodeid, mine in by_test.items():
            tests[nodeid] = entries(mine)
        from memprobe.results.plugin import BaselineResult

        data = BaselineResult(tests, format=FORMAT).to_dict()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        return len(by_test)


def entries(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``route -> {"metric", "traced", "uss", "requests"}`` of one test's records (a route measured
    twice by one test keeps its last figure)."""
    out: dict[str, dict[str, Any]] = {}
    for record in records:
        metric = (record.get("limits") or {}).get("metric") or "traced"
        for route in record.get("routes") or []:
            rates = route.get("bytes_per_request") or {}
            out[route["route"]] = {"metric": metric, "traced": rates.get("traced"), "uss": rates.get("uss"),
                                   "requests": route.get("requests")}
    return out


def tolerance_of(value: str | None) -> float:
    """``--memprobe-tolerance``/``memprobe_tolerance`` in bytes per request ("32", "64 B", "0.5 KiB")."""
    if value is None or str(value).strip() == "":
        return DEFAULT_TOLERANCE
    size = parse_size(str(value).strip())
    if size < 0:
        raise ValueError(f"the tolerance cannot be negative: {value!r}")
    return float(size)


def _rate(rate: dict[str, float]) -> str:
    return format_rate(rate["value"], rate["error"])
