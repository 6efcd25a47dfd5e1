"""The hunt protocol, written once; a probe decides where the app runs and how it is read.

Per route: tracing (re)started one frame deep -> ``warmup`` requests (as many for each worker
of a server hunted worker by worker: each warms up on its own) -> ``gc.collect()`` and a
baseline (USS from outside; traced size and a roots scan inside) -> rounds of
requests, each followed by ``gc.collect()`` and a reading of both signals ->
:func:`memprobe.hunt.model.judge` gives the verdict -> what grew is noted right after the
rounds -> for a route that grew, one short attribution round traced ``frames`` deep names the
allocation sites, and the types and holders come with them.

The rounds are either **sequential** (the default of :func:`hunt`): sized to take
``round_seconds`` at the time per request the warm-up measured, and after each reading
:func:`memprobe.hunt.sequential.decide` says whether the series already answers (then the
route stops), up to ``max_requests`` measured requests or ``max_seconds`` a route, after which
the judge decides on what there is; or **fixed**: ``rounds`` x ``requests`` (explicit counts,
``thorough=True``: 5 x 2,000 after 500 warm-up). Either way each route reports the sensitivity
it reached (the smallest leak its readings could have seen) and why it stopped. The warm-up of
the sequential protocol ends early when it would take more than a quarter of ``max_seconds``
(the note, and a bounded or leak verdict's reason, say what the cut risks).

After the judge, :func:`memprobe.hunt.evidence.weigh` keeps a ``clean`` only where the readings
could have seen the leaks looked for (else ``inconclusive``) and the route answered something
other than errors (else ``errors``).

``hunt(...)`` returns a :class:`~memprobe.results.hunt.HuntResult`; it raises
:class:`~memprobe.results.hunt.HuntFailed` when the target cannot be loaded or dies, and
:class:`~memprobe.results.hunt.HuntInterrupted` on Ctrl-C, each with what was measured on
``err.partial`` (the result is marked ``interrupted`` on Ctrl-C).
"""
from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable

from memprobe.capture.replay import Replay, RouteReplay, load_replay
from memprobe.errors import MemprobeError, TargetError, UsageError
from memprobe.http.load import LoadResult, merge_loads
from memprobe.hunt.evidence import weigh
from memprobe.hunt.model import account, judge, shared_growth, will_it_stop
from memprobe.hunt.parallel import resolve_jobs, side_by_side
from memprobe.hunt.probes import Attribution, Probe
from memprobe.hunt.sequential import LAST_SHARE, MIN_ROUNDS_LEAK, TARGET, clean_requests, decide, sensitivities
from memprobe.results.hunt import HuntFailed, HuntInterrupted, HuntResult, HuntSettings, Judgement, Reading, RouteResult
from memprobe.results.hunt_settings import SettingError

if TYPE_CHECKING:
    from memprobe.http.locust_engine import LocustEngine

__all__ = ["hunt", "hunt_in_process", "run"]

Progress = Callable[[str], None]
#: Sequential protocol: the warm-up's first, timed part; the smallest round; the smallest
#: attribution round when requests are slow.
WARMUP_PROBE = 20
MIN_ROUND = 20
MIN_ATTRIBUTED = 4


def hunt(target: Any = "", settings: HuntSettings | None = None, *, routes: list[str] | None = None,
         progress: Progress | None = None, load_engine: LocustEngine | None = None, **choices: Any) -> HuntResult:
    """Hunt for leaks in ``target`` (``file.py:app``, ``module:create_app()``...) served in a
    child with the agent inside; or in the server ``settings.cmd`` starts (a Python command
    gets the agent in every worker, any other is read from outside); or in the running process
    ``settings.pid`` serving ``settings.url`` (the agent attached, and stopped at the end).
    :mod:`memprobe.hunt.probes.compose` lists every way.

    ``settings`` (:class:`HuntSettings`) says how; or give its fields as keywords
    (``requests=500, rounds=3``: :meth:`HuntSettings.chosen`), not both. ``routes``: the
    paths to hunt (``{n}`` becomes a counter), else the app's own, else ``/``.
    ``load_engine``: a started :class:`~memprobe.http.locust_engine.LocustEngine` that sends
    the requests instead of memprobe's hammer.

    Raises :class:`~memprobe.errors.UsageError` for settings no hunt can use (before anything
    starts), :class:`~memprobe.results.hunt.HuntFailed` (with the cause's exit code and what was
    measured) when the target cannot be reached or dies, and
    :class:`~memprobe.results.hunt.HuntInterrupted` on Ctrl-C.
    """
    from memprobe.hunt.probes import compose

    if settings is None:
        settings = HuntSettings.chosen(**choices)
    elif not isinstance(settings, HuntSettings):
        raise UsageError(f"hunt()'s second argument is a HuntSettings, not {type(settings).__name__}: "
                         "give the routes as routes=[...]")
    elif choices:
        raise UsageError(f"hunt() takes settings or their fields as keywords, not both ({', '.join(choices)})")
    settings = replace(settings, mode=compose.mode_of(settings))
    settings.validate()
    if settings.jobs != "auto":
        resolve_jobs(settings.jobs)  # a bad count is a usage error before anything starts
    side_by_side_ok = settings.pid is None and settings.cmd is None and load_engine is None
    if not side_by_side_ok and settings.jobs not in (1, "1"):
        raise SettingError("jobs", "(routes side by side) needs an app hunted in children memprobe starts "
                           "from a target, with memprobe's own hammer: not a cmd, a pid or the Locust engine",
                           ("cmd", "pid"))
    if settings.replay is not None and load_engine is not None:
        raise UsageError("a replay (--replay) is sent by memprobe's own hammer, which sends each recorded "
                         "request in turn; drop --engine locust")
    todo = [normalise(r) for r in routes] if routes else None
    # a replayed route is named "POST /orders": the server is ready once / answers
    ready_path = todo[0] if todo and settings.replay is None else "/"
    if settings.replay is not None:
        load_replay(settings.replay, todo)  # a file that cannot be replayed: before anything starts
    probe: Probe
    more: Callable[[], Probe] | None = None
    if settings.pid is not None:
        assert settings.url is not None  # validate() saw to it
        probe = compose.running(settings.pid, settings.url, settings, load_engine)
    elif settings.cmd is not None:
        probe = compose.command(settings.cmd, settings, load_engine, ready_path)
    else:
        probe = compose.child(str(target), settings, load_engine)
        if load_engine is None:
            def more() -> Probe:
                return compose.child(str(target), settings)
    label = f"pid {settings.pid}" if settings.pid is not None else settings.cmd or str(target)
    return run(probe, label, todo, settings, progress, more=more)


def hunt_in_process(target: Any, settings: HuntSettings | None = None, *, routes: list[str] | None = None,
                    method: str | None = None, body: bytes | None = None, headers: dict[str, str] | None = None,
                    holders: bool = True, progress: Progress | None = None, **choices: Any) -> HuntResult:
    """Hunt for leaks in a WSGI app called in this process (``target``: a spec or the WSGI
    callable), by the fixed protocol (``rounds`` x ``requests``: the traced heap in-process is
    exact, and a test wants the same requests every run); the result's settings say
    ``"mode": "in_process"``. Without ``routes``, a Flask or Bottle app's parameterless GET
    routes are hunted, else ``/``. ``settings`` or their fields as keywords, as for :func:`hunt`;
    ``method``, ``body`` and ``headers`` (else the settings') shape every call."""
    from memprobe.hunt.probes import compose
    from memprobe.hunt.probes.inprocess import client_name

    if settings is None:
        choices.setdefault("uss", False)
        settings = HuntSettings.chosen(**{"sequential": False, **choices})
    elif not isinstance(settings, HuntSettings):
        raise UsageError(f"hunt_in_process()'s second argument is a HuntSettings, not "
                         f"{type(settings).__name__}: give the routes as routes=[...]")
    elif choices:
        raise UsageError(f"hunt_in_process() takes settings or their fields as keywords, not both "
                         f"({', '.join(choices)})")
    settings = replace(settings, mode="in_process", concurrency=1, client=client_name(), sequential=False)
    # the request's shape given here (the API's own keywords) or in the settings: one place after
    shape: dict[str, Any] = {k: v for k, v in (("method", method), ("body", body), ("headers", headers))
                             if v is not None}
    settings = replace(settings, **shape)
    settings.validate()
    probe = compose.in_process(target, settings, method=settings.method.upper(), body=settings.body_bytes,
                               headers=settings.request_headers or None, holders=holders)
    label = target if isinstance(target, str) else repr(target)
    return run(probe, label, [normalise(r) for r in routes] if routes else None, settings, progress)


def normalise(route: str) -> str:
    """A route as a path: ``api`` is ``/api``; a replayed route as the capture names it
    (``POST /orders``) stays as it is."""
    return route if route.startswith("/") or " /" in route else "/" + route


def run(probe: Probe, label: str, routes: list[str] | None, settings: HuntSettings,
        progress: Progress | None = None, *, more: Callable[[], Probe] | None = None) -> HuntResult:
    """Open ``probe``, hunt each route (``routes``, else the app's own, else ``/``), close it.
    With ``more`` (a new probe of the same app) and ``settings.jobs`` above 1, the routes are
    hunted side by side in that many children (:func:`memprobe.hunt.parallel.side_by_side`).
    Raises :class:`HuntFailed` or :class:`HuntInterrupted` with what was measured."""
    say = progress or (lambda _msg: None)
    replay = load_replay(settings.replay, routes) if settings.replay is not None else None
    result = HuntResult(target=label, settings=settings, outside_only=not probe.sees_inside)
    started = time.monotonic()
    try:
        try:
            say(f"starting {label}")
            info = probe.open()
            result.app_kind, result.framework, result.startup_s = info.kind, info.framework, info.startup_s
            result.target = info.label or label
            todo = list(replay.routes) if replay is not None else routes or info.routes or ["/"]
            if replay is not None:
                result.notes.append(f"the routes and requests replayed from the capture file {replay.path}")
            elif not routes and info.routes:
                result.notes.append(f"routes discovered from the app: {', '.join(todo)}")
            if not routes and info.routes_note and replay is None:
                result.notes.append(info.routes_note)
            result.notes += info.notes
            if more is not None and (n := min(resolve_jobs(settings.jobs), len(todo))) > 1:
                result.settings = settings = replace(settings, jobs=n)
                result.notes.append(f"routes hunted side by side in {n} children, each starting "
                                    "the app afresh")
                side_by_side(probe, more, todo, settings,
                             lambda p, route, into, stop: _Route(p, route, settings, say, stop,
                                                                 _replayed(replay, route, settings)).hunt(into),
                             result, n)
            else:
                if settings.jobs != 1:  # asked for, but one route (or one way to reach the app)
                    result.settings = settings = replace(settings, jobs=1)
                for route in todo:
                    try:
                        _Route(probe, route, settings, say, replayed=_replayed(replay, route, settings)).hunt(result)
                    except MemprobeError as err:
                        raise probe.failure(err, f"while hunting {route}") from None
        finally:
            probe.close()
    except KeyboardInterrupt:
        result.duration_s = time.monotonic() - started
        result.interrupted = True
        result.error = "interrupted"
        raise HuntInterrupted(result) from None
    except MemprobeError as err:
        result.duration_s = time.monotonic() - started
        result.error = str(err)
        raise HuntFailed(err, result) from err
    result.duration_s = time.monotonic() - started
    return result


def _replayed(replay: Replay | None, route: str, settings: HuntSettings) -> RouteReplay | None:
    """The route's replayed requests, the hunt's headers (``-H``) put over the recorded ones."""
    if replay is None:
        return None
    return replay.routes[route].with_headers(settings.request_headers)


class _Route:
    """One route's protocol: warm-up, baseline, rounds, verdict, attribution."""

    def __init__(self, probe: Probe, route: str, settings: HuntSettings, say: Progress,
                 cancelled: Callable[[], bool] | None = None, replayed: RouteReplay | None = None) -> None:
        self.probe, self.route, self.settings, self.say = probe, route, settings, say
        #: ``hunt --replay``: the route's recorded requests, sent in turn
        self.replayed = replayed
        #: side by side, off the main thread: Ctrl-C reaches this route as this turning True
        self.cancelled = cancelled
        #: ``{n}`` in the route: a counter that goes on across warm-up and rounds
        self.next = 0
        self.notes: list[str] = []
        #: every answer's status over everything the route was sent (2xx and 3xx too)
        self.statuses: dict[str, int] = {}
        #: the sequential warm-up cut short: (requests sent, requests asked, seconds each)
        self.cut: tuple[int, int, float] | None = None
        #: the measured rounds' load, merged as they come
        self.total: LoadResult | None = None
        self.readings: list[Reading] = []
        self.t0 = time.monotonic()
        #: why the rounds ended (RouteResult.stopped_because)
        self.stopped: str | None = None
        #: seconds the last reading took
        self.read_s = 0.0

    def send(self, n: int) -> LoadResult:
        if self.cancelled is not None and self.cancelled():
            raise KeyboardInterrupt  # as in the main thread: the rounds so far are judged
        if self.replayed is not None:
            load = self.probe.send(self.route, n, self.next, requests=self.replayed.templates)
        else:
            load = self.probe.send(self.route, n, self.next)
        self.next += n
        if load.answered == 0:
            raise TargetError(f"{self.route}: none of {load.sent} requests got an answer "
                              f"({', '.join(load.errors) or 'timeouts'})")
        for status, count in load.status_counts.items():
            self.statuses[status] = self.statuses.get(status, 0) + count
        return load

    def hunt(self, result: HuntResult) -> None:
        """Measure the route and append it to ``result`` (its finished rounds too, judged,
        when interrupted)."""
        probe, s, route = self.probe, self.settings, self.route
        share = LAST_SHARE if s.sequential else 0.0
        try:
            probe.begin(route)
            per_request = self.warm_up()
            # The in-process probe reads this very process: what the protocol keeps must not
            # grow between readings, so one merged load exists from the baseline on and each
            # round's own is dropped before the reading.
            self.total = LoadResult(route, probe.mode, 0, 0.0)
            self.readings.append(probe.read(0, baseline=True))
            if s.sequential:
                done, judgement = self.sequential(per_request)
            else:
                done = self.fixed()
                judgement = judge(self.readings, probe.memory)
                self.stopped = "fixed"
        except KeyboardInterrupt:
            if len(self.readings) >= 3:
                self.notes.append(f"{route}: interrupted after {len(self.readings) - 1} "
                                  + (f"of {s.rounds} rounds" if not s.sequential else "rounds"))
                self.stopped = "interrupted"
                judgement = shared_growth(judge(self.readings, probe.memory, share), probe.processes(),
                                          self.readings, share)
                result.routes.append(self.result(judgement, Attribution()))
            raise
        judgement = shared_growth(judgement, probe.processes(), self.readings, share)
        attribution = Attribution()
        if probe.sees_inside and judgement.verdict != "clean":
            # A clean route has nothing to attribute (and the roots scan, in the in-process
            # probe's own heap, would disturb the next route's readings).
            probe.growth(done)
            # Deep tracebacks only for one short round: they cost ~10x per allocation.
            n = s.attributed if not s.sequential else self.attributed(per_request)
            self.say(f"{route}: attribution round, {n} requests traced {s.frames} frames deep")
            probe.deepen()
            # A native leak's traced sites are noise: no referrer chains from their objects.
            attribution = probe.attribute(self.send(n).sent, chains=judgement.kind != "native")
            if account(judgement, attribution.allocator)[0].kind == "native":
                attribution.rss_lines = self.rss_lines(judgement)
        result.routes.append(self.result(judgement, attribution))

    def rss_lines(self, judgement: Judgement) -> list[dict[str, Any]]:
        """A native leak's lines, by RSS: the route's view run under memory_profiler's line
        profiler, where the probe serves the app itself (a note says why not, elsewhere)."""
        if self.replayed is not None:
            self.notes.append("the native leak's line was not looked for: the line profiler runs a route's "
                              "view with a bare GET, not the replayed requests")
            return []
        self.say(f"{self.route}: the view under memory_profiler's line profiler")
        slope = judgement.uss.slope if judgement.uss else 0.0
        found = self.probe.rss_lines(self.route, self.settings.attributed, slope, self.next)
        if found is None:
            self.notes.append(f"the native leak's line was not looked for: the route's view "
                              f"function can be run only in an app memprobe serves itself, not "
                              f"in {self.probe.mode} mode")
            return []
        lines, note = found
        # the calls the agent made ({n} numbered on), profiled and not
        self.next += max((1 + int(x.get("calls", 0)) + int(x.get("filled", 0)) for x in lines),
                         default=0)
        if note:
            self.notes.append(note)
        return list(lines)

    def warm_up(self) -> float:
        """Send the warm-up; answer the seconds per request it measured (0 without one). The
        sequential protocol times a first part of it and stops it early when the rest would
        take more than a quarter of ``max_seconds``."""
        s = self.settings
        if not s.warmup:
            return 0.0
        # Each process warms up on its own (free lists, caches, lazy imports): a server's
        # workers sharing one process's warm-up were still growing in the rounds, and their
        # growth, summed, crossed the bars (gunicorn -w 2's clean route once came out a leak).
        workers = self.probe.serving
        warmup = s.warmup * workers
        if workers > 1:
            self.notes.append(f"{self.route}: warm-up of {s.warmup} requests for each of {workers} "
                              f"workers ({warmup} in all)")
        self.say(f"{self.route}: warm-up, {warmup} requests")
        if not s.sequential:
            load = self.send(warmup)
            return load.duration_s / max(load.sent, 1)
        budget = s.max_seconds / 4
        t0 = time.monotonic()
        first = self.send(min(warmup, WARMUP_PROBE))
        per = first.duration_s / max(first.sent, 1)
        rest = warmup - first.sent
        if rest > 0 and per > 0:
            left = budget - (time.monotonic() - t0)
            allowed = max(0, int(left / per))
            if allowed < rest:
                self.cut = (first.sent + allowed, warmup, per)
                self.notes.append(self.cut_note(workers))
                rest = allowed
            if rest:
                load = self.send(rest)
                per = load.duration_s / max(load.sent, 1)
        return per

    def cut_note(self, workers: int) -> str:
        """What a warm-up cut short risks, and what gives it whole."""
        assert self.cut is not None
        sent, asked, per = self.cut
        each = (f"; each of {workers} workers got about {sent // workers:,} of its {asked // workers:,}"
                if workers > 1 else "")
        return (f"{self.route}: warm-up cut to {sent:,} of {asked:,} requests ({per * 1000:.1f} ms each), "
                f"to stay within a quarter of --max-seconds{each}: a process still warming up (caches, "
                f"free lists, lazy imports) grows in the rounds as a leak would, so growth on this "
                f"route may be warm-up; --max-seconds {self.whole_warmup_s():,.0f} gives the whole warm-up")

    def whole_warmup_s(self) -> float:
        """The ``max_seconds`` whose quarter holds the whole warm-up at the measured pace."""
        assert self.cut is not None
        _, asked, per = self.cut
        return max(self.settings.max_seconds, math.ceil(4 * asked * per * 1.1))

    def round_size(self, per_request: float, done: int) -> int:
        """Requests in the next sequential round: ``round_seconds`` worth (and at least as
        long as a reading), or more when that reaches the requests any early verdict needs
        (:func:`clean_requests`) in :data:`MIN_ROUNDS_LEAK` rounds, though never more than
        four times that long; at least :data:`MIN_ROUND`, within what is left of the maximum.
        A coarser target than the default (``--sensitivity 64``) shortens the rounds as much:
        a reading's noise is the same bytes, so a slope four times larger is resolved over a
        quarter of the requests."""
        s = self.settings
        seconds = max(s.round_seconds * min(1.0, TARGET / s.sensitivity), self.read_s)
        need = clean_requests(s.sensitivity)
        left = max(1, MIN_ROUNDS_LEAK - (len(self.readings) - 1))
        by_count = math.ceil(max(need - done, 0) / left)
        if per_request > 0:
            n = max(int(seconds / per_request), min(by_count, int(4 * seconds / per_request)))
        else:
            n = by_count
        return max(1, min(max(MIN_ROUND, n), s.max_requests - done))

    def attributed(self, per_request: float) -> int:
        """Requests of the sequential attribution round: at most ``attribution_requests``,
        fewer when they would take more than ~1 s traced deep (~10x the time per request), but
        at least :data:`MIN_ATTRIBUTED` (the allocators, types and holders come with it)."""
        s = self.settings
        if per_request <= 0:
            return s.attributed
        return min(s.attributed, max(MIN_ATTRIBUTED, int(1.0 / (10 * per_request))))

    def round(self, n: int, done: int) -> tuple[int, float]:
        """One measured round of ``n`` requests, then a reading: requests done, s/request."""
        load = self.send(n)
        done += load.sent
        per = load.duration_s / max(load.sent, 1)
        self.total = merge_loads(load.url, [load, self.total])  # type: ignore[list-item]
        del load
        t0 = time.monotonic()
        self.readings.append(self.probe.read(done))
        self.read_s = time.monotonic() - t0
        return done, per

    def fixed(self) -> int:
        """``rounds`` x ``requests``; answers the requests measured."""
        s, done = self.settings, 0
        for i in range(s.rounds):
            self.say(f"{self.route}: round {i + 1}/{s.rounds}, {s.requests} requests")
            done, _ = self.round(s.requests, done)
        return done

    def sequential(self, per_request: float) -> tuple[int, Judgement]:
        """Rounds until :func:`decide` answers or the maximum is reached; answers the
        requests measured and the judgement."""
        s, done, i = self.settings, 0, 0
        while True:
            n = self.round_size(per_request, done)
            i += 1
            self.say(f"{self.route}: round {i}, {n} requests ({done:,} so far)")
            done, per_request = self.round(n, done)
            decision = decide(self.readings, self.probe.memory, s.sensitivity)
            if decision is not None:
                self.stopped = decision.because
                return done, decision.judgement
            if len(self.readings) < 3:
                continue
            if done >= s.max_requests:
                self.stopped = "max_requests"
            elif time.monotonic() - self.t0 >= s.max_seconds:
                self.stopped = "time_limit"
            else:
                continue
            return done, judge(self.readings, self.probe.memory, LAST_SHARE)

    def result(self, judgement: Judgement, attribution: Attribution) -> RouteResult:
        notes = list(self.notes)
        if self.replayed is not None:
            notes.insert(0, self.replayed.note())
        allocator = attribution.allocator
        load = _load_summary(self.total)
        judgement = will_it_stop(judgement, attribution.holders, self.readings[-1].requests,
                                 float(load["throughput_rps"]))
        judgement, said = account(judgement, allocator)
        if allocator is not None and said:
            allocator = {**allocator, "explanation": said}
        bad = {k: v for k, v in self.statuses.items() if not k.startswith(("2", "3"))}
        if bad:
            notes.insert(0, f"{self.route}: answered "
                         + ", ".join(f"{v} x {k}" for k, v in sorted(bad.items())))
        s = self.settings
        weighed = weigh(judgement, self.readings, target=s.sensitivity, stopped=self.stopped,
                        statuses=self.statuses, seconds=time.monotonic() - self.t0, memory=self.probe.memory,
                        max_seconds=s.max_seconds if s.sequential else None,
                        max_requests=s.max_requests if s.sequential else None)
        judgement = weighed.judgement
        if self.replayed is not None and judgement.verdict == "errors":
            judgement = replace(judgement, reason=self.replayed.rejected(self.statuses))
        if self.cut is not None and judgement.verdict in ("leak", "bounded"):
            sent, asked, _ = self.cut
            judgement = replace(judgement, reason=(
                f"{judgement.reason}; the warm-up was cut to {sent:,} of {asked:,} requests: some of this "
                f"growth may be warm-up (--max-seconds {self.whole_warmup_s():,.0f} gives it whole)"))
        return RouteResult(judgement=judgement, readings=self.readings, sites=attribution.sites,
                           types=attribution.types, holders=attribution.holders, route=self.route,
                           load=load, duration_s=time.monotonic() - self.t0, notes=notes,
                           timings_s=attribution.timings_s, workers=self.probe.processes(),
                           memory=self.probe.memory, allocator=allocator,
                           rss_lines=attribution.rss_lines,
                           sensitivity=self.sensitivity(judgement), stopped_because=self.stopped,
                           judged=weighed.judged, advice=weighed.advice)

    def sensitivity(self, judgement: Judgement) -> dict[str, float | None]:
        """Per signal, the smallest leak the readings could have seen: over the whole series,
        or for growth that stopped, over the flat late half that decided it. Held to the
        tenths JSON keeps, so that a report read back says what the live one said."""
        readings = self.readings
        if judgement.verdict == "bounded" and len(readings) > 4:
            readings = readings[(len(readings) - 1) // 2:]
        return {k: (round(v, 1) if v is not None and math.isfinite(v) else v)
                for k, v in sensitivities(readings).items()}


def _load_summary(total: LoadResult | None) -> dict[str, Any]:
    """A route's measured rounds in one: counts, statuses, requests per second."""
    if total is None or not total.sent:
        return {"sent": 0, "ok": 0, "failed": 0, "status_counts": {}, "throughput_rps": 0.0}
    return {"sent": total.sent, "ok": total.ok, "failed": total.failed,
            "status_counts": dict(sorted(total.status_counts.items())),
            "throughput_rps": round(total.sent / total.duration_s, 1) if total.duration_s else 0.0}

