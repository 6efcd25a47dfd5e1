"""Measuring a server memprobe did not start: hammer it, and watch a process tree's memory.

This is how a deployed app is measured without restarting it: ``memprobe hammer URL --pid PID``
reads the master and every worker before, during and after the load.
"""
from __future__ import annotations

from memprobe.http.load import LoadSender
from memprobe.process.memory import Sampler, read_tree, settle
from memprobe.results.envelope import Envelope
from memprobe.results.hammer import HammerResult

__all__ = ["HammerResult", "hammer_and_watch"]


def hammer_and_watch(
    hammer: LoadSender,
    pid: int | None = None,
    *,
    settle_s: float = 1.0,
) -> HammerResult:
    """Run ``hammer``; with ``pid``, read that process tree before and after (settled) and
    sample its total RSS while the load runs."""
    envelope = Envelope()
    if pid is None:
        return HammerResult(hammer.run().kept(), envelope=envelope)
    before = read_tree(pid)
    with Sampler(pid, progress=lambda: hammer.completed, tree=True) as sampler:
        load = hammer.run()
    settle(pid, settle_s)
    after = read_tree(pid)
    # A sampler that died early says so in its series: a short series must not look complete.
    samples = {**sampler.series.to_dict(), "stopped": sampler.stopped}
    return HammerResult(load.kept(), pid, before, after, samples,
                        envelope=envelope)
