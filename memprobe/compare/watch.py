"""Measuring a server memprobe did not start: hammer it, and watch a process tree's memory.

This is how a deployed app is measured without restarting it: ``memprobe hammer URL --pid PID``
reads the master and every worker before, during and after the load.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

from memprobe import __version__
from memprobe.compare.runner import SCHEMA, machine
from memprobe.http.hammer import Hammer, LoadResult
from memprobe.process.memory import Sampler, TreeReading, read_tree, settle


@dataclass
class HammerResult:
    """A hammering of a running server, with its memory when a pid was given."""

    load: LoadResult
    pid: int | None = None
    before: TreeReading | None = None
    after: TreeReading | None = None
    samples: dict[str, Any] | None = None
    started: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    kind: str = "hammer"

    def to_dict(self) -> dict[str, Any]:
        """JSON: the load's keys at the top level, plus ``before``/``after`` (``total`` and
        ``processes`` by pid) and ``delta`` of the totals when a pid was watched."""
        out: dict[str, Any] = {"memprobe": __version__, "schema": SCHEMA, "result": self.kind,
                               "started": self.started, "machine": machine(), "pid": self.pid}
        out.update(self.load.to_dict())
        if self.before is not None and self.after is not None:
            out["before"] = self.before.to_dict()
            out["after"] = self.after.to_dict()
            out["delta"] = self.before.total.delta(self.after.total)
        out["samples"] = self.samples
        return out


def hammer_and_watch(
    hammer: Hammer,
    pid: int | None = None,
    *,
    settle_s: float = 1.0,
) -> HammerResult:
    """Run ``hammer``; with ``pid``, read that process tree before and after (settled) and
    sample its total RSS while the load runs."""
    if pid is None:
        return HammerResult(hammer.run())
    before = read_tree(pid)
    with Sampler(pid, progress=lambda: hammer.completed, tree=True) as sampler:
        load = hammer.run()
    settle(pid, settle_s)
    after = read_tree(pid)
    return HammerResult(load, pid, before, after, sampler.series.to_dict())


