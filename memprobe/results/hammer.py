"""``hammer``'s typed result: a load sent to a running server, and that server's process tree
read before and after when a pid was given."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from memprobe.http.load import LoadResult
from memprobe.process.memory import TreeReading
from memprobe.results.envelope import Envelope
from memprobe.results.readings import reading_from


@dataclass
class HammerResult:
    """A hammering of a running server, with its memory when a pid was given."""

    load: LoadResult
    pid: int | None = None
    before: TreeReading | None = None
    after: TreeReading | None = None
    samples: dict[str, Any] | None = None
    kind: str = "hammer"
    envelope: Envelope = field(default_factory=Envelope)

    @property
    def settings(self) -> dict[str, Any]:
        """What was asked: the URL, how the load was sent, and the pid watched."""
        return {"url": self.load.url, "mode": self.load.mode, "concurrency": self.load.concurrency,
                "timeout_s": self.load.timeout_s, "pid": self.pid}

    @property
    def delta(self) -> dict[str, int | None] | None:
        """The change of the tree's total, when a pid was watched."""
        if self.before is None or self.after is None:
            return None
        return self.before.total.delta(self.after.total)

    def to_dict(self) -> dict[str, Any]:
        """JSON: the envelope, the load's keys at the top level, plus ``before``/``after``
        (``total`` and ``processes`` by pid) and ``delta`` of the totals when a pid was watched."""
        out: dict[str, Any] = {**self.envelope.to_dict(self.kind, self.settings, self.load.duration_s),
                               "pid": self.pid}
        out.update(self.load.to_dict())
        if self.before is not None and self.after is not None:
            out["before"] = self.before.to_dict()
            out["after"] = self.after.to_dict()
            out["delta"] = self.delta
        out["samples"] = self.samples
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HammerResult:
        """Read back what :meth:`to_dict` wrote."""
        if "requests" not in data or "latency_ms" not in data:
            raise KeyError("requests")
        return cls(load=LoadResult.from_dict(data), pid=data.get("pid"),
                   before=_tree(data.get("before"), data), after=_tree(data.get("after"), data),
                   samples=data.get("samples"),
                   envelope=Envelope.from_dict(data))


def _tree(data: dict[str, Any] | None, result: dict[str, Any]) -> TreeReading | None:
    if not data:
        return None
    processes = {int(pid): reading_from(r) for pid, r in (data.get("processes") or {}).items()}
    return TreeReading(int(result.get("pid") or 0), {pid: r for pid, r in processes.items() if r is not None})
