"""The memory limit it will hit, and the recycling that keeps each worker under it.

**Time to the limit**: the room left divided by the measured growth per second (the worker's
memory signal regressed on time: USS where read), with its error carried through
(``room x error / slope²``). Per worker, the room is its share of the budget less what it
holds now; for the server, the cgroup's limit less its usage (page cache and kernel memory
included: the OOM killer counts them).

**Recycling advice**: a worker restarted every N requests never grows by more than N times
what a request keeps. N is chosen so that a fresh worker plus N requests' growth stays under
:data:`SHARE` of its budget, with the growth per request taken at its estimate plus
:data:`ERROR_SIGMAS` standard errors (the advice must hold if the estimate is low). The rest of
the budget is for what the growth per request does not see: a request's transient peak, the
page cache and kernel memory the cgroup charges, and the workers not restarting at the same
moment. gunicorn adds ``randint(0, jitter)`` to ``--max-requests``, so N + J is the bound;
J is :data:`JITTER` of it, enough to keep workers from restarting together. uvicorn's
``--limit-max-requests`` has no jitter. Withheld, with the reason, when no route leaks (bounded
growth stops by itself; recycling a clean server only costs warm-ups), or when there is no
budget: no cgroup limit and none given (``--budget``).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from memprobe.results.watch import Advice, CgroupReading, PerRequest, RouteLine, WorkerLine
from memprobe.units import format_bytes

#: each worker is kept under this share of its budget
SHARE = 0.8
#: the growth per request the advice assumes: the estimate plus this many standard errors
ERROR_SIGMAS = 2.0
#: gunicorn's jitter, as a share of the bound
JITTER = 0.1


def seconds_until(room: float, per_s: PerRequest | None) -> PerRequest | None:
    """Seconds until ``room`` bytes are used at ``per_s`` (None when it does not grow
    clearly, or nothing is known)."""
    if per_s is None or room is None or not math.isfinite(per_s.error) or per_s.value <= 0 \
            or per_s.value <= ERROR_SIGMAS * per_s.error:
        return None
    room = max(room, 0.0)
    return PerRequest(room / per_s.value, room * per_s.error / per_s.value ** 2, "s")


def worker_budget(workers: Sequence[WorkerLine], cgroup: CgroupReading | None,
                  budget: float | None = None) -> tuple[float | None, str]:
    """Each live worker's budget in bytes and where it came from: ``budget`` as given, else
    the cgroup's limit less what the workers do not hold (the master, page cache, kernel),
    shared among the live workers."""
    if budget is not None:
        return float(budget), "--budget"
    if cgroup is None or cgroup.limit is None:
        return None, ""
    live = [w for w in workers if w.alive]
    held = sum(w.uss or 0 for w in live)
    outside = max((cgroup.usage or held) - held, 0)
    return max(cgroup.limit - outside, 0) / max(len(live), 1), "cgroup"


def fill_time_to_limit(workers: Sequence[WorkerLine], cgroup: CgroupReading | None,
                       budget: float | None = None) -> PerRequest | None:
    """Set each live worker's ``time_to_limit_s``; answer the server's (its cgroup's limit
    less its usage, at the workers' growths summed), None without a limit."""
    per_worker, _ = worker_budget(workers, cgroup, budget)
    if per_worker is not None:
        for w in workers:
            if w.alive and w.uss is not None:
                w.time_to_limit_s = seconds_until(per_worker - w.uss, w.growth_per_s)
    if cgroup is None or cgroup.limit is None or cgroup.usage is None:
        return None
    growths = [w.growth_per_s for w in workers if w.alive and w.growth_per_s is not None]
    if not growths:
        return None
    total = PerRequest(sum(g.value for g in growths), math.sqrt(sum(g.error ** 2 for g in growths)), "B/s")
    return seconds_until(cgroup.limit - cgroup.usage, total)


def advise(routes: Sequence[RouteLine], workers: Sequence[WorkerLine], cgroup: CgroupReading | None,
           budget: float | None = None) -> Advice:
    """The recycling advice from the server's route lines and the workers' growth."""
    leaks = [r.route for r in routes if r.verdict == "leak"]
    if not leaks:
        bounded = [r.route for r in routes if r.verdict == "bounded"]
        why = (f"growth that stops ({', '.join(bounded)}) needs no recycling" if bounded
               else "no route keeps memory per request: recycling would only cost warm-ups")
        return Advice(False, f"withheld: {why}")
    per_worker, source = worker_budget(workers, cgroup, budget)
    if per_worker is None:
        return Advice(False, "withheld: the server's cgroup has no memory limit; name each worker's budget "
                             "(--budget 512MiB) to get the advice")
    best: tuple[float, WorkerLine, float, float] | None = None
    for w in workers:
        g = w.growth_per_request
        if not w.alive or g is None or not math.isfinite(g.error):
            continue
        high = g.value + ERROR_SIGMAS * g.error
        fresh = float(w.uss_first if w.uss_first is not None else (w.uss or 0))
        if high <= 0:
            continue
        bound = (SHARE * per_worker - fresh) / high
        if best is None or bound < best[0]:
            best = (bound, w, high, fresh)
    if best is None:
        return Advice(False, "withheld: no live worker's growth per request is known yet", share=SHARE,
                      budget_per_worker=int(per_worker), budget_from=source)
    bound, w, high, fresh = best
    figures = {"pid": w.pid, "growth_per_request": round(high, 3),
               "estimate": w.growth_per_request.to_dict() if w.growth_per_request else None,
               "fresh_size": int(fresh), "leaking_routes": leaks}
    if bound < 2:
        return Advice(False, f"withheld: a fresh worker ({format_bytes(fresh)}) already holds more than "
                             f"{SHARE:.0%} of its budget ({format_bytes(per_worker)}): fewer workers or a "
                             "larger limit, not recycling", share=SHARE, budget_per_worker=int(per_worker),
                      budget_from=source, figures=figures)
    jitter = max(1, int(JITTER * bound))
    n = max(1, int(bound) - jitter)
    reason = (f"keeps each worker under {SHARE:.0%} of its {format_bytes(per_worker)} budget ({source}): "
              f"pid {w.pid} starts at {format_bytes(fresh)} and grows {high:,.0f} B per request "
              f"(estimate + {ERROR_SIGMAS:g} standard errors), so {int(bound):,} requests fill the share")
    return Advice(True, reason, f"--max-requests {n} --max-requests-jitter {jitter}",
                  f"--limit-max-requests {int(bound)}", SHARE, int(per_worker), source, figures)
