"""From windows to bytes kept per request, per route, per worker and for the server (pure: no
I/O, no processes, bounded memory).

What each decision rests on, and what it can see:

**The signals.** ``blocks`` (``sys.getallocatedblocks()``) counts Python objects exactly and
cheaply: the sensitive signal, but in blocks, not bytes (a leaked int and a leaked 300-byte
string are one block each). ``heap_bytes`` (glibc's ``uordblks``) is bytes the C allocator has
handed out: honest for C allocations and for Python objects over 512 B, blind to small objects
in pymalloc's arenas (those are mmapped). ``uss`` is what the worker alone holds, read from
outside: the honest total, in 4 KiB pages, so its bar is high. Bytes per request are
``heap_bytes``' where it was read, else blocks x :data:`~memprobe.hunt.model.BLOCK_BYTES` (64 B,
hunt's measured average of a leaked block; the report says which). A route is judged on blocks
and heap bytes; USS is shown beside them and feeds the time to the limit.

**(a) Requests that ran alone** (a window with ``max_in_flight <= 1``, one thread, not ASGI,
and ``alone_deltas``: a sync worker): each request's own change of blocks, corrected for what a request leaves to be
freed while the next one runs (:func:`corrected`). The estimate is their **mean**, not their
median: a route that keeps memory only for some request data (a POST with a certain field)
has a median of 0, and the mean is what accumulates; a gc pass that frees earlier requests'
garbage inside one request is a negative outlier that belongs in the sum for the same reason.
The error is the standard error of the mean (the deltas are independent requests). Used for
blocks once a route has :data:`MIN_ALONE` of them.

**(b) Requests that overlap**: the heap's growth since the series began, over the windows,
regressed on each route's cumulative requests **and on time** (the constant term: background
growth per second, a log buffer or a cache filled by a timer, must not be charged to the
busiest route). Least squares from co-moments kept in bounded epochs
(:mod:`memprobe.watch.stats`), standard errors from the residuals. Levels, not per-window
differences, are regressed: the noise of a heap reading (objects in flight) is a level's, it
does not add up, and cumulative counts spread far more than per-window counts. What it can
see: a route's slope is known only as far as its requests varied independently of the other
routes' and of time. Traffic at a perfectly steady rate cannot tell a route from background
growth, and two routes always called together (a page and its redirect) cannot be told from
each other: their variance inflation (:data:`~memprobe.watch.stats.VIF_COLLINEAR`) says so,
and the verdict is "cannot be separated from route Y" (Y the most entangled partner), with
their sum given.

**Verdicts** (per signal, then the route's): ``leak`` when the slope clears
:data:`~memprobe.hunt.model.SIGMAS` standard errors and the signal's floor (:data:`FLOOR`) and
growth goes on in the later half of the series; ``bounded`` when it grew but the later half's
slope is clearly below a quarter of the whole (hunt's idea of growth that stopped); ``clean``
only when the slope plus its error bar is under :data:`SENSITIVITY` (a leak that large would have shown);
otherwise ``not enough traffic yet`` (also below :data:`MIN_REQUESTS` requests or
:data:`MIN_POINTS` windows) or ``cannot be separated from route Y``. Traffic that never
reached a route is never clean.

**Workers**: each pid is its own series (a respawned worker starts a new one); the server's
series adds every worker's differences, so it carries on across respawns. A window that does
not follow its worker's previous one (a lost window) contributes neither its difference nor
its requests.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from memprobe.hunt.model import BLOCK_BYTES, BLOCKS_FLOOR, SIGMAS, USS_FLOOR
from memprobe.results.watch import PerRequest, RouteLine, Timeline, Window, WorkerLine
from memprobe.watch.series import ALL_ALONE, COORD, ROUTE0, SIGNALS, Series, corrected, jackknifed
from memprobe.watch.stats import Coefficient, Moments, Regression, Running, combined, regress, with_sum

#: A slope must clear this per request (blocks: hunt's floor, above the worst clean
#: hello-world; bytes: a quarter of a small leaked object; USS: hunt's).
FLOOR = {"blocks": BLOCKS_FLOOR, "heap_bytes": 64.0, "uss": USS_FLOOR}
#: "clean" needs an error bar (SIGMAS standard errors) at or below this per request: the
#: smallest leak the verdict promises to have seen (0.5 block = 32 B at 64 B a block).
SENSITIVITY = {"blocks": 0.5, "heap_bytes": 64.0, "uss": 1024.0}
#: Below these a route is "not enough traffic yet" whatever its figures.
MIN_REQUESTS = 30
MIN_POINTS = 8
#: A worker's first windows give no alone deltas: a fresh worker's first requests fill its
#: caches and free lists, and a worker respawned mid-watch would bring that warm-up into the
#: late half of the server's series (a successor made GET /health leak +13.7 ± 3.7 blocks).
WARMUP_WINDOWS = 2
#: Deltas of requests that ran alone a route needs before they are its estimate.
MIN_ALONE = 30
#: Growth "stopped" when the later half's slope, plus its bar, is below this share of the whole.
STOPPED_SHARE = 0.25
#: The verdict when the error bar is too wide to say anything.
UNDECIDED = "not enough traffic yet"
#: A partner route is entangled when its partial correlation with the route passes this.
ENTANGLED = 0.5
#: Routes kept by name; later ones are counted together.
MAX_ROUTES = 64
OTHER_ROUTES = "(other routes)"
#: Timeline points kept (thinned by half when twice as many were taken).
TIMELINE_POINTS = 240
#: Workers no longer sending windows kept in the report.
GONE_KEPT = 16
#: A worker's own fit of a route weighs in on the server's leak when its error is within this
#: many times the server's (two workers' series each should have about 1.4 times the server's
#: error; under uvicorn they had 4.2 times, and said nothing of a false C-heap leak).
WORKER_SHARPNESS = 6.0
#: A window that starts more than this after its worker's previous one ended follows a lost one.
GAP_SLACK_S = 0.5


def _coefficient(fit: Regression | None, coord: int) -> Coefficient | None:
    return fit.coefficients.get(coord) if fit is not None else None



@dataclass
class _Worker:
    series: Series
    last: Window
    windows: int = 1
    first: Window | None = None
    alive: bool = True


class Analysis:
    """The state of a watch: feed it windows (:meth:`add`), ask for the lines (:meth:`routes`,
    :meth:`workers`, :meth:`timeline`). Its memory is bounded whatever the number of windows:
    epochs merge, the timeline thins, gone workers beyond :data:`GONE_KEPT` are dropped."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.index: dict[str, int] = {}
        self.t0: float | None = None
        self.server: Series | None = None
        self.live: dict[int, _Worker] = {}
        self.gone: dict[int, _Worker] = {}
        self.windows = 0
        self.lost = 0
        self.replaced = 0
        self._tl_stride = 1
        self._tl_taken = 0
        self._timeline: list[tuple[float, tuple[int, ...], float]] = []
        #: per series (by id), its whole fits, while no window was added since (``_fits_at``)
        self._fits: dict[int, dict[str, Regression | None]] = {}
        self._fits_at = -1

    def route_index(self, name: str) -> int:
        """The route's coordinate (routes past :data:`MAX_ROUTES` share one)."""
        if name not in self.index:
            if len(self.names) >= MAX_ROUTES - 1 and name != OTHER_ROUTES:
                return self.route_index(OTHER_ROUTES)
            self.index[name] = len(self.names)
            self.names.append(name)
        return self.index[name]

    def add(self, window: Window) -> None:
        """One worker's window (in the order each worker sent them)."""
        self.windows += 1
        if self.t0 is None:
            self.t0 = window.start
            self.server = Series(None, window.start)
        assert self.server is not None
        requests: dict[int, int] = {}
        for name, n in window.requests.items():
            i = self.route_index(name)
            requests[i] = requests.get(i, 0) + n
        alone: dict[int, list[int]] = {}
        # A request that ran alone in the app ran alone in the process only in a one-thread
        # synchronous worker: a gthread worker's main thread reads the next requests meanwhile,
        # an event loop serves other connections (GET /health +16.7 ± 2.0 blocks a request
        # "alone" under gthread, keeping nothing).
        if window.max_in_flight <= 1 and window.threads <= 1 and not window.asynchronous:
            for name, deltas in window.alone_deltas.items():
                alone.setdefault(self.route_index(name), []).extend(deltas)
                alone.setdefault(ALL_ALONE, []).extend(deltas)
                after = window.alone_after.get(name) or []
                if len(after) == len(deltas):
                    for d, prev in zip(deltas, after):
                        if prev:
                            alone.setdefault(-1 - self.route_index(prev), []).append(d)
        self._retire_stale(window)
        worker = self.live.get(window.pid)
        self.server.count(window.start, window.end, requests)
        if worker is None:
            if window.pid in self.gone:  # a worker thought gone that speaks again
                worker = self.live[window.pid] = self.gone.pop(window.pid)
                worker.alive = True
            else:
                series = Series(window.pid, self.t0)
                series.count(window.start, window.end, requests)
                self.live[window.pid] = _Worker(series, window, first=window)
                return  # a worker's first window: warm-up (see WARMUP_WINDOWS), no alone deltas
        worker.series.count(window.start, window.end, requests)
        worker.windows += 1
        if worker.windows <= WARMUP_WINDOWS:
            alone = {}
        previous, worker.last = worker.last, window
        if window.start > previous.end + GAP_SLACK_S:
            self.lost += 1  # the lost window's growth and requests are both unknown: leave both out
            self._alone_only(worker.series, alone)
            return
        diffs = {s: getattr(window, s) - getattr(previous, s) for s in SIGNALS
                 if getattr(window, s) is not None and getattr(previous, s) is not None}
        if not diffs:
            self._alone_only(worker.series, alone)
            return
        worker.series.add(window.end, requests, diffs, alone)
        point = self.server.add(window.end, requests, diffs, alone)
        if point is not None:
            self._sample_timeline(window.end - self.t0)

    def _alone_only(self, series: Series, alone: dict[int, list[int]]) -> None:
        if alone and self.server is not None:
            series.epochs.add(None, alone)
            self.server.epochs.add(None, alone)

    def _retire_stale(self, window: Window) -> None:
        """Workers silent for three of their windows (at least 5 s) are gone; a new pid while
        one is gone is its replacement."""
        for pid, w in list(self.live.items()):
            if pid != window.pid and window.end - w.last.end > max(3 * w.last.seconds, 5.0):
                w.alive = False
                self.gone[pid] = self.live.pop(pid)
        while len(self.gone) > GONE_KEPT:
            self.gone.pop(next(iter(self.gone)))
        if window.pid not in self.live and window.pid not in self.gone and self.windows > 1 and self.gone:
            self.replaced += 1

    def _sample_timeline(self, t: float) -> None:
        self._tl_taken += 1
        if self._tl_taken % self._tl_stride:
            return
        assert self.server is not None
        signal = self.bytes_signal(self.server)
        counts = tuple(self.server.cumulative.get(r, 0) for r in range(len(self.names)))
        self._timeline.append((t, counts, self.server.growth.get(signal, 0.0)))
        if len(self._timeline) >= 2 * TIMELINE_POINTS:
            self._timeline = self._timeline[1::2]
            self._tl_stride *= 2

    # -- reading the state ---------------------------------------------------------------

    @staticmethod
    def bytes_signal(series: Series) -> str:
        """The signal bytes per request rest on: heap bytes where read, else blocks."""
        return "heap_bytes" if series.signals and "heap_bytes" in series.signals else "blocks"

    def routes(self, series: Series | None = None) -> list[RouteLine]:
        """The per-route lines of a series (the server's by default), busiest first."""
        series = series or self.server
        if series is None:
            return []
        halves = {h: series.epochs.total(h) for h in ("", "early", "late")}
        regressors = [0] + [ROUTE0 + r for r in range(len(self.names))]
        fits = {h: {s: regress(m, COORD[s], regressors) for s in series.signals or ()}
                for h, (m, _) in halves.items()}
        fits[""] = self._whole_fits(series, halves[""][0])
        span = max(series.last_t - (series.last_t if series.first_t is None else series.first_t), 1e-9)
        return [self._route_line(series, r, halves, fits, span)
                for r in sorted(series.seen, key=lambda i: -series.seen[i])]

    def _whole_fits(self, series: Series, whole: Moments | None = None) -> dict[str, Regression | None]:
        """Each signal's fit over the whole series, its errors the epochs' jackknife (a leak is
        called on them; the halves keep least squares', as they only tell growth that stopped
        from growth that goes on, after the whole, or the early half, has grown)."""
        if self._fits_at != self.windows:
            self._fits, self._fits_at = {}, self.windows
        known = self._fits.get(id(series))
        if known is not None:
            return known  # nothing was added since: the server's lines and its workers' share them
        regressors = [0] + [ROUTE0 + r for r in range(len(self.names))]
        whole = whole if whole is not None else series.epochs.total()[0]
        parts = [m for m, _ in series.epochs.parts("")]
        out: dict[str, Regression | None] = {}
        for s in series.signals or ():
            fit = regress(whole, COORD[s], regressors)
            out[s] = jackknifed(fit, parts, COORD[s], regressors) if fit is not None else None
        self._fits[id(series)] = out
        return out

    def _workers_disagree(self, signal: str, r: int, est: PerRequest) -> str | None:
        """Why the server's leak ``est`` of route ``r`` on ``signal`` is not the workers' (None:
        they agree, or none has a fit sharp enough to say): the slopes of their own series whose
        error is within :data:`WORKER_SHARPNESS` times the server's, combined by their errors,
        do not clear two errors. The server's series adds the workers' growth window by window;
        the same data in each worker's own series must show the leak too (under gthread, ``GET
        /health`` +22.5 ± 7.3 blocks a request on the server's, +10.3 ± 7.2 and +7.5 ± 22.0 on
        its two workers', keeping nothing). A worker whose own traffic hardly varied (its fit's
        error far above the server's) says nothing either way."""
        workers = (*self.live.values(), *self.gone.values())
        found = [c for w in workers
                 if (c := _coefficient(self._whole_fits(w.series).get(signal), ROUTE0 + r)) is not None
                 and 0 < c.error <= WORKER_SHARPNESS * est.error]
        if not found:
            return None
        weight = sum(1 / c.error ** 2 for c in found)
        mean = sum(c.value / c.error ** 2 for c in found) / weight
        error = math.sqrt(1 / weight)
        if mean - 2 * error > 0:
            return None
        unit = "blocks" if signal == "blocks" else "B"
        return (f"{signal}: its workers' own series say {mean:+.2f} ± {error:.2f} {unit}/request together, "
                "not clear beyond two errors")

    def _route_line(self, series: Series, r: int, halves: dict[str, tuple[Moments, dict[int, Running]]],
                    fits: dict[str, dict[str, Regression | None]], span: float) -> RouteLine:
        name, seen = self.names[r], series.seen.get(r, 0)
        regressors = [0] + [ROUTE0 + i for i in range(len(self.names))]
        whole, alone = halves[""]
        line = RouteLine(name, seen, seen / span, UNDECIDED, pid=series.pid)
        figures: dict[str, tuple[PerRequest, str, str | None]] = {}
        doubts: list[str] = []
        for s in series.signals or (("blocks",) if r in alone else ()):
            unit = "blocks" if s == "blocks" else "B"
            coef_blocks = _coefficient(fits[""].get(s), ROUTE0 + r) if s == "blocks" else None
            mine = corrected(alone, r)
            if s == "blocks" and mine is not None and mine.n >= MIN_ALONE and (
                    coef_blocks is None or not math.isfinite(coef_blocks.error)
                    or mine.error <= coef_blocks.error):
                # The sharper of the two: requests that ran alone are exact one by one but a gc
                # pass inside one swings it by hundreds of blocks (measured under gunicorn sync:
                # +-150 blocks a request on a clean route); the regression over levels does not
                # add those swings up.
                means = {h: corrected(halves[h][1], r) for h in halves}
                est = PerRequest(mine.mean, mine.error, unit)
                parts = {h: PerRequest(m.mean, m.error, unit) for h, m in means.items()
                         if h and m is not None and m.n >= MIN_ALONE // 2}
                word, partner = self._word(s, est, parts.get("early"), parts.get("late")), None
                if word == "leak" and (parts.get("late") is None or self._significance(s, parts["late"]) != "leak"):
                    # A worker's first requests fill its caches and free lists: what they keep is
                    # warm-up unless the later requests keep it too (a fresh gunicorn worker's first
                    # 100 requests of a clean route came out a leak).
                    word = UNDECIDED
                if word in ("leak", "bounded"):
                    # the same bound as the regression's: a bias every delta shares (the correction
                    # takes out what one route leaves to the next, not that) cannot keep more than
                    # the series grew (gunicorn sync: every route +10 to +16 blocks a request alone)
                    doubt = self._beyond_growth(series, s, r, est, None)
                    if doubt is not None:
                        word = UNDECIDED
                        doubts.append(doubt)
                line.method = "alone"
            else:
                coefs = {h: _coefficient(f.get(s), ROUTE0 + r) for h, f in fits.items()}
                coef = coefs[""]
                if coef is None:
                    continue
                est = PerRequest(coef.value, coef.error, unit)
                parts = {h: PerRequest(c.value, c.error, unit) for h, c in coefs.items() if h and c is not None}
                word, partner = self._word(s, est, parts.get("early"), parts.get("late")), None
                if word == UNDECIDED:
                    est, word, partner = self._together(halves, s, r, coef, est, regressors)
                elif word in ("leak", "bounded"):
                    seesaw = self._seesaw(fits[""].get(s), s, r)
                    if seesaw is not None:
                        est, word, partner = self._together(halves, s, r, coef, est, regressors, seesaw)
                        if word in ("clean", UNDECIDED):  # together they keep nothing, or cannot say
                            word, partner = UNDECIDED, None
                if word in ("leak", "bounded") or word.startswith("cannot be separated"):
                    doubt = self._beyond_growth(series, s, r, est, partner)
                    if doubt is None and word == "leak" and series is self.server:
                        doubt = self._workers_disagree(s, r, est)
                    if doubt is not None:
                        word, partner = UNDECIDED, None
                        doubts.append(doubt)
                line.method = line.method or "regression"
            figures[s] = (est, word, partner)
        if "uss" in figures:
            line.uss = figures["uss"][0]
        if "blocks" in figures:
            line.blocks = figures["blocks"][0]
        grew = ("leak", "bounded")
        python_only = ("blocks" in figures and figures["blocks"][1] in grew
                       and not ("heap_bytes" in figures and figures["heap_bytes"][1] in grew))
        if "heap_bytes" in figures and not python_only:
            line.bytes, line.bytes_from = figures["heap_bytes"][0], "heap_bytes"
        elif line.blocks is not None:  # objects that stay: heap_bytes cannot see pymalloc's small ones
            blk = line.blocks
            line.bytes = PerRequest(blk.value * BLOCK_BYTES, blk.error * BLOCK_BYTES, "B")
            line.bytes_from = f"blocks x {BLOCK_BYTES:.0f} B (assumed)"
        judged = [figures[s] for s in ("blocks", "heap_bytes") if s in figures]
        if seen == 0 or series.cumulative.get(r, 0) < MIN_REQUESTS and line.method != "alone":
            line.reason = (f"{series.cumulative.get(r, 0)} requests measured, fewer than {MIN_REQUESTS}"
                           if seen else "no request reached it")
            return line
        if line.method != "alone" and whole.n < MIN_POINTS:
            line.reason = f"{whole.n} windows measured, fewer than {MIN_POINTS}"
            return line
        words = {s: w for s, (_, w, _) in figures.items()}
        for word in ("leak", "bounded"):
            # Python objects that stay are a leak by themselves; the C heap only with USS agreeing:
            # both move in chunks (arenas, pages), and either alone named clean routes here.
            if words.get("blocks") == word or (words.get("heap_bytes") == word and words.get("uss") == word):
                line.verdict = word
                break
        else:
            if not judged:
                line.reason = "no heap reading"
                return line
            word, partner = judged[0][1], judged[0][2]
            if word in ("leak", "bounded"):  # the C heap alone, USS not agreeing: not yet evidence
                word = UNDECIDED
            line.verdict, line.partner = word, partner
        line.reason = self._reason(line, figures) + "".join(f"; {d}" for d in doubts)
        return line

    @staticmethod
    def _significance(signal: str, est: PerRequest) -> str:
        """leak (clears the floor and the bar), clean (the bar is under the sensitivity), or
        :data:`UNDECIDED`."""
        bar = SIGMAS * est.error
        if math.isfinite(est.error) and est.value > max(FLOOR[signal], bar):
            return "leak"
        if math.isfinite(est.error) and est.value + bar < -SENSITIVITY[signal]:
            # Memory kept per request cannot be clearly negative for long: the traffic mix left
            # the fit unable to tell this route (-37.6 ± 8.2 blocks/request "clean", together
            # with a partner, for a route that kept +100 B a request).
            return UNDECIDED
        if math.isfinite(est.error) and est.value + bar <= SENSITIVITY[signal]:
            # the upper bound, not the bar alone: +0.33 ± 0.11 blocks/request was called clean
            return "clean"
        return UNDECIDED

    def _word(self, signal: str, est: PerRequest, early: PerRequest | None = None,
              late: PerRequest | None = None) -> str:
        """The signal's verdict from the whole series and its halves: growth (in the whole, or
        in the early half) that the late half shows clearly stopped is bounded."""
        whole = self._significance(signal, est)
        grew = whole == "leak" or (early is not None and self._significance(signal, early) == "leak")
        if grew:
            ref = max(est.value, early.value if early is not None else 0.0)
            if late is not None and math.isfinite(late.error) and \
                    late.value + SIGMAS * late.error < STOPPED_SHARE * ref:
                return "bounded"
        # The late half alone never calls a leak: its least-squares error is the one the
        # jackknife showed too small (a clean route came out a leak from its late half).
        return whole

    def _seesaw(self, fit: Regression | None, signal: str, r: int) -> int | None:
        """The route whose slope on ``signal`` is clearly negative, the most so, when route ``r``
        grows on it (None: none is): memory kept per request cannot be negative, so the fit is
        trading one's growth for the other's (under uvicorn, ``GET /items`` +9,221 ± 2,806 B a
        request on the C heap beside ``GET /`` -13,371 ± 2,609, both keeping nothing)."""
        if fit is None:
            return None
        worst, partner = 0.0, None
        for k, c in fit.coefficients.items():
            if k < ROUTE0 or k == ROUTE0 + r or not math.isfinite(c.error):
                continue
            top = c.value + SIGMAS * c.error
            if top < -FLOOR[signal] and top < worst:
                worst, partner = top, k
        return partner

    def _beyond_growth(self, series: Series, signal: str, r: int, est: PerRequest,
                       partner: str | None) -> str | None:
        """Why route ``r``'s slope on ``signal`` cannot be what it kept (None: it can): its
        estimate times its requests is more than twice what the whole series grew on that
        signal. Retention adds up, so one route cannot keep more than the server grew; a slope
        that says so is the fit trading the route against time or the other routes, whose
        negative coefficients need not be clear one by one (under uvicorn, ``GET /`` +16,404 ±
        4,646 B a request on the C heap, USS agreeing: 81 MB over its 4,952 requests while the
        heap grew 6.5 MB in all; ``GET /health`` +12,695 ± 4,208: 21 MB of 5.8)."""
        n = series.cumulative.get(r, 0)
        if partner is not None:
            n += series.cumulative.get(self.index.get(partner.removeprefix("route "), -1), 0)
        kept = est.value * n
        grew = max(series.growth.get(signal, 0.0), 0.0)
        if kept <= 2 * grew:
            return None
        unit = "blocks" if signal == "blocks" else "B"
        return (f"{signal}: over its {n:,} requests it would keep {kept:,.0f} {unit}, more than twice what "
                f"the series grew in all ({grew:,.0f} {unit}): the fit traded it against time or other routes")

    def _together(self, halves: dict[str, tuple[Moments, dict[int, Running]]], signal: str, r: int,
                  coef: Coefficient, est: PerRequest, regressors: list[int],
                  partner: int | None = None) -> tuple[PerRequest, str, str | None]:
        """A route refitted with another counted as one (the figure is then per request of
        either): its most entangled route when it is undecided, or ``partner``. If the two
        together are decided, the traffic mix is what hides which one it is (a leak together:
        "cannot be separated"; clean together: both clean, retention being positive)."""
        routes = [x for x in regressors if x != 0 and x != ROUTE0 + r]
        if partner is None:
            partner = coef.partner(routes)
            if partner is None or coef.partials.get(partner, 0.0) < ENTANGLED:
                return est, UNDECIDED, None
        name = f"route {self.names[partner - ROUTE0]}"
        fits: dict[str, PerRequest] = {}
        for h, (m, _) in halves.items():
            if m.n == 0 or max(ROUTE0 + r, partner) >= len(m.mean):
                continue  # a half before either route was first seen
            merged, d = with_sum(m, ROUTE0 + r, partner)
            keep = [x for x in regressors if x not in (ROUTE0 + r, partner)] + [d]
            fit = regress(merged, COORD[signal], keep)
            c = fit.coefficients.get(d) if fit else None
            if c is not None:
                fits[h] = PerRequest(c.value, c.error, est.unit)
        if "" not in fits:
            return est, UNDECIDED, None
        word = self._word(signal, fits[""], fits.get("early"), fits.get("late"))
        if word == "clean":
            return fits[""], "clean", name
        if word in ("leak", "bounded"):
            return fits[""], f"cannot be separated from {name}", name
        return est, UNDECIDED, None

    @staticmethod
    def _reason(line: RouteLine, figures: dict[str, tuple[PerRequest, str, str | None]]) -> str:
        parts = []
        for s, (est, word, _) in figures.items():
            err = f"{est.error:.2f}" if math.isfinite(est.error) else "?"
            parts.append(f"{s} {est.value:+.2f} ± {err} {est.unit}/request ({word})")
        how = ("the mean of requests that ran alone" if line.method == "alone"
               else "regression over windows")
        together = f" (with {line.partner}, counted as one)" if line.partner else ""
        return f"{how}{together}: " + "; ".join(parts)

    def served(self, pid: int) -> int:
        """The requests a live worker was seen serving (0: not a live worker)."""
        worker = self.live.get(pid)
        return sum(worker.series.seen.values()) if worker is not None else 0

    def workers(self) -> list[WorkerLine]:
        """A line per worker, live ones first (each with its own route lines)."""
        out = []
        for w in list(self.live.values()) + list(self.gone.values()):
            s = w.series
            whole, _ = s.epochs.total()
            line = WorkerLine(s.pid or 0, s.first_t or 0.0, s.last_t, sum(s.seen.values()), w.windows,
                              w.last.rss, w.last.uss, w.last.pss, w.first.uss if w.first else None, w.alive,
                              routes=self.routes(s))
            signal = "uss" if s.signals and "uss" in s.signals else self.bytes_signal(s)
            scale = BLOCK_BYTES if signal == "blocks" else 1.0
            per_s = combined(whole, COORD[signal], {0: 1.0}) if s.signals else None
            if per_s is not None:
                line.growth_per_s = PerRequest(per_s[0] * scale, per_s[1] * scale, "B/s")
            weights = {ROUTE0 + r: 1.0 for r in s.cumulative}
            per_req = combined(whole, COORD[signal], weights) if s.signals and weights else None
            if per_req is not None:
                line.growth_per_request = PerRequest(per_req[0] * scale, per_req[1] * scale, "B")
            out.append(line)
        return out

    def server_growing(self) -> bool:
        """Whether the server's Python heap grows with its requests, all routes together (blocks
        regressed on every request served: :data:`SIGMAS` standard errors and 0.05 block a
        request clear). The attribution windows' trigger, not a verdict."""
        s = self.server
        if s is None or not s.signals or "blocks" not in s.signals or not s.cumulative:
            return False
        whole, _ = s.epochs.total()
        got = combined(whole, COORD["blocks"], {ROUTE0 + r: 1.0 for r in s.cumulative})
        return got is not None and got[1] > 0 and got[0] > max(SIGMAS * got[1], 0.05)

    def timeline(self, lines: list[RouteLine] | None = None) -> Timeline:
        """Per route, the cumulative bytes retained at window ends (the route's current
        bytes per request, of ``lines`` or of :meth:`routes`, times its requests so far), and
        the growth measured."""
        by_route = {line.route: line for line in (self.routes() if lines is None else lines)}
        assert self.server is not None or not self._timeline
        signal = self.bytes_signal(self.server) if self.server else "blocks"
        scale = BLOCK_BYTES if signal == "blocks" else 1.0
        out = Timeline(signal="heap_bytes" if signal == "heap_bytes" else f"blocks x {BLOCK_BYTES:.0f} B")
        for t, _counts, measured in self._timeline:
            out.t.append(t)
            out.measured.append(measured * scale)
        for r, name in enumerate(self.names):
            line = by_route.get(name)
            if line is None or line.bytes is None:
                continue
            out.retained[name] = [line.bytes.value * (counts[r] if r < len(counts) else 0)
                                  for _, counts, _ in self._timeline]
        return out

    def notes(self) -> list[str]:
        """What the reader should know about the series themselves."""
        out = []
        if self.lost:
            out.append(f"{self.lost} window(s) did not follow their worker's previous one (lost): their "
                       "growth and requests are left out")
        gone = [w.series.pid for w in self.gone.values()]
        if gone:
            out.append(f"worker(s) {', '.join(map(str, gone))} stopped sending windows (respawned or lost); "
                       "each new pid starts its own series, the server's figures carry on")
        if OTHER_ROUTES in self.index:
            out.append(f"more than {MAX_ROUTES - 1} routes: the later ones are counted together as {OTHER_ROUTES}")
        return out
