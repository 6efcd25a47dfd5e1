"""When ``memprobe watch`` opens an attribution window, in which worker, and what the windows
add to the report (pure: no I/O, no processes, bounded memory).

**When.** A window costs the worker that traces (one request in :attr:`TracePolicy.sample`,
:data:`FRAMES` frames deep, at most :attr:`TracePolicy.share` of its time: see
:mod:`memprobe.agent.watch_trace`), so one opens only when there is something to name: a route
the heap's analysis calls a leak or cannot separate from another, a server whose heap grows
significantly per request while no route is told apart yet, or a route not called clean whose
estimate is over :data:`SUSPECT` errors (the heap's checks may have left it undecided; 0.5 %
of a worker's time at most is cheap beside a leak nobody named). Never two at once, never sooner
than :attr:`TracePolicy.every` seconds after the last one closed, each in the next worker in
turn (one worker at a time, never all) that has served :data:`WARM_REQUESTS` requests.

**What they add.** Per route, over the last :data:`KEPT` windows: the bytes its handler
allocated that were still alive when each traced request of the route ended (the mean over
every traced request, its standard error from their spread, widened by Student's t for the
few it may rest on), the lines (hunt's grouping by the user's first frame), and the containers
that grew and to which that route's traced requests added entries. A traced request's figure
includes what a cache stores while it evicts an untraced older entry, so the windows never
make a leak by themselves: a route the heap's analysis left undecided or entangled (or called
bounded or clean while a growing container holds its traced requests' entries, or called
clean only counted as one with another route: the two together can hide one's leak behind the
other's negative noise, -2.2 ± 0.9 blocks a request together under uvicorn for a route that
kept 0.5) becomes a ``leak`` on traced windows only when at least :data:`MIN_WINDOWS` windows and
:data:`MIN_SAMPLES` traced requests saw it keep more than :data:`TRACED_FLOOR` bytes per
request and more than two standard errors (hunt's rule: over the floor, and clearly more than
nothing; 52 traced requests of a gthread worker said +94 ± 26 B for a 100 B leak), the latest
window too (a cache that filled and stopped
keeps nothing in the later windows), and the server's heap grows or a container that grew
through the windows holds entries its traced requests added.

**What they rule out.** Python objects a route keeps are traced: a route the heap's blocks
call a leak (Python objects, the C heap not agreeing) whose handler the windows saw keep under
:data:`TRACED_FLOOR` bytes per request over :data:`MIN_SAMPLES` traced requests or more, and no
growing container got entries from its traced requests, is
not a leak: its blocks are the server's, allocated between its
requests (uvicorn's protocol objects for the next request on a keep-alive connection made
``GET /items`` keep +4.3 ± 0.4 blocks a request alone, and its windows +0.3 ± 0.3 B), or the
regression's, charging another route's growth to it.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from memprobe.agent.watch_trace import FRAMES, REQUESTS, SAMPLE, SECONDS, SHARE
from memprobe.results.watch import Attribution, PerRequest, RouteLine, TracedWindow
from memprobe.watch.analysis import UNDECIDED
from memprobe.watch.stats import Running

#: A route not called clean whose estimate is over this many errors is reason enough for a window.
SUSPECT = 2.0
#: Windows kept (the newest); the report lists at most :data:`LISTED` of those run.
KEPT = 8
LISTED = 32
#: Bytes per request a route must keep, in windows, to be called a leak on them.
TRACED_FLOOR = 48.0
MIN_WINDOWS = 2
#: A route's traced requests below which the windows say nothing of what it keeps.
MIN_SAMPLES = 20
#: The latest window counts (a cache that stopped keeps nothing in it) once it traced this many.
MIN_LATEST = 5
#: A worker serves this many requests before a window opens in it: a fresh worker's first
#: requests fill its caches (a worker respawned by max_requests, traced at once, charged +231 B
#: a request to a POST that keeps 100; traced right after its 1,000th request, 22 POSTs of 22
#: charged werkzeug's parsed form, 120 B, besides).
WARM_REQUESTS = 3_000


@dataclass(frozen=True)
class TracePolicy:
    """How attribution windows are run: ``enabled``; each bounded by ``seconds`` and
    ``requests``, ``frames`` deep, tracing one request in ``sample`` for ``share`` of its time at
    most; at least ``every`` seconds between one's close and the next."""

    enabled: bool = True
    seconds: float = SECONDS
    requests: int = REQUESTS
    frames: int = FRAMES
    every: float = 60.0
    sample: int = SAMPLE
    share: float = SHARE


@dataclass
class Traces:
    """The windows run in a watch and the state of the next one."""

    policy: TracePolicy = field(default_factory=TracePolicy)
    windows: deque[TracedWindow] = field(default_factory=lambda: deque(maxlen=KEPT))
    listed: deque[TracedWindow] = field(default_factory=lambda: deque(maxlen=LISTED))
    #: the worker tracing now (None: no window open)
    open_pid: int | None = None
    opened_at: float = -math.inf
    closed_at: float = -math.inf
    #: workers that refused a window (traced by someone else), with why
    refused: dict[int, str] = field(default_factory=dict)
    _turn: int = 0

    def add(self, window: TracedWindow) -> None:
        """A window closed (its findings as the worker sent them, ``at`` set by the parent)."""
        self.windows.append(window)
        self.listed.append(window)
        if window.pid == self.open_pid:
            self.open_pid = None
        self.closed_at = max(self.closed_at, window.at)

    def reason(self, routes: list[RouteLine], server_growing: bool, now: float) -> str | None:
        """Why a window should open now (None: it should not)."""
        if not self.policy.enabled or self.open_pid is not None or now - self.closed_at < self.policy.every:
            return None
        for line in routes:
            if line.verdict == "leak" and (line.attribution is None or line.attribution.windows < MIN_WINDOWS):
                return f"{line.route} leaks: its lines and holder"
            if line.verdict.startswith("cannot be separated"):
                return f"{line.route} {line.verdict}"
        if server_growing and any(line.verdict != "clean" for line in routes):
            return "the server's heap grows and no route is told apart yet"
        for line in routes:
            if line.verdict != "clean" and any(e is not None and math.isfinite(e.error) and e.value > SUSPECT * e.error
                                               for e in (line.blocks, line.bytes)):
                # Not a verdict (the heap's checks may have left it undecided): a window costs
                # its worker 0.5 % at most, and tells what the regression cannot.
                return f"{line.route} may keep memory"
        return None

    def next_worker(self, live: list[int]) -> int | None:
        """The next worker in turn that has not refused a window."""
        candidates = sorted(pid for pid in live if pid not in self.refused)
        if not candidates:
            return None
        pid = candidates[self._turn % len(candidates)]
        self._turn += 1
        return pid

    def attribution(self, route: str) -> Attribution | None:
        """What the kept windows found for ``route`` (None: no traced request of it)."""
        seen = [(w, r) for w in self.windows if (r := w.route(route)) is not None and r.samples > 0]
        if not seen:
            return None
        n = sum(r.samples for _, r in seen)
        mean, error = _mean_error(n, sum(r.bytes for _, r in seen), sum(r.bytes_sq for _, r in seen))
        best_w, best = max(seen, key=lambda wr: wr[1].bytes)
        pids = sorted({w.pid for w, _ in seen})
        bounds = (f"{len(seen)} window{'s' if len(seen) > 1 else ''} in pid {', '.join(map(str, pids))}: "
                  f"{sum(w.seconds for w, _ in seen):.0f} s, {n:,} of the route's "
                  f"{sum(r.requests for _, r in seen):,} requests traced, {best_w.frames} frames deep")
        return Attribution(len(seen), n, PerRequest(mean, error, "B"), list(best.sites), list(best.holders), bounds)

    def refine(self, routes: list[RouteLine], server_growing: bool) -> None:
        """Give each of the server's route lines its attribution, call a leak on traced
        windows where the heap's analysis could not, and take back a leak of Python objects
        the windows rule out (see the module's docstring)."""
        for line in routes:
            line.attribution = self.attribution(line.route)
            att = line.attribution
            if att is None:
                continue
            est = att.per_request
            if line.verdict == "leak" and line.bytes_from.startswith("blocks") and att.requests >= MIN_SAMPLES \
                    and math.isfinite(est.error) and est.value + 2 * est.error < TRACED_FLOOR and not att.holders:
                line.verdict = UNDECIDED
                line.reason += (f"; but the attribution windows saw its handler keep {est.value:+.1f} ± "
                                f"{est.error:.1f} B/request ({att.bounds}) and no growing container hold "
                                f"its entries: the blocks are not its own")
                continue
            if line.verdict == "leak" or (line.verdict == "clean" and line.partner is None and not att.holders):
                # (clean on its own, unless a container that grew holds its traced requests'
                # entries: growth seen directly, where a threaded worker's regression called a
                # 100 B leak clean at -6.1 ± 2.1 blocks a request)
                continue
            if not server_growing and not att.holders:
                # Neither the heap nor a container grows with it. A container that grew through
                # the window with this route's entries is growth seen directly, where the heap's
                # blocks over all requests are not yet clear (gthread: 0.07 block a request of a
                # 100 B leak in one POST of twelve, behind the noise of a threaded worker).
                continue
            if line.verdict == "bounded" and not att.holders:
                continue  # growth that stopped, unless a container goes on growing with its entries
            # the latest window that traced a few of its requests (one traced POST of a window
            # cut short said 0 B: a sample of one, not a cache that stopped)
            latest = next((r for w in reversed(self.windows) if (r := w.route(line.route)) is not None
                           and r.samples >= MIN_LATEST), None)
            if att.windows >= MIN_WINDOWS and att.requests >= MIN_SAMPLES and math.isfinite(est.error) \
                    and est.value > max(TRACED_FLOOR, 2 * est.error) \
                    and latest is not None and latest.per_request > TRACED_FLOOR:
                was = line.verdict
                line.verdict, line.method, line.partner = "leak", "traced windows", None
                line.bytes, line.bytes_from = est, "traced windows (bytes alive at each traced request's end)"
                line.reason = (f"traced in {att.bounds}: {est.value:+.0f} ± {est.error:.0f} B/request of what its "
                               f"handler allocated still alive as each request ended, the latest window "
                               f"{latest.per_request:+.0f}; the heap's regression alone said: {was}")


def _mean_error(n: int, total: float, squares: float) -> tuple[float, float]:
    """The mean of ``n`` values from their sum and sum of squares, and its standard error
    (widened by Student's t for few values; infinite below two)."""
    values = Running.of_sums(n, total, squares)
    return values.mean, values.error * _widen(n)


#: Student's t at 97.5 % over the normal's, by values (degrees of freedom + 1).
_T_OVER_Z = {2: 6.48, 3: 2.20, 4: 1.62, 5: 1.42, 6: 1.31, 7: 1.25, 8: 1.20}


def _widen(n: int) -> float:
    return _T_OVER_Z.get(n, 1.0 + 1.2 / max(n - 1, 1))
