"""``hammer``'s typed result: a load sent to a running server, and that server's process tree
read before and after when a pid was given."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from memprobe.http.load import LoadResult
from memprobe.process.memory import TreeReading
from memprobe.results.envelope import Envelope
from memprobe.results.readings import reading_from
from memprobe.units import format_bytes

#: a USS rise below this is a few pages of noise, not worth a word
SHARED_TURNED_PRIVATE_MIN = 128 * 1024


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

    @property
    def notes(self) -> list[str]:
        """What the before/after readings mean that their figures do not say (one line each)."""
        note = self.shared_turned_private()
        return [note] if note else []

    def shared_turned_private(self) -> str:
        """One note when a watched process's USS rose while its RSS stayed flat ('' otherwise).

        RSS counts every page a process has resident; USS only the pages no other process maps.
        USS up with RSS flat: pages shared since a fork became private, because a process of the
        tree wrote to them and got its own copy (copy-on-write), or a process that shared them
        exited. Read as the process growing, it is a false alarm; the copies themselves are real
        memory, bounded by what was shared, and PSS shows them.
        """
        before, after = self.before, self.after
        if before is None or after is None:
            return ""
        found = []
        for pid, b in before.processes.items():
            a = after.processes.get(pid)
            if a is None or a.uss is None or b.uss is None:
                continue
            uss, rss = a.uss - b.uss, a.rss - b.rss
            if uss >= SHARED_TURNED_PRIVATE_MIN and abs(rss) <= uss / 4:
                master = " (the master)" if pid == before.root and len(before.processes) > 1 else ""
                found.append(f"pid {pid}{master}: USS {format_bytes(uss, signed=True)} with RSS flat "
                             f"({format_bytes(rss, signed=True)})")
        if not found:
            return ""
        gone = [pid for pid in before.processes if pid not in after.processes]
        exited = f", or a process that shared them exited ({_pids(gone)})" if gone else ""
        return (f"{'; '.join(found)}: pages shared since the fork became private, not new allocations. "
                "Copy-on-write: a process that writes to a page it shares (a Python object's reference count "
                f"is enough) gets its own copy{exited}. Each copy is a real page, counted by PSS and not by "
                "RSS; the copying stops once every worker has its own copy of what was shared at the fork.")

    def to_dict(self) -> dict[str, Any]:
        """JSON: the envelope, the load's keys at the top level, plus ``before``/``after``
        (``total`` and ``processes`` by pid), ``delta`` of the totals and ``notes`` when a pid
        was watched."""
        out: dict[str, Any] = {**self.envelope.to_dict(self.kind, self.settings, self.load.duration_s),
                               "pid": self.pid}
        out.update(self.load.to_dict())
        if self.before is not None and self.after is not None:
            out["before"] = self.before.to_dict()
            out["after"] = self.after.to_dict()
            out["delta"] = self.delta
            out["notes"] = self.notes
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


def _pids(pids: list[int]) -> str:
    return f"pid {pids[0]}" if len(pids) == 1 else "pids " + ", ".join(str(p) for p in pids)
