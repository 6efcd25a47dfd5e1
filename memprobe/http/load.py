"""What an HTTP load did: every outcome counted, latency, throughput, and the same figures read back."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from memprobe.http.histogram import LatencyHistogram


@dataclass
class LoadResult:
    """What a hammering did: counts of every outcome, latency and throughput.

    ``ok`` counts responses with a status below 400; ``failed`` is everything else that was sent
    (4xx/5xx answers, timeouts and connection errors), so ``sent == ok + failed``.

    While a load runs, its throughput and percentiles come from the clock and the histogram. A
    result read back from JSON, or a median over rounds, has no histogram: ``rate`` and
    ``percentiles`` then hold the figures as they were kept (see :meth:`kept`).
    """

    url: str
    mode: str
    concurrency: int
    timeout_s: float
    sent: int = 0
    ok: int = 0
    failed: int = 0
    timeouts: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    status_counts: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram, repr=False)
    connections_opened: int = 0
    rate: float | None = None
    percentiles: dict[str, float] | None = None
    #: What sent the load: memprobe's own hammer ("native") or Locust ("locust").
    engine: str = "native"
    #: The load generators it came from (Locust workers; 1 for the native hammer).
    engine_workers: int = 1

    def answer(self, status: int) -> None:
        """Count one HTTP answer: its status, and whether it was ``ok`` (below 400)."""
        key = str(status)
        self.status_counts[key] = self.status_counts.get(key, 0) + 1
        if status < 400:
            self.ok += 1
        else:
            self.failed += 1

    @property
    def answered(self) -> int:
        """Requests that got an HTTP response, whatever its status."""
        return sum(self.status_counts.values())

    @property
    def throughput_rps(self) -> float:
        """Responses per second of wall time."""
        if self.rate is not None:
            return self.rate
        return self.answered / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def latency_ms(self) -> dict[str, float]:
        """Latency percentiles of answered requests, in milliseconds."""
        return dict(self.percentiles) if self.percentiles is not None else self.latency.summary_ms()

    def requests_dict(self) -> dict[str, Any]:
        """The ``requests`` object of the JSON: counts, errors by name, statuses."""
        return {"sent": self.sent, "ok": self.ok, "failed": self.failed, "timeouts": self.timeouts,
                "errors": dict(self.errors), "status_counts": dict(sorted(self.status_counts.items()))}

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract: ``requests`` counts, ``throughput_rps``, ``latency_ms``, ``duration_s``."""
        return {"url": self.url, "mode": self.mode, "concurrency": self.concurrency, "timeout_s": self.timeout_s,
                "requests": self.requests_dict(), "throughput_rps": round(self.throughput_rps, 2),
                "latency_ms": self.latency_ms, "duration_s": round(self.duration_s, 4),
                "connections_opened": self.connections_opened, "engine": self.engine,
                "engine_workers": self.engine_workers}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoadResult:
        """Read back what :meth:`to_dict` wrote (``requests`` holds the counts)."""
        req = data.get("requests") or {}
        latency = data.get("latency_ms") or {}
        return cls(url=str(data.get("url") or ""), mode=str(data.get("mode") or ""),
                   concurrency=int(data.get("concurrency") or 0), timeout_s=float(data.get("timeout_s") or 0.0),
                   sent=int(req.get("sent") or 0), ok=int(req.get("ok") or 0), failed=int(req.get("failed") or 0),
                   timeouts=int(req.get("timeouts") or 0), errors=dict(req.get("errors") or {}),
                   status_counts=dict(req.get("status_counts") or {}),
                   duration_s=float(data.get("duration_s") or 0.0),
                   connections_opened=int(data.get("connections_opened") or 0),
                   rate=float(data.get("throughput_rps") or 0.0),
                   percentiles={str(k): float(v) for k, v in latency.items() if v is not None},
                   engine=str(data.get("engine") or "native"), engine_workers=int(data.get("engine_workers") or 1))

    def kept(self) -> LoadResult:
        """This load as its JSON keeps it (rounded rate, percentiles, no histogram), so a result
        just measured and the same result read back from a file render alike."""
        return LoadResult.from_dict(self.to_dict())


class LoadSender(Protocol):
    """What sends a load: the native :class:`~memprobe.http.hammer.Hammer` or Locust's
    :class:`~memprobe.http.locust_engine.LocustHammer`. ``completed`` may be read from another
    thread (a memory sampler) while ``run()`` runs."""

    completed: int
    result: LoadResult

    def run(self) -> LoadResult:
        """Send the load to its end and return what happened."""
        ...


def merge_loads(url: str, loads: list[LoadResult]) -> LoadResult:
    """One :class:`LoadResult` for hammerings run one after another (a scenario's request
    kinds, a hunt's rounds): counts summed, latencies pooled, durations added."""
    first = loads[0]
    total = LoadResult(url, first.mode, max(x.concurrency for x in loads), first.timeout_s,
                       engine=first.engine, engine_workers=max(x.engine_workers for x in loads))
    for x in loads:
        total.sent += x.sent
        total.ok += x.ok
        total.failed += x.failed
        total.timeouts += x.timeouts
        for k, v in x.errors.items():
            total.errors[k] = total.errors.get(k, 0) + v
        for k, v in x.status_counts.items():
            total.status_counts[k] = total.status_counts.get(k, 0) + v
        total.duration_s += x.duration_s
        total.connections_opened += x.connections_opened
        if x.percentiles is not None:
            raise ValueError("a load read back from JSON has no histogram to merge")
        total.latency.merge(x.latency)
    return total
