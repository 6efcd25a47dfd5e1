"""The figures of an HTTP load as results keep them: counts, rate, latency, time.

A live :class:`~memprobe.http.hammer.LoadResult` carries its latency histogram; a result read
back from JSON has only the percentiles. :class:`LoadFigures` is what both have, so a compare
round or a hammer result is the same object whether it was just measured or read from a file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from memprobe.http.hammer import LoadResult
from memprobe.process.memory import FIELDS, MemoryReading

LATENCY_KEYS = ("min", "mean", "p50", "p90", "p99", "max")


@dataclass
class LoadFigures:
    """Requests sent and answered, throughput, latency percentiles (ms) and duration."""

    url: str = ""
    mode: str = ""
    concurrency: int = 0
    timeout_s: float = 0.0
    sent: int = 0
    ok: int = 0
    failed: int = 0
    timeouts: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    status_counts: dict[str, int] = field(default_factory=dict)
    throughput_rps: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    duration_s: float = 0.0
    connections_opened: int = 0

    @classmethod
    def from_load(cls, load: LoadResult) -> LoadFigures:
        """The figures of a load just run."""
        return cls.from_dict(load.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadFigures:
        """Read the load's keys of a JSON object (``requests`` holds the counts)."""
        req = data.get("requests") or {}
        latency = data.get("latency_ms") or {}
        return cls(url=str(data.get("url") or ""), mode=str(data.get("mode") or ""),
                   concurrency=int(data.get("concurrency") or 0),
                   timeout_s=float(data.get("timeout_s") or 0.0), sent=int(req.get("sent") or 0),
                   ok=int(req.get("ok") or 0), failed=int(req.get("failed") or 0),
                   timeouts=int(req.get("timeouts") or 0), errors=dict(req.get("errors") or {}),
                   status_counts=dict(req.get("status_counts") or {}),
                   throughput_rps=float(data.get("throughput_rps") or 0.0),
                   latency_ms={str(k): float(v) for k, v in latency.items() if v is not None},
                   duration_s=float(data.get("duration_s") or 0.0),
                   connections_opened=int(data.get("connections_opened") or 0))

    def requests_dict(self) -> dict[str, Any]:
        """The ``requests`` object of the JSON: counts, errors by name, statuses."""
        return {"sent": self.sent, "ok": self.ok, "failed": self.failed, "timeouts": self.timeouts,
                "errors": dict(self.errors), "status_counts": dict(sorted(self.status_counts.items()))}

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract, as :meth:`LoadResult.to_dict` writes it."""
        return {"url": self.url, "mode": self.mode, "concurrency": self.concurrency,
                "timeout_s": self.timeout_s, "requests": self.requests_dict(),
                "throughput_rps": self.throughput_rps, "latency_ms": dict(self.latency_ms),
                "duration_s": self.duration_s, "connections_opened": self.connections_opened}


def reading_dict(reading: MemoryReading | None) -> dict[str, int | None] | None:
    """A reading's memory fields (no timestamp), as compare rows hold them."""
    return None if reading is None else {k: getattr(reading, k) for k in FIELDS}


def reading_from(data: dict[str, Any] | None) -> MemoryReading | None:
    """A :class:`MemoryReading` from its JSON (None stays None)."""
    if not data:
        return None
    return MemoryReading(rss=int(data.get("rss") or 0), vms=int(data.get("vms") or 0), uss=data.get("uss"),
                         pss=data.get("pss"), swap=data.get("swap"), t=float(data.get("t") or 0.0))


def delta(a: MemoryReading | None, b: MemoryReading | None) -> dict[str, int | None] | None:
    """``b - a`` per field (None when either reading is missing)."""
    return None if a is None or b is None else a.delta(b)


def delta_pct(a: MemoryReading | None, b: MemoryReading | None) -> dict[str, float | None] | None:
    """``b - a`` per field in percent of ``a``."""
    if a is None or b is None:
        return None
    out: dict[str, float | None] = {}
    for k in FIELDS:
        x, y = getattr(a, k), getattr(b, k)
        out[k] = round((y - x) * 100.0 / x, 2) if x and y is not None else None
    return out
