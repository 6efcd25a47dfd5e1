"""``memprobe watch``'s parent side: reach the server, get a recorder into each worker, collect
their windows every interval, keep a rolling report on disk, detach.

The server is reached and its workers read by the hunt's own probes
(:mod:`memprobe.hunt.probes`), so that watch follows workers exactly as hunt does:

* ``cmd``: the command started as written (its own port), the agent armed in every worker
  (:meth:`AgentPerWorker.injecting`); a worker that respawns gets an agent of its own, and is
  followed; the server is stopped at the end;
* ``pid`` of a server started under ``memprobe run``: its agents already listen
  (:meth:`AgentPerWorker.listening`); recording stops at the end, the agents stay;
* any other ``pid``: the agent attached to each worker (a single-process server: to itself),
  and stopped at the end: no agent thread, no wrapper left. Workers started later get none.

Each interval every live worker is asked for its windows (``watch`` on the control channel:
the worker closes its open window then), and each window gets the worker's RSS and USS read
from outside. Between intervals, every :data:`TICK_S` the workers' RSS is read (cheap); a new
high (1 % over the last one written) writes the report at once, so that an OOM kill leaves the
state just before it on disk. The report is written atomically (a temporary file renamed).

``capture`` (``watch --capture FILE``): each worker also records requests
(:mod:`memprobe.capture.record`, redacted inside the worker), sent with its windows and written
to the capture file atomically at each poll. Which routes: those named (``--capture-route``);
else none at first, and from the poll where the analysis flags a route (a leak, or "cannot be
separated from" another) the workers are told (``capture_routes`` on the control channel) to
record it as well; a route once flagged stays. Nothing is sampled before: a request of a route
that is never flagged is not teed at all, and the capture costs nothing until a route is flagged
(the price: the requests before the flag are not in the file).
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil

from memprobe.agent.control import AgentClient, WatchAnswer
from memprobe.capture.record import MAX_BODY, MAX_BYTES, MAX_REQUESTS, CaptureStore
from memprobe.capture.redact import Redactor
from memprobe.errors import MemprobeError, TargetError, UsageError
from memprobe.hunt.probes.compose import ComposedProbe
from memprobe.hunt.probes.reach import Running, Spawned
from memprobe.hunt.probes.workers import AgentPerWorker, is_python_command, run_channel
from memprobe.process.memory import read_memory
from memprobe.results.hunt_settings import HuntSettings
from memprobe.results.watch import RouteLine, WatchResult, Window, write_atomically
from memprobe.watch.analysis import Analysis
from memprobe.watch.attribution import MIN_WINDOWS, TRACED_FLOOR, WARM_REQUESTS, TracePolicy, Traces
from memprobe.watch.cgroup import read_cgroup
from memprobe.watch.report import build_report

#: How often the workers' RSS is read between intervals, for a new high.
TICK_S = 1.0
#: A high this much over the last one written writes the report at once.
HIGH_STEP = 0.01


@dataclass(frozen=True)
class WatchSettings:
    """What ``memprobe watch`` was asked."""

    #: a running server (a gunicorn or uvicorn master, a single process, or one started under
    #: ``memprobe run``)
    pid: int | None = None
    #: the deployment command, started as written
    cmd: str | None = None
    #: seconds between the workers' windows (and the report's writes)
    interval: float = 10.0
    #: stop after this many seconds, as Ctrl-C would (None: until Ctrl-C)
    duration: float | None = None
    #: the rolling JSON report
    json: str | None = None
    ready_timeout: float = 30.0
    attach_method: str = "auto"
    cwd: str | None = None
    #: the last windows kept as they came, for the summary (the analysis keeps running sums)
    max_windows: int = 2_000
    #: bytes each worker may use, for the advice where no cgroup limit says (None: the limit's)
    budget: float | None = None
    #: serve the report as OpenMetrics here (``HOST:PORT``; None: no endpoint)
    metrics: str | None = None
    #: the attribution windows (tracing one worker at a time, when a route's retention shows)
    tracing: TracePolicy = field(default_factory=TracePolicy)
    #: the capture file (None: no capture)
    capture: str | None = None
    #: the routes to capture (empty: those the analysis flags)
    capture_routes: tuple[str, ...] = ()
    #: header, query, form and JSON field names to redact besides the default headers
    redact: tuple[str, ...] = ()
    #: the capture's bounds: requests, bytes, bytes of a body
    capture_requests: int = MAX_REQUESTS
    capture_bytes: int = MAX_BYTES
    capture_body: int = MAX_BODY

    def check(self) -> None:
        """UsageError for a combination no watch can run."""
        if (self.pid is None) == (self.cmd is None):
            raise UsageError("watch needs one of --pid PID or --cmd COMMAND")
        if self.interval <= 0:
            raise UsageError(f"--interval must be positive, not {self.interval:g}")
        if self.duration is not None and self.duration <= 0:
            raise UsageError(f"--duration must be positive, not {self.duration:g}")
        if self.tracing.seconds <= 0 or self.tracing.requests <= 0 or self.tracing.sample <= 0:
            raise UsageError("--trace-seconds, --trace-requests and --trace-sample must be positive")
        if not 0 < self.tracing.share <= 1:
            raise UsageError(f"--trace-share is a share of the window's time, above 0 and at most 1, not "
                             f"{self.tracing.share:g}")
        if self.cmd is not None and not is_python_command(self.cmd, self.cwd):
            raise UsageError(f"--cmd must run Python (a gunicorn or uvicorn command): {self.cmd!r}")
        if self.capture is None and (self.capture_routes or self.redact):
            raise UsageError("--capture-route and --redact go with --capture FILE")
        if min(self.capture_requests, self.capture_bytes, self.capture_body) <= 0:
            raise UsageError("the capture's bounds must be positive")

    def to_dict(self) -> dict[str, Any]:
        """As the report's ``settings``."""
        t = self.tracing
        return {"pid": self.pid, "cmd": self.cmd, "interval": self.interval, "duration": self.duration,
                "budget": self.budget, "metrics": self.metrics, "capture": self.capture,
                "capture_routes": list(self.capture_routes), "redact": list(self.redact),
                "tracing": {"enabled": t.enabled, "seconds": t.seconds, "requests": t.requests, "frames": t.frames,
                            "sample": t.sample, "share": t.share,
                            "every": t.every}}


@dataclass
class WatchRecord:
    """What a watch collected: the windows (the last :attr:`WatchSettings.max_windows`), the
    workers seen, what happened to them, and how it ended."""

    settings: WatchSettings
    #: ``injected``, ``listening`` or ``attached``
    how: str = ""
    master: int | None = None
    t0: float = field(default_factory=time.monotonic)
    windows: deque[Window] = field(default_factory=deque)
    #: every window goes through it (running sums: bounded however long the watch)
    analysis: Analysis = field(default_factory=Analysis)
    #: pid -> {"first_seen", "recording", "why", "respawned", ...}
    workers: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: what happened, in order: ``{"t", "event", "pid", ...}`` (worker joined, died, lost...)
    events: list[dict[str, Any]] = field(default_factory=list)
    dropped: int = 0
    #: why the watch ended: ``duration``, ``interrupted``, ``server exited``
    ended: str | None = None
    high_rss: int = 0
    traces: Traces = field(default_factory=Traces)

    def add(self, window: Window) -> None:
        """Analyse a window, and keep it for the summary (the oldest one goes when full)."""
        self.analysis.add(window)
        if len(self.windows) >= self.settings.max_windows:
            self.windows.popleft()
        self.windows.append(window)

    def event(self, what: str, pid: int | None, **extra: Any) -> None:
        """Note what happened now."""
        self.events.append({"t": round(time.monotonic() - self.t0, 3), "event": what, "pid": pid, **extra})
        del self.events[:-1000]

    def report(self) -> WatchResult:
        """The rolling report as it stands: the analysis, the server's cgroup and the advice,
        with what happened to the workers as notes."""
        cgroup = read_cgroup(self.master) if self.master is not None else None
        notes = [f"{e['t']:.1f} s: {e['event']} (pid {e['pid']})" for e in self.events
                 if e["event"] not in ("worker joined", "new high")]
        if self.dropped:
            notes.append(f"{self.dropped} windows dropped by the agents (the parent asked too late)")
        settings = {**self.settings.to_dict(), "how": self.how, "master": self.master, "ended": self.ended,
                    "workers": {str(pid): info for pid, info in self.workers.items()}}
        result = build_report(self.analysis, cgroup=cgroup, budget=self.settings.budget, settings=settings,
                              notes=notes, traces=self.traces)
        result.duration_s = round(time.monotonic() - self.t0, 3)
        return result


class Session:
    """One watch: :meth:`open`, then :meth:`poll` every interval, then :meth:`close`."""

    def __init__(self, settings: WatchSettings, progress: Callable[[str], None] | None = None) -> None:
        settings.check()
        self.settings = settings
        self.record = WatchRecord(settings, windows=deque(), traces=Traces(settings.tracing))
        self.progress = progress or (lambda _message: None)
        hunt = HuntSettings(ready_timeout=settings.ready_timeout, cwd=settings.cwd,
                            attach_method=settings.attach_method, cmd=settings.cmd, pid=settings.pid,
                            mode="workers")
        self.reach: Spawned | Running
        if settings.cmd is not None:
            self.reach = Spawned.command(settings.cmd, hunt)
            self.reader = AgentPerWorker.injecting(hunt)
        else:
            assert settings.pid is not None
            self.reach = Running(settings.pid, None, hunt)
            channel = run_channel(settings.pid)
            if channel is not None:
                from memprobe.agent.channel import Channel

                self.reader = AgentPerWorker.listening(hunt, Channel(channel))
            else:
                self.reader = AgentPerWorker.attaching(hunt, itself=True)
        self.record.how = self.reader.how
        self._opened = False
        #: the capture file's records, and the routes the workers capture
        self.capture: CaptureStore | None = None
        self.capturing: set[str] = set(settings.capture_routes)
        if settings.capture is not None:
            source = f"watch --cmd {settings.cmd}" if settings.cmd else f"watch --pid {settings.pid}"
            self.capture = CaptureStore(settings.capture, source, Redactor(settings.redact).redacted,
                                        max_requests=settings.capture_requests, max_bytes=settings.capture_bytes,
                                        max_body=settings.capture_body)
        self._t0_wall = time.time()
        #: the last report built (served by the metrics endpoint between writes)
        self.latest: WatchResult | None = None

    def open(self) -> None:
        """Start or find the server, get an agent into each worker, start recording."""
        self.progress("starting the server" if self.settings.cmd else f"attaching to pid {self.settings.pid}")
        launch = self.reader.launch()
        self.reach.open(launch)
        self._opened = True
        self.reader.connect(self.reach)
        self.record.master = self.reach.pid
        self._join()

    def _join(self) -> list[int]:
        """The live workers; those not yet recording are told to start."""
        live = self.reader.follow()
        fresh = [pid for pid in live if pid not in self.record.workers]
        if fresh:
            interval, capture = self.settings.interval, self._capture_spec()
            started = self.reader.ask_each(lambda client, _pid: client.watch_start(interval, capture=capture), fresh)
            for pid in fresh:
                if pid not in started:
                    continue
                recording, why = started[pid]
                self.record.workers[pid] = {"recording": recording, "why": why or None,
                                            "first_seen_s": round(time.monotonic() - self.record.t0, 3)}
                self.record.event("worker joined", pid, recording=recording)
        self._note_respawns()
        return live

    def _capture_spec(self) -> dict[str, Any] | None:
        """``watch_start``'s ``capture`` (None: no capture)."""
        s = self.settings
        if s.capture is None:
            return None
        return {"routes": sorted(self.capturing) or None, "redact": list(s.redact), "max_requests": s.capture_requests,
                "max_bytes": s.capture_bytes, "max_body": s.capture_body, "t0": self._t0_wall}

    def _capture_flagged(self) -> None:
        """Without ``--capture-route``: tell the workers the routes the analysis now flags."""
        if self.capture is None or self.settings.capture_routes:
            return
        analysis, traces = self.record.analysis, self.record.traces
        lines = analysis.routes()
        traces.refine(lines, analysis.server_growing())
        # With attribution windows on, a route is captured once two windows saw its handler keep
        # memory: not a route entangled with the leaking one, nor one the heap's signals called a
        # leak for a while before any window (a clean GET /search, on the C heap, 18 s in). A
        # leak of the C heap alone, which tracing cannot see, is captured by naming its route.
        def confirmed(line: RouteLine) -> bool:
            att = line.attribution
            return att is not None and att.windows >= MIN_WINDOWS and att.per_request.value > TRACED_FLOOR

        flagged = {line.route for line in lines
                   if (line.verdict == "leak" or line.verdict.startswith("cannot be separated"))
                   and (not traces.policy.enabled or confirmed(line))}
        if flagged <= self.capturing:
            return
        self.capturing |= flagged
        routes = sorted(self.capturing)
        self.reader.ask_each(lambda client, _pid: client.capture_routes(routes), list(self.record.workers))
        self.record.event("capturing", None, routes=routes)

    def _note_respawns(self) -> None:
        for pid, proc in self.reader.procs.items():
            info = self.record.workers.get(pid)
            if info is None or proc.respawned is None or info.get("respawned") == proc.respawned:
                continue
            info["respawned"] = dict(proc.respawned)
            if "replaces" not in proc.respawned:
                lost = proc.respawned.get("lost_after_s")
                self.record.event("worker lost" if lost is not None else "worker exited", pid,
                                  successor=proc.respawned.get("successor"))

    def poll(self, stop: bool = False) -> int:
        """Collect every live worker's windows (``stop``: the last ones, and recording stops);
        how many windows came."""
        self.reach.check_alive()
        if not stop:
            self._join()
        answers = self.reader.ask_each(lambda client, _pid: _ask(client, stop), list(self.record.workers))
        came = 0
        traces = self.record.traces
        for pid, answer in answers.items():
            for found in answer.traced:
                traces.add(replace(found, at=time.monotonic() - self.record.t0))
                self.record.event("attribution window closed", pid, seconds=found.seconds,
                                  requests=sum(found.requests.values()), traced=found.samples)
            memory = _memory(pid)
            for i, window in enumerate(answer.windows):
                last = i == len(answer.windows) - 1  # RSS and USS are read now: the last window's end
                self.record.add(replace(window, rss=memory[0] if last else None, uss=memory[1] if last else None))
                came += 1
            if answer.dropped:
                self.record.dropped += answer.dropped
                self.record.event("windows dropped by the agent", pid, dropped=answer.dropped)
            if self.capture is not None and answer.captured:
                self.capture.add(answer.captured)
        if traces.open_pid is not None and (traces.open_pid not in answers or not answers[traces.open_pid].tracing):
            traces.open_pid = None  # its worker went away, or closed it without findings
        self._note_respawns()
        if not stop:
            self._capture_flagged()
        return came

    def trace_if_due(self) -> str | None:
        """Open an attribution window in the next worker if the report calls for one; what it
        was opened for (None: none opened)."""
        traces = self.record.traces
        now = time.monotonic() - self.record.t0
        report = self.latest or self.record.report()
        why = traces.reason(report.routes, self.record.analysis.server_growing(), now)
        if why is None:
            return None
        live = [pid for pid, info in self.record.workers.items() if info.get("recording")
                and pid in self.reader.procs and not self.reader.procs[pid].dead
                and self.record.analysis.served(pid) >= WARM_REQUESTS]
        pid = traces.next_worker(live)
        if pid is None:
            return None
        p = traces.policy
        answers = self.reader.ask_each(
            lambda client, _pid: client.watch_trace(p.seconds, p.requests, p.frames, p.sample, p.share), [pid])
        if pid not in answers:
            return None
        opened, refusal = answers[pid]
        if not opened:
            traces.refused[pid] = refusal
            return None
        traces.open_pid, traces.opened_at = pid, now
        self.record.event("attribution window opened", pid, why=why)
        self.progress(f"tracing one request in {p.sample} in pid {pid} for {p.seconds:g} s or {p.requests:,} "
                      f"requests: {why}")
        return why

    def rss_now(self) -> int:
        """The live workers' RSS summed (cheap: no page walk)."""
        total = 0
        for pid in self.record.workers:
            try:
                total += psutil.Process(pid).memory_info().rss
            except psutil.Error:
                continue
        return total

    def write(self) -> Path | None:
        """Build the rolling report (what the metrics endpoint serves too) and write it, if one
        was asked for."""
        self.latest = self.record.report()
        if self.capture is not None:
            self.capture.write()
        if not self.settings.json:
            return None
        return write_atomically(self.latest, self.settings.json)

    def close(self) -> None:
        """Let go: the last windows collected (recording stopped in every worker), every agent
        stopped or left as found, the server stopped if watch started it, the channel removed."""
        try:
            if self._opened and self.record.workers:
                try:
                    self.poll(stop=True)
                except MemprobeError:
                    pass  # the server went away: what was collected stays
        finally:
            ComposedProbe(self.reach, self.reader).close()


def _ask(client: AgentClient, stop: bool) -> WatchAnswer:
    return client.watch(stop=stop)


def _memory(pid: int) -> tuple[int | None, int | None]:
    try:
        reading = read_memory(pid)
    except MemprobeError:
        return None, None
    return reading.rss, reading.uss


def watch(settings: WatchSettings, progress: Callable[[str], None] | None = None,
          on_window: Callable[[WatchRecord], None] | None = None) -> WatchRecord:
    """Watch until ``settings.duration`` has passed or Ctrl-C (SIGINT, SIGTERM), then detach and
    return what was collected (``ended`` says why). The rolling report is written every
    interval, at every new high and at the end. TargetError (exit 3) when the server exits
    mid-watch, after the report is written."""
    say = progress or (lambda _message: None)
    session = Session(settings, say)
    record = session.record
    deadline = time.monotonic() + settings.duration if settings.duration is not None else None
    failure: MemprobeError | None = None
    metrics = None
    if settings.metrics is not None:
        from memprobe.watch.metrics import serve_metrics

        metrics = serve_metrics(lambda: session.latest, settings.metrics)
    try:
        session.open()
        session.write()
        next_poll = time.monotonic() + settings.interval
        while True:
            now_ = time.monotonic()
            if deadline is not None and now_ >= deadline:
                record.ended = "duration"
                break
            wake = min(next_poll, now_ + TICK_S, deadline if deadline is not None else next_poll)
            time.sleep(max(0.0, wake - now_))
            high = session.rss_now()
            new_high = high > record.high_rss * (1 + HIGH_STEP) and record.high_rss > 0
            if time.monotonic() >= next_poll or new_high:
                session.poll()
                next_poll = time.monotonic() + settings.interval
                if new_high:
                    record.event("new high", None, rss=high)
                record.high_rss = max(record.high_rss, high)
                session.write()
                session.trace_if_due()
                if on_window is not None:
                    on_window(record)
                say(f"{len(record.windows)} windows from {len(record.workers)} workers")
            elif record.high_rss == 0:
                record.high_rss = high
    except KeyboardInterrupt:
        record.ended = "interrupted"
    except TargetError as err:
        record.ended = "server exited" if not _alive(session) else f"failed: {err}"
        failure = err
    finally:
        try:
            session.close()
        finally:
            try:
                session.write()
            finally:
                if metrics is not None:
                    metrics.stop()
    if failure is not None:
        raise failure
    return record


def _alive(session: Session) -> bool:
    try:
        session.reach.check_alive()
    except TargetError:
        return False
    return True
