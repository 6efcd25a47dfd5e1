"""What ``memprobe watch`` reads from a production server: one :class:`Window` per worker per
interval, the contract between the code inside the server (which counts each route's requests
and reads the heap cheaply, never tracing outside an attribution window) and the analysis in
the parent (which turns windows into bytes kept per request, per route, with an error bar).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Window:
    """One worker's interval: the requests each route completed in it and the memory at its end.

    ``start`` and ``end`` are ``time.monotonic()`` seconds, one clock for every process of the
    machine (CLOCK_MONOTONIC). Heap readings are levels at ``end``, not deltas: the analysis
    differences them, so a lost window costs one difference, not a wrong one.
    """

    #: the worker (its pid; a respawned worker is another pid)
    pid: int
    start: float
    end: float
    #: route (as the framework names it, ``GET /items/<int:id>``) -> requests completed
    requests: dict[str, int] = field(default_factory=dict)
    #: ``sys.getallocatedblocks()`` at ``end``: Python's allocated blocks
    blocks: int | None = None
    #: bytes the C allocator has handed out at ``end`` (glibc ``mallinfo2().uordblks``), None
    #: where it cannot be read
    heap_bytes: int | None = None
    #: the worker's RSS and USS at ``end``, read from outside by the parent (None if not read)
    rss: int | None = None
    uss: int | None = None
    #: the most requests in flight at once during the window (1: requests never overlapped, so
    #: each request's own heap delta was exact)
    max_in_flight: int = 0
    #: per route, the heap deltas of single requests that ran alone (``blocks`` after minus
    #: before), kept only where requests did not overlap; bounded in length by the agent
    alone_deltas: dict[str, list[int]] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """The window's length."""
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the rolling report keeps the last windows)."""
        return {"pid": self.pid, "start": self.start, "end": self.end, "requests": dict(self.requests),
                "blocks": self.blocks, "heap_bytes": self.heap_bytes, "rss": self.rss, "uss": self.uss,
                "max_in_flight": self.max_in_flight,
                "alone_deltas": {k: list(v) for k, v in self.alone_deltas.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Window:
        """Read back what :meth:`to_dict` wrote (and what an agent sends)."""
        return cls(int(data["pid"]), float(data["start"]), float(data["end"]),
                   {str(k): int(v) for k, v in (data.get("requests") or {}).items()},
                   _int(data.get("blocks")), _int(data.get("heap_bytes")), _int(data.get("rss")),
                   _int(data.get("uss")), int(data.get("max_in_flight") or 0),
                   {str(k): [int(x) for x in v] for k, v in (data.get("alone_deltas") or {}).items()})


def _int(value: Any) -> int | None:
    return None if value is None else int(value)
