"""One framework's round of ``compare`` in stages: start, read before, hammer, read after, close.

:func:`memprobe.compare.runner.measure` runs them in a row; the runner's overlapped round
interleaves the stages of several frameworks so that one settles while another is hammered.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

from memprobe.compare import frameworks as catalog
from memprobe.compare import production
from memprobe.compare.scenario import SAFE_METHODS, Step, StepResult
from memprobe.compare.settings import Settings
from memprobe.errors import TargetError
from memprobe.http.engine import sender
from memprobe.http.hammer import Hammer
from memprobe.http.load import LoadSender, merge_loads
from memprobe.http.locust_engine import LocustEngine
from memprobe.process.child import (
    EXIT_GRACE_S,
    LOOPBACK,
    Child,
    PortTaken,
    free_port,
    server_child,
    start_server,
)
from memprobe.process.memory import (
    MemoryReading,
    Sampler,
    SettleWatch,
    TreeReading,
    read_memory,
    read_tree,
)
from memprobe.results.compare import Round

#: The environment variables the CRUD apps read (frameworks/_crud.py has the same names).
CRUD_DB_ENV = "MEMPROBE_CRUD_DB"
CRUD_VARIANT_ENV = "MEMPROBE_CRUD_VARIANT"

#: Called as on_event(framework, phase, done, total) for progress display.
ProgressFn = Callable[[catalog.Framework, str, int, "int | None"], None]



class Measurement:
    """One round of one framework in stages (start, read before, hammer, read after, close),
    so that :func:`run` can let one framework settle while another is hammered. Every memory
    reading follows the settle rule (:class:`SettleWatch`, the rule of :func:`settle`): RSS
    unchanged for the last 0.3 s, the quiet time counted from the end of the start-up (or
    warm-up) and of the load, never from before it."""

    def __init__(self, fw: catalog.Framework, settings: Settings, *, variant: str | None = None,
                 log_dir: Path | None = None, on_progress: ProgressFn | None = None,
                 load_engine: LocustEngine | None = None) -> None:
        self.fw, self.settings, self.variant = fw, settings, variant
        self.log_dir, self.load_engine = log_dir, load_engine
        self.scenario = settings.scenario
        self.in_production = settings.server == "production"
        self.label = fw.name + (f"-{variant}" if variant else "")
        self.rnd = Round(url="")
        self.notify = (lambda phase, done, total: on_progress(fw, phase, done, total)) if on_progress else None
        self.stack = contextlib.ExitStack()
        self.child: Child | None = None
        self.watch: SettleWatch | None = None
        self.results: list[StepResult] = []
        self.current: list[LoadSender] = []
        self._options: dict[str, Any] | None = None

    def start(self) -> None:
        """Start the child and wait until it answers; in production, until its workers run;
        send the warm-up. :class:`TargetError` when it fails to start, :class:`Crashed` when it
        dies during the warm-up; either way nothing is left running."""
        try:
            start_server(on_child=self._hold, **self._server())
            self._ready()
        except BaseException:
            self.close()
            raise

    def launch(self) -> None:
        """The first half of :meth:`start`: the child is started on a free port, not waited for
        (call from the thread that outlives it). :class:`TargetError`: nothing is left running."""
        try:
            child = server_child(port=free_port(), **self._server())
            self._hold(child)
            child.launch()
        except BaseException:
            self.close()
            raise

    def wait_ready(self) -> None:
        """The second half of :meth:`start` (any thread). :class:`PortTaken` leaves the round
        to be started again with :meth:`start`; any other failure stops it."""
        assert self.child is not None
        try:
            self.child.wait_ready()
        except PortTaken:
            self.child = None
            raise
        except BaseException:
            self.close()
            raise
        try:
            self._ready()
        except BaseException:
            self.close()
            raise

    def stop_child(self) -> None:
        """Stop the child now, whatever stage another thread has it in (:meth:`close` after)."""
        if self.child is not None:
            self.child.stop()

    def _hold(self, child: Child) -> None:
        """Make ``child`` the round's (stopped at :meth:`close`) before it starts."""
        self.child, self.rnd.url = child, child.url
        self.stack.callback(child.stop)

    def _server(self) -> dict[str, Any]:
        """How the child is started on a port: :func:`start_server`'s arguments (the CRUD
        database seeded on the first call)."""
        if self._options is not None:
            return self._options
        settings, variant = self.settings, self.variant
        app = self.scenario.app if self.scenario else "hello"
        env: dict[str, str] | None = None
        db: str | None = None
        if app == "crud":
            db = _seeded_database(self.stack, self.scenario.records if self.scenario else None)
            env = {**os.environ, CRUD_DB_ENV: db, CRUD_VARIANT_ENV: variant or ""}

        def argv_for(port: int) -> list[str]:
            if self.in_production:
                return production.command(self.fw, app, port,
                                          production.ProductionSettings(settings.workers, settings.threads))
            if app == "crud":
                return [sys.executable, str(self.fw.crud_script()), "--port", str(port), "--host", LOOPBACK,
                        "--variant", variant or self.fw.crud[0], "--db", str(db)]
            return self.fw.command(port)

        log_dir, label = self.log_dir, self.label
        self._options = dict(
            argv_for=argv_for, name=label, env=env, ready_timeout=settings.ready_timeout,
            path=settings.path if self.scenario is None else "/",
            log_path=(lambda port: log_dir / f"{label}-{port}.log") if log_dir else None)
        return self._options

    def _ready(self) -> None:
        child, rnd, settings = self.child, self.rnd, self.settings
        assert child is not None
        rnd.pid, rnd.ready_s = child.pid, child.ready_after_s
        with self._guard():
            if self.in_production:
                rnd.workers = production.wait_for_workers(child.pid, settings.workers, settings.ready_timeout)
            _warm_up(self.base, settings)
            self.watch = self.stack.enter_context(SettleWatch(child.pid, tree=self.in_production))

    @property
    def base(self) -> str:
        """The child's ``http://host:port``."""
        assert self.child is not None
        return f"http://{LOOPBACK}:{self.child.port}"

    def read_before(self) -> None:
        """Once memory has settled since the start (or warm-up), the ``before`` reading."""
        assert self.watch is not None and self.child is not None
        with self._guard():
            self.watch.wait(self.settings.settle_s)
            self.rnd.before, self.rnd.tree_before = _read(self.child.pid, self.in_production)
            if self.rnd.tree_before is not None:
                self.rnd.roles.update(production.roles(self.rnd.tree_before))

    def hammer(self) -> None:
        """Every request kind in turn while the sampler records memory; a new settle begins
        when the last request is answered."""
        assert self.watch is not None and self.child is not None
        child, rnd, settings, scenario = self.child, self.rnd, self.settings, self.scenario
        with self._guard():
            steps = scenario.steps if scenario else (Step(name=settings.path, path=settings.path),)
            counts = scenario.counts(settings.requests) if scenario else [settings.requests]
            results, current = self.results, self.current
            done_before = 0
            sampler = Sampler(child.pid, tree=self.in_production,
                              progress=lambda: done_before + (current[-1].completed if current else 0))
            try:
                with sampler:
                    previous: MemoryReading | None = rnd.before
                    for step, count in zip(steps, counts):
                        hammer = _hammer(self.base, step, count, settings, scenario is not None, self.notify,
                                         self.load_engine)
                        current.append(hammer)
                        load = hammer.run()
                        done_before += load.sent
                        child.check_alive(grace=EXIT_GRACE_S if load.errors else 0.0)
                        after = _read(child.pid, self.in_production)[0] if scenario else None
                        results.append(StepResult(step, load, after=after, before=previous))
                        previous = after
            finally:
                self.watch.restart()
                # A sampler that died early says so in its series: a short series must not look
                # complete. A round the app crashed in keeps the points read until then.
                rnd.samples = {**sampler.series.to_dict(), "stopped": sampler.stopped}
            url = rnd.url
            rnd.load = (results[0].load if scenario is None else merge_loads(url, [r.load for r in results])).kept()
            if scenario is not None:
                rnd.steps = [r.to_dict() for r in results]

    def read_after(self) -> None:
        """Once memory has settled since the load, the ``after`` reading."""
        assert self.watch is not None and self.child is not None
        with self._guard():
            self.child.check_alive()
            self.watch.wait(self.settings.settle_s)
            self.rnd.after, self.rnd.tree_after = _read(self.child.pid, self.in_production)
            if self.rnd.tree_after is not None:
                self.rnd.roles.update(production.roles(self.rnd.tree_after))

    def close(self) -> None:
        """Stop the child and remove what the round created (safe to call more than once)."""
        self.stack.close()

    def finish(self) -> Round:
        """The round measured (production mode: with the master's and each worker's memory)."""
        _processes(self.rnd)
        return self.rnd

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """A :class:`TargetError` from a child that died becomes :class:`Crashed` with the
        partial round; one from a child still running stays what it is."""
        try:
            yield
        except TargetError as err:
            child, rnd, scenario = self.child, self.rnd, self.scenario
            if isinstance(err, Crashed) or child is None or not child.exited(grace=EXIT_GRACE_S):
                raise
            results, current = self.results, self.current
            if rnd.load is None and current:  # keep the counts of the hammering it died in
                loads = [r.load for r in results] + [h.result for h in current[len(results):]]
                rnd.load = (loads[0] if scenario is None else merge_loads(rnd.url, loads)).kept()
            _processes(rnd)
            code = child.proc.returncode if child.proc else "?"
            raise Crashed(f"{self.label} died during the run (exit code {code})", rnd, child.log_tail()) from err


def _processes(rnd: Round) -> None:
    """Production mode: the master and each worker, and the totals per role, from the trees
    the round read."""
    if rnd.tree_before is None and rnd.tree_after is None:
        return
    rnd.processes = production.processes(rnd.tree_before, rnd.tree_after, rnd.roles)
    rnd.memory_by_role = production.by_role(rnd.processes)


def _hammer(base: str, step: Step, count: int, settings: Settings, named: bool,
            notify: Callable[[str, int, int | None], None] | None,
            load_engine: LocustEngine | None = None) -> LoadSender:
    phase = step.name if named else "hammer"
    options: dict[str, Any] = dict(
        concurrency=step.concurrency or settings.concurrency,
        timeout=settings.timeout, mode=settings.mode, method=step.method, body=step.body,
        headers=step.headers or None, first=step.first, cycle=step.cycle,
        progress=(lambda done, total: notify(phase, done, total)) if notify else None,
    )
    return sender(base + step.path, count, engine=load_engine, **options)


def _warm_up(base: str, settings: Settings) -> None:
    """``settings.warmup`` requests before the first reading: of the path, or shared among the
    scenario's safe request kinds (a warm-up must not create or delete what the run uses)."""
    if not settings.warmup:
        return
    timeout = max(settings.timeout, 5.0)
    if settings.scenario is None:
        Hammer(base + settings.path, settings.warmup, concurrency=settings.concurrency, timeout=timeout).run()
        return
    safe = [s for s in settings.scenario.steps if s.method in SAFE_METHODS]
    for step in safe:
        n = max(1, settings.warmup // len(safe))
        Hammer(base + step.path, n, concurrency=step.concurrency or settings.concurrency, timeout=timeout,
               method=step.method, headers=step.headers or None, first=step.first, cycle=step.cycle).run()


def _read(pid: int, tree: bool) -> tuple[MemoryReading, TreeReading | None]:
    if not tree:
        return read_memory(pid), None
    reading = read_tree(pid)
    return reading.total, reading


def _seeded_database(stack: contextlib.ExitStack, records: int | None) -> str:
    """A fresh SQLite file seeded by ``frameworks/_crud.py`` (run as a script: memprobe imports
    no framework code), removed when ``stack`` closes."""
    folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="memprobe-crud-"))
    path = os.path.join(folder, "items.sqlite3")
    argv = [sys.executable, str(catalog.frameworks_dir() / "_crud.py"), "seed", path]
    if records is not None:
        argv += ["--records", str(records)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise TargetError("cannot seed the CRUD database", done.stderr[-2000:])
    return path


class Crashed(TargetError):
    """The child died mid-run; ``partial`` holds what was measured before."""

    def __init__(self, message: str, partial: Round, log_tail: str = "") -> None:
        super().__init__(message, log_tail)
        self.partial = partial


