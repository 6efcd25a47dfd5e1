"""Routes side by side: one child per job, each hunting its share of the routes.

Each child is its own process, so its readings are its own memory: another route's load
changes how fast a child answers (the sequential rounds are sized by time, so they adapt), not
what it holds. Side by side only pays where a core is idle for each child: the children are
CPU-bound (a child under tracemalloc takes a whole core; the hammers, in this process, ~10% of
one). ``jobs="auto"`` counts the idle cores; the Python API's default stays one child, so a
test's hunt does not depend on what else the machine runs.

Each child starts the app afresh: a route hunted in the second child does not see what the
first child's earlier routes left in the app's state (in one child it would).
"""
from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Callable

from memprobe.errors import MemprobeError
from memprobe.results.hunt import HuntResult, HuntSettings, RouteResult
from memprobe.results.hunt_settings import SettingError

if TYPE_CHECKING:
    from memprobe.hunt.probes import Probe

#: How long the CPU is sampled to count idle cores.
SAMPLE_S = 0.2


def idle_cores(sample_s: float = SAMPLE_S) -> int:
    """Cores no process is using now (at least 1): the CPU sampled for ``sample_s``."""
    import psutil

    cores = os.cpu_count() or 1
    busy = psutil.cpu_percent(interval=sample_s) * cores / 100
    return max(1, cores - round(busy))


def resolve_jobs(jobs: int | str) -> int:
    """``jobs`` as a count: ``auto`` is :func:`idle_cores`; UsageError below 1."""
    if jobs == "auto":
        return idle_cores()
    try:
        count = int(jobs)
    except ValueError:
        raise SettingError("jobs", f"takes a count or 'auto', not {jobs!r}") from None
    if count < 1:
        raise SettingError("jobs", "must be at least 1")
    return count


def side_by_side(first: Probe, make: Callable[[], Probe], todo: list[str], settings: HuntSettings,
                 hunt_route: Callable[[Probe, str, HuntResult, Callable[[], bool]], None],
                 result: HuntResult, jobs: int) -> None:
    """Hunt ``todo`` in ``jobs`` children: ``first`` (opened, closed by the caller) and
    ``jobs - 1`` probes from ``make``, opened and closed here; route ``i`` goes to
    child ``i % jobs``. The routes land in ``result`` in ``todo``'s order. The first error stops
    every child after its current route and is raised. On Ctrl-C every route stops before its
    next requests (``hunt_route``'s last argument turns True), its finished rounds judged as
    in one child; a second Ctrl-C closes the children at once. It is raised with the routes."""
    probes: list[Probe] = [first]
    finished: dict[int, RouteResult] = {}
    errors: list[BaseException] = []
    stop = threading.Event()  # no new route: after an error, or Ctrl-C
    interrupted = threading.Event()  # no new requests either: Ctrl-C

    def work(probe: Probe, indices: list[int]) -> None:
        for i in indices:
            if stop.is_set():
                return
            part = HuntResult(target=result.target, settings=settings)
            try:
                hunt_route(probe, todo[i], part, interrupted.is_set)
            except BaseException as err:  # noqa: BLE001 - handed to the main thread
                if not stop.is_set():
                    errors.append(probe.failure(err, f"while hunting {todo[i]}")
                                  if isinstance(err, MemprobeError) else err)
                stop.set()
                return
            finally:
                if part.routes:
                    finished[i] = part.routes[-1]

    try:
        # Opened from this thread, one after the other: a child dies with the thread that
        # started it (PR_SET_PDEATHSIG is per thread), and this one outlives the hunt.
        for _ in range(jobs - 1):
            probes.append(make())
            probes[-1].open()
        threads = [threading.Thread(target=work, args=(p, list(range(k, len(todo), jobs))),
                                    name=f"memprobe-hunt-{k}", daemon=True)
                   for k, p in enumerate(probes)]
        for t in threads:
            t.start()
        try:
            _join(threads)
        except KeyboardInterrupt:
            interrupted.set()
            stop.set()
            try:
                _join(threads)
            finally:
                for p in probes:
                    p.close()  # after a second Ctrl-C: the children end, so do their routes
                for t in threads:
                    t.join(30)
            raise
        if errors:
            raise errors[0]
    finally:
        result.routes.extend(finished[i] for i in sorted(finished))
        for p in probes[1:]:
            p.close()


def _join(threads: list[threading.Thread]) -> None:
    """Wait for every thread, in short joins: Ctrl-C reaches the main thread between them."""
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(0.1)
