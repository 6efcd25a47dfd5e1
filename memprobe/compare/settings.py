"""How a comparison runs: ``compare``'s options as one frozen object."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memprobe.compare import production
from memprobe.compare.scenario import Scenario
from memprobe.errors import UsageError
from memprobe.http.hammer import MODES
from memprobe.http.locust_engine import ENGINES


@dataclass(frozen=True)
class Settings:
    """How a comparison runs (the CLI's options)."""

    requests: int = 2000
    timeout: float = 0.5
    concurrency: int = 10
    mode: str = "keepalive"
    warmup: int = 0
    settle_s: float = 2.0
    rounds: int = 1
    path: str = "/"
    ready_timeout: float = 30.0
    #: The requests to send; ``None``: ``requests`` GETs of ``path`` (the seed's method).
    scenario: Scenario | None = None
    #: "dev" (each framework's own or customary server) or "production" (gunicorn / uvicorn).
    server: str = "dev"
    workers: int = 2
    threads: int = 2
    #: CRUD variants to run (``None``: every variant a framework has).
    variants: tuple[str, ...] | None = None
    #: What sends the requests: "native" (memprobe's hammer) or "locust" (the warm-up is
    #: always the native hammer's: it only has to warm the app up).
    engine: str = "native"
    #: Whether a round's children run together, one settling while the next is hammered
    #: (False: each is started, measured and stopped before the next starts, ``--alone``).
    overlap: bool = True

    def validate(self) -> None:
        """Raise :class:`UsageError` for values no run could use."""
        if self.requests <= 0:
            raise UsageError(f"N must be a positive number of requests, not {self.requests}")
        if self.timeout <= 0:
            raise UsageError(f"TIMEOUT must be a positive number of seconds, not {self.timeout:g}")
        for name, value in (("--concurrency", self.concurrency), ("--rounds", self.rounds),
                            ("--workers", self.workers), ("--threads", self.threads)):
            if value <= 0:
                raise UsageError(f"{name} must be positive, not {value}")
        for name, choice, choices in (("--mode", self.mode, MODES), ("--server", self.server, production.SERVERS),
                                      ("--engine", self.engine, ENGINES)):
            if choice not in choices:
                raise UsageError(f"{name} must be one of {', '.join(choices)}, not {choice!r}")
        if self.warmup < 0:
            raise UsageError(f"--warmup cannot be negative ({self.warmup})")
        if self.settle_s < 0:
            raise UsageError(f"--settle cannot be negative ({self.settle_s:g})")
        if self.ready_timeout <= 0:
            raise UsageError(f"--ready-timeout must be a positive number of seconds, not {self.ready_timeout:g}")
        if self.engine == "locust" and self.mode == "burst":
            raise UsageError("--mode burst is the native hammer's; with --engine locust use keepalive or close")

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``timeout_s``, ``settle_s`` in seconds)."""
        return {
            "requests": self.requests,
            "timeout_s": self.timeout,
            "concurrency": self.concurrency,
            "mode": self.mode,
            "warmup": self.warmup,
            "settle_s": self.settle_s,
            "rounds": self.rounds,
            "path": self.path,
            "server": self.server,
            "workers": self.workers if self.server == "production" else None,
            "threads": self.threads if self.server == "production" else None,
            "scenario": self.scenario.to_dict() if self.scenario else None,
            "engine": self.engine,
            "overlap": self.overlap,
        }
