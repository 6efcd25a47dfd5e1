"""The hunt protocol, written once; a probe decides where the app runs and how it is read.

Per route: tracing (re)started one frame deep -> ``warmup`` requests -> ``gc.collect()`` and a
baseline (USS from outside; traced size, a roots scan and type counts inside) -> ``rounds``
rounds of ``requests`` requests, each followed by ``gc.collect()`` and a reading of both
signals -> :func:`memprobe.hunt.model.judge` gives the verdict -> what grew is noted right after
the rounds -> for a route that grew, one short attribution round traced ``frames`` deep names
the allocation sites, and the holders come with them.

``hunt(...)`` returns a :class:`~memprobe.results.hunt.HuntResult`; it raises
:class:`~memprobe.errors.TargetError` when the target cannot be loaded or dies, and lets
KeyboardInterrupt through, each with what was measured on ``err.partial`` (the result is
marked ``interrupted`` on Ctrl-C).
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from memprobe.errors import MemprobeError, TargetError, UsageError
from memprobe.http.load import LoadResult, merge_loads
from memprobe.hunt.model import account, judge, will_it_stop
from memprobe.hunt.probes import Attribution, Probe
from memprobe.results.hunt import HuntResult, HuntSettings, Judgement, Reading, RouteResult

__all__ = ["hunt", "hunt_in_process", "run"]

Progress = Callable[[str], None]


def hunt(
    target: Any = "",
    routes: list[str] | None = None,
    requests: int = 2000,
    *,
    rounds: int = 5,
    warmup: int = 500,
    concurrency: int = 4,
    frames: int = 25,
    cmd: str | None = None,
    timeout: float = 10.0,
    ready_timeout: float = 30.0,
    cwd: str | Path | None = None,
    progress: Progress | None = None,
    pid: int | None = None,
    url: str | None = None,
    attach_method: str = "auto",
    outside: bool = False,
    load_engine: Any = None,
    signal: str = "traced",
) -> HuntResult:
    """Hunt for leaks in ``target`` (``file.py:app``, ``module:create_app()``...) in a child
    with the agent inside, or in the server ``cmd`` starts (``{port}`` in it is replaced by a
    free port): a Python command (gunicorn, uvicorn, ``python app.py``) with the agent injected
    into every worker, any other (or any, with ``outside``) from outside only; or in the running process ``pid`` serving
    ``url`` (the agent attached to it, and stopped at the end).

    Raises UsageError for bad settings and TargetError (with ``.partial``) when the target
    cannot be loaded or dies. ``load_engine``: a started
    :class:`~memprobe.http.locust_engine.LocustEngine` that sends the requests instead of the
    native hammer. ``signal``: what the rounds are judged on inside (``traced``, or ``blocks``:
    untraced rounds, tracemalloc for the attribution round only; see HuntSettings.signal).
    """
    from memprobe.hunt.probes.child import AgentProbe
    from memprobe.hunt.probes.outside import OutsideProbe
    from memprobe.hunt.probes.workers import WorkersProbe, is_python_command

    if pid is not None:
        mode = "attached"
    else:
        mode = ("child" if cmd is None else "outside" if outside or not is_python_command(cmd, cwd)
                else "workers")
    settings = HuntSettings(requests=requests, rounds=rounds, warmup=warmup,
                            concurrency=concurrency, frames=frames, timeout=timeout,
                            ready_timeout=ready_timeout, cmd=cmd, mode=mode, signal=signal)
    settings.validate()
    todo = [normalise(r) for r in routes] if routes else None
    ready_path = todo[0] if todo else "/"
    probe: Probe
    if pid is not None:
        from memprobe.hunt.probes.attached import AttachedProbe, AttachedServerProbe, worker_pids
        from memprobe.hunt.probes.workers import RunningServerProbe, run_channel

        if url is None:
            raise UsageError("--pid needs --url, where the process serves HTTP (http://127.0.0.1:PORT)")
        channel = run_channel(pid)
        workers = [] if channel is not None else worker_pids(pid)
        if channel is not None:  # started under `memprobe run`: its agents are listening already
            probe = RunningServerProbe(pid, channel, url, replace(settings, mode="workers"))
        elif workers:  # a master: the agent goes into each of its workers
            probe = AttachedServerProbe(pid, workers, url, replace(settings, mode="workers"), attach_method)
        else:
            probe = AttachedProbe(pid, url, settings, attach_method)
        settings = probe.settings
    elif cmd is not None and mode == "workers":
        probe = WorkersProbe(cmd, settings, cwd, ready_path=ready_path)
    elif cmd is not None:
        probe = OutsideProbe(cmd, settings, cwd, ready_path=ready_path)
    else:
        probe = AgentProbe(str(target), settings, cwd)
    probe.load_engine = load_engine
    return run(probe, f"pid {pid}" if pid is not None else cmd or str(target), todo, settings, progress)


def hunt_in_process(
    target: Any,
    routes: list[str] | None = None,
    requests: int = 2000,
    *,
    rounds: int = 5,
    warmup: int = 500,
    frames: int = 25,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    holders: bool = True,
    uss: bool = False,
    progress: Progress | None = None,
) -> HuntResult:
    """Hunt for leaks in a WSGI app called in this process (``target``: a spec or the WSGI
    callable); the result's settings say ``"mode": "in_process"``. Without ``routes``, a Flask
    or Bottle app's parameterless GET routes are hunted, else ``/``."""
    from memprobe.hunt.probes.inprocess import InProcessProbe, client_name

    settings = HuntSettings(requests=requests, rounds=rounds, warmup=warmup, concurrency=1,
                            frames=frames, mode="in_process", client=client_name(), uss=uss)
    settings.validate()
    probe = InProcessProbe(target, settings, method=method, body=body, headers=headers,
                           holders=holders, uss=uss)
    label = target if isinstance(target, str) else repr(target)
    return run(probe, label, [normalise(r) for r in routes] if routes else None, settings, progress)


def normalise(route: str) -> str:
    """A route as a path: ``api`` is ``/api``."""
    return route if route.startswith("/") else "/" + route


def run(probe: Probe, label: str, routes: list[str] | None, settings: HuntSettings,
        progress: Progress | None = None) -> HuntResult:
    """Open ``probe``, hunt each route (``routes``, else the app's own, else ``/``), close it."""
    say = progress or (lambda _msg: None)
    result = HuntResult(target=label, settings=settings, outside_only=not probe.sees_inside)
    started = time.monotonic()
    try:
        try:
            say(f"starting {label}")
            info = probe.open()
            result.app_kind, result.framework, result.startup_s = info.kind, info.framework, info.startup_s
            result.target = info.label or label
            todo = routes or info.routes or ["/"]
            if not routes and info.routes:
                result.notes.append(f"routes discovered from the app: {', '.join(todo)}")
            result.notes += info.notes
            for route in todo:
                try:
                    _Route(probe, route, settings, say).hunt(result)
                except MemprobeError as err:
                    raise probe.failure(err, f"while hunting {route}") from None
        finally:
            probe.close()
    except (MemprobeError, KeyboardInterrupt) as err:
        result.duration_s = time.monotonic() - started
        if isinstance(err, KeyboardInterrupt):
            result.interrupted = True
            result.error = "interrupted"
        else:
            result.error = str(err)
        err.partial = result  # type: ignore[union-attr]
        raise
    result.duration_s = time.monotonic() - started
    return result


class _Route:
    """One route's protocol: warm-up, baseline, rounds, verdict, attribution."""

    def __init__(self, probe: Probe, route: str, settings: HuntSettings, say: Progress) -> None:
        self.probe, self.route, self.settings, self.say = probe, route, settings, say
        #: ``{n}`` in the route: a counter that goes on across warm-up and rounds
        self.next = 0
        self.notes: list[str] = []
        #: answers other than 2xx and 3xx, over everything the route was sent
        self.bad: dict[str, int] = {}
        #: the measured rounds' load, merged as they come
        self.total: LoadResult | None = None
        self.readings: list[Reading] = []
        self.t0 = time.monotonic()

    def send(self, n: int) -> LoadResult:
        load = self.probe.send(self.route, n, self.next)
        self.next += n
        if load.answered == 0:
            raise TargetError(f"{self.route}: none of {load.sent} requests got an answer "
                              f"({', '.join(load.errors) or 'timeouts'})")
        for status, count in load.status_counts.items():
            if not status.startswith(("2", "3")):
                self.bad[status] = self.bad.get(status, 0) + count
        return load

    def hunt(self, result: HuntResult) -> None:
        """Measure the route and append it to ``result`` (its finished rounds too, judged,
        when interrupted)."""
        probe, s, route = self.probe, self.settings, self.route
        try:
            probe.begin(route)
            if s.warmup:
                self.say(f"{route}: warm-up, {s.warmup} requests")
                self.send(s.warmup)
            # The in-process probe reads this very process: what the protocol keeps must not
            # grow between readings, so one merged load exists from the baseline on and each
            # round's own is dropped before the reading.
            self.total = LoadResult(route, probe.mode, 0, 0.0)
            self.readings.append(probe.read(0, baseline=True))
            done = 0
            for i in range(s.rounds):
                self.say(f"{route}: round {i + 1}/{s.rounds}, {s.requests} requests")
                load = self.send(s.requests)
                done += load.sent
                self.total = merge_loads(load.url, [load, self.total])
                del load
                self.readings.append(probe.read(done))
        except KeyboardInterrupt:
            if len(self.readings) >= 3:
                self.notes.append(f"{route}: interrupted after {len(self.readings) - 1} of "
                                  f"{s.rounds} rounds")
                result.routes.append(self.result(judge(self.readings, probe.memory), Attribution()))
            raise
        attribution = Attribution()
        judgement = judge(self.readings, probe.memory)
        if probe.sees_inside and judgement.verdict != "clean":
            # A clean route has nothing to attribute (and the roots scan, in the in-process
            # probe's own heap, would disturb the next route's readings).
            probe.growth(done)
            # Deep tracebacks only for one short round: they cost ~10x per allocation.
            self.say(f"{route}: attribution round, {s.attributed} requests traced "
                     f"{s.frames} frames deep")
            probe.deepen()
            attribution = probe.attribute(self.send(s.attributed).sent)
            if account(judgement, attribution.allocator)[0].kind == "native":
                attribution.rss_lines = self.rss_lines(judgement)
        result.routes.append(self.result(judgement, attribution))

    def rss_lines(self, judgement: Judgement) -> list[dict[str, Any]]:
        """A native leak's lines, by RSS: the route's view run under memory_profiler's line
        profiler, where the probe serves the app itself (a note says why not, elsewhere)."""
        lines_of = getattr(self.probe, "rss_lines", None)
        if lines_of is None:
            self.notes.append(f"the native leak's line was not looked for: the route's view "
                              f"function can be run only in an app memprobe serves itself, not "
                              f"in {self.probe.mode} mode")
            return []
        self.say(f"{self.route}: the view under memory_profiler's line profiler")
        slope = judgement.uss.slope if judgement.uss else 0.0
        lines, note = lines_of(self.route, self.settings.attributed, slope, self.next)
        # the calls the agent made ({n} numbered on), profiled and not
        self.next += max((1 + int(x.get("calls", 0)) + int(x.get("filled", 0)) for x in lines),
                         default=0)
        if note:
            self.notes.append(note)
        return list(lines)

    def result(self, judgement: Judgement, attribution: Attribution) -> RouteResult:
        notes = list(self.notes)
        allocator = attribution.allocator
        load = _load_summary(self.total)
        judgement = will_it_stop(judgement, attribution.holders, self.readings[-1].requests,
                                 float(load["throughput_rps"]))
        judgement, said = account(judgement, allocator)
        if allocator is not None and said:
            allocator = {**allocator, "explanation": said}
        if self.bad:
            notes.insert(0, f"{self.route}: answered "
                         + ", ".join(f"{v} x {k}" for k, v in sorted(self.bad.items())))
        return RouteResult(judgement=judgement, readings=self.readings, sites=attribution.sites,
                           types=attribution.types, holders=attribution.holders, route=self.route,
                           load=load, duration_s=time.monotonic() - self.t0, notes=notes,
                           timings_s=attribution.timings_s, workers=self.probe.processes(),
                           memory=self.probe.memory, allocator=allocator,
                           rss_lines=attribution.rss_lines)


def _load_summary(total: LoadResult | None) -> dict[str, Any]:
    """A route's measured rounds in one: counts, statuses, requests per second."""
    if total is None or not total.sent:
        return {"sent": 0, "ok": 0, "failed": 0, "status_counts": {}, "throughput_rps": 0.0}
    return {"sent": total.sent, "ok": total.ok, "failed": total.failed,
            "status_counts": dict(sorted(total.status_counts.items())),
            "throughput_rps": round(total.sent / total.duration_s, 1) if total.duration_s else 0.0}

