"""When ``memprobe watch`` opens an attribution window, in which worker, and what the windows
add to the report (pure: no I/O, no processes, bounded memory).

**When.** A window costs the worker that traces (tracemalloc, :data:`FRAMES` frames deep), so
one opens only when there is something to name: a route the heap's analysis calls a leak or
cannot separate from another, or a server whose heap grows significantly per request while no
route is told apart yet. Never two at once, never sooner than :attr:`TracePolicy.every` seconds
after the last one closed, each in the next worker in turn (one worker at a time, never all).

**What they add.** Per route, over the last :data:`KEPT` windows that saw it: the bytes its
handler allocated that were still alive when the window closed, per request of the route (the
mean over windows; its standard error once two windows saw it, widened by Student's t for
the few windows it rests on, so that ± 2 errors covers the truth as often with 2 windows as
with 20), the lines (hunt's grouping by
the user's first frame), and the containers that grew and whose newest entries that route's
requests made. A window's figure includes what was in flight or not yet collected at its close,
and caches that were filling, so a window never makes a leak by itself: a route the heap's
analysis left undecided or entangled becomes a ``leak`` on traced windows only when at least
:data:`MIN_WINDOWS` windows saw it keep more than :data:`TRACED_FLOOR` bytes per request, beyond
two standard errors, the latest window too (a cache that filled and stopped keeps nothing in
the later windows), and the server's heap grows.

**What they rule out.** Python objects a route keeps are traced: a route the heap's blocks
call a leak (Python objects, the C heap not agreeing) whose handler the windows saw keep under
:data:`TRACED_FLOOR` bytes per request, while what no handler allocated kept under it too, is
not a leak: its blocks are the server's, allocated between its requests (uvicorn's protocol
objects for the next request on a keep-alive connection made ``GET /items`` keep +4.3 ± 0.4
blocks a request alone, and its windows +0.3 ± 0.3 B).
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from memprobe.agent.watch_trace import NO_ROUTE
from memprobe.results.watch import Attribution, PerRequest, RouteLine, TracedWindow
from memprobe.watch.analysis import UNDECIDED

#: Windows kept (the newest); the report lists at most :data:`LISTED` of those run.
KEPT = 8
LISTED = 32
#: Frames kept per trace (deep enough to reach the view function from a few calls below it).
FRAMES = 16
#: Bytes per request a route must keep, in windows, to be called a leak on them.
TRACED_FLOOR = 48.0
MIN_WINDOWS = 2
#: A route's requests in a window below which the window says nothing of it.
MIN_ROUTE_REQUESTS = 20


@dataclass(frozen=True)
class TracePolicy:
    """How attribution windows are run: ``enabled``; each bounded by ``seconds`` and
    ``requests``, ``frames`` deep; at least ``every`` seconds between one's close and the next."""

    enabled: bool = True
    seconds: float = 20.0
    requests: int = 5_000
    frames: int = FRAMES
    every: float = 60.0


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
        """What the kept windows found for ``route`` (None: no window saw enough of it)."""
        seen = [(w, r) for w in self.windows if (r := w.route(route)) is not None and r.requests >= MIN_ROUTE_REQUESTS]
        if not seen:
            return None
        values = [r.per_request for _, r in seen]
        n = len(values)
        mean = sum(values) / n
        error = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n) * _widen(n) if n >= 2 else math.inf
        best_w, best = max(seen, key=lambda wr: wr[1].bytes)
        pids = sorted({w.pid for w, _ in seen})
        bounds = (f"{n} window{'s' if n > 1 else ''} in pid {', '.join(map(str, pids))}: "
                  f"{sum(w.seconds for w, _ in seen):.0f} s, {sum(r.requests for _, r in seen):,} requests of the "
                  f"route, {best_w.frames} frames deep")
        return Attribution(n, sum(r.requests for _, r in seen), PerRequest(mean, error, "B"), list(best.sites),
                           list(best.holders), bounds)

    def unrouted(self) -> float | None:
        """Bytes per request (all routes) that no handler allocated and were alive at the
        windows' close, over the kept windows (None: no window)."""
        if not self.windows:
            return None
        size = sum(r.bytes for w in self.windows if (r := w.route(NO_ROUTE)) is not None)
        return size / max(1, sum(sum(w.requests.values()) for w in self.windows))

    def refine(self, routes: list[RouteLine], server_growing: bool) -> None:
        """Give each of the server's route lines its attribution, call a leak on traced
        windows where the heap's analysis could not, and take back a leak of Python objects
        the windows rule out (see the module's docstring)."""
        unrouted = self.unrouted()
        for line in routes:
            line.attribution = self.attribution(line.route)
            att = line.attribution
            if att is not None and line.verdict == "leak" and line.bytes_from.startswith("blocks") \
                    and att.windows >= MIN_WINDOWS and math.isfinite(att.per_request.error) \
                    and att.per_request.value + 2 * att.per_request.error < TRACED_FLOOR \
                    and unrouted is not None and unrouted < TRACED_FLOOR:
                line.verdict = UNDECIDED
                line.reason += (f"; but the attribution windows saw its handler keep {att.per_request.value:+.1f} ± "
                                f"{att.per_request.error:.1f} B/request ({att.bounds}) and no handler "
                                f"{unrouted:+.1f}: the blocks are the server's, between requests")
                continue
            if att is None or line.verdict in ("leak", "bounded", "clean") or not server_growing:
                continue
            est = att.per_request
            latest = next((r for w in reversed(self.windows) if (r := w.route(line.route)) is not None
                           and r.requests >= MIN_ROUTE_REQUESTS), None)
            if att.windows >= MIN_WINDOWS and math.isfinite(est.error) and est.value - 2 * est.error > TRACED_FLOOR \
                    and latest is not None and latest.per_request > TRACED_FLOOR:
                was = line.verdict
                line.verdict, line.method, line.partner = "leak", "traced windows", None
                line.bytes, line.bytes_from = est, "traced windows (bytes alive at each window's close)"
                line.reason = (f"traced in {att.bounds}: {est.value:+.0f} ± {est.error:.0f} B/request of what its "
                               f"handler allocated still alive at each close, the latest window "
                               f"{latest.per_request:+.0f}; the heap's regression alone said: {was}")


#: Student's t at 97.5 % over the normal's, by windows (degrees of freedom + 1).
_T_OVER_Z = {2: 6.48, 3: 2.20, 4: 1.62, 5: 1.42, 6: 1.31, 7: 1.25, 8: 1.20}


def _widen(n: int) -> float:
    return _T_OVER_Z.get(n, 1.0 + 1.2 / max(n - 1, 1))
