"""How a hunt runs, as the user asked for it: the protocol's numbers and the probe that reaches
the app (:class:`HuntSettings`); what the hunt measured is in :mod:`memprobe.results.hunt`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memprobe.errors import UsageError

#: How the app was reached and read: an agent in a child memprobe started, the app called in
#: this process, readings from outside only, an agent in every worker of a server started from a
#: command, or an agent attached to a running process.
MODES = ("child", "in_process", "outside", "workers", "attached")
#: What the measured rounds read inside the process: the traced heap (tracemalloc on, one frame
#: deep, in every round) or the allocated blocks only (tracemalloc off until the attribution
#: round: ~2.5x the requests per second, blind to growth inside blocks that already exist).
SIGNALS = ("traced", "blocks")
#: The modes whose agent can run the rounds untraced (one process, the agent inside).
UNTRACED_MODES = ("child", "attached")


@dataclass(frozen=True)
class HuntSettings:
    """How a hunt runs: the protocol's numbers, and the probe that reaches the app."""

    requests: int = 2000
    rounds: int = 5
    #: requests before the baseline; a server hunted worker by worker gets them for each worker
    warmup: int = 500
    concurrency: int = 4
    frames: int = 25
    #: seconds per request
    timeout: float = 10.0
    #: seconds the app may take to answer its first request
    ready_timeout: float = 30.0
    #: requests of the attribution round (deep tracebacks), at most ``requests``
    attribution_requests: int = 300
    mode: str = "child"
    cmd: str | None = None
    #: in-process only: the test client used, and whether the test process's USS is judged
    client: str | None = None
    uss: bool | None = None
    #: what the rounds are judged on inside: ``traced`` or ``blocks`` (:data:`SIGNALS`)
    signal: str = "traced"
    #: the sequential protocol (the default of ``hunt``): rounds sized by time, each route
    #: stopped once its readings decide (:mod:`memprobe.hunt.sequential`), at most
    #: ``max_requests`` measured requests or ``max_seconds`` a route; False: ``rounds`` x
    #: ``requests`` (explicit counts, ``--thorough``)
    sequential: bool = False
    max_requests: int = 10_000
    max_seconds: float = 40.0
    #: the traced heap's target (B/request): a flat route stops once it could see leaks that large
    target: float = 16.0
    #: sequential: seconds a round should take, from the measured time per request
    round_seconds: float = 0.25
    #: children that hunted the routes side by side (:mod:`memprobe.hunt.parallel`)
    jobs: int = 1

    def validate(self) -> None:
        """Raise :class:`UsageError` for numbers no hunt can use."""
        if self.requests <= 0 or self.rounds < 2 or self.warmup < 0 or self.concurrency <= 0 \
                or self.frames < 1:
            raise UsageError("hunt needs --requests > 0, --rounds >= 2, --warmup >= 0, "
                             "--concurrency > 0 and --frames >= 1")
        if self.timeout <= 0 or self.ready_timeout <= 0:
            raise UsageError("hunt needs positive timeouts")
        if self.mode not in MODES:
            raise UsageError(f"unknown hunt mode {self.mode!r}; one of: {', '.join(MODES)}")
        if self.signal not in SIGNALS:
            raise UsageError(f"unknown hunt signal {self.signal!r}; one of: {', '.join(SIGNALS)}")
        if self.signal != "traced" and self.mode not in UNTRACED_MODES:
            raise UsageError(f"--signal {self.signal} needs the agent in one process (an app hunted "
                             f"in a child, or --pid), not mode {self.mode}")
        if self.sequential and (self.max_requests <= 0 or self.max_seconds <= 0 or self.target <= 0
                                or self.round_seconds <= 0):
            raise UsageError("hunt needs --max-requests, --max-seconds and --sensitivity > 0")

    @property
    def protocol(self) -> str:
        """``sequential`` or ``fixed``."""
        return "sequential" if self.sequential else "fixed"

    @property
    def attributed(self) -> int:
        """Requests in the attribution round."""
        return min(self.requests, self.attribution_requests)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``timeout_s`` in seconds); ``client`` and ``uss`` only in-process."""
        out: dict[str, Any] = {
            "requests": self.requests, "rounds": self.rounds, "warmup": self.warmup,
            "concurrency": self.concurrency, "frames": self.frames, "cmd": self.cmd,
            "timeout_s": self.timeout, "mode": self.mode, "signal": self.signal, "protocol": self.protocol,
        }
        if self.sequential:
            out.update({"max_requests": self.max_requests, "max_seconds": self.max_seconds,
                        "target_b_per_request": self.target, "round_seconds": self.round_seconds})
        if self.jobs > 1:
            out["jobs"] = self.jobs
        if self.client is not None:
            out["client"] = self.client
        if self.uss is not None:
            out["uss"] = self.uss
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HuntSettings:
        """Read back what :meth:`to_dict` wrote (reports written before ``mode`` existed
        were child-process hunts, or outside-only ones when they had a ``cmd``)."""
        mode = data.get("mode") or ("outside" if data.get("cmd") else "child")
        return cls(requests=int(data.get("requests", 0)), rounds=int(data.get("rounds", 0)),
                   warmup=int(data.get("warmup", 0)), concurrency=int(data.get("concurrency", 1)),
                   frames=int(data.get("frames", 1)), timeout=float(data.get("timeout_s", 10.0)),
                   mode=mode, cmd=data.get("cmd"), client=data.get("client"), uss=data.get("uss"),
                   signal=str(data.get("signal") or "traced"),
                   sequential=data.get("protocol") == "sequential",
                   max_requests=int(data.get("max_requests") or 10_000),
                   max_seconds=float(data.get("max_seconds") or 40.0),
                   target=float(data.get("target_b_per_request") or 16.0),
                   round_seconds=float(data.get("round_seconds") or 0.25),
                   jobs=int(data.get("jobs") or 1))
