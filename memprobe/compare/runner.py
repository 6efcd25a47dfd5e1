"""``compare``: each framework's hello-world started, hammered, and measured before and after.

Frameworks run one at a time, so that one does not steal CPU from another's measurement; with
several rounds the order is interleaved (a, b, c, a, b, c) so that drift on the machine spreads
over all of them, and each round starts a fresh child.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from memprobe.compare import frameworks as catalog
from memprobe.compare import production
from memprobe.compare.scenario import SAFE_METHODS, Scenario, Step, StepResult
from memprobe.errors import LoadEngineError, TargetError, UsageError
from memprobe.http.hammer import MODES, Hammer
from memprobe.http.load import LoadSender, merge_loads
from memprobe.http.locust_engine import ENGINES, LocustEngine, LocustHammer
from memprobe.process.child import EXIT_GRACE_S, LOOPBACK, Child, start_on_free_port
from memprobe.process.memory import (
    MemoryReading,
    Sampler,
    TreeReading,
    read_memory,
    read_tree,
    settle,
)
from memprobe.results.compare import STATUSES, CompareResult, FrameworkResult, Round
from memprobe.results.envelope import SCHEMA, machine

__all__ = ["SCHEMA", "STATUSES", "CompareResult", "Crashed", "FrameworkResult", "Round", "Settings",
           "machine", "measure", "plan", "run"]

#: The environment variables the CRUD apps read (frameworks/_crud.py has the same names).
CRUD_DB_ENV = "MEMPROBE_CRUD_DB"
CRUD_VARIANT_ENV = "MEMPROBE_CRUD_VARIANT"


@dataclass(frozen=True)
class Settings:
    """How a comparison runs (the CLI's options)."""

    requests: int = 2000
    timeout: float = 0.5
    concurrency: int = 10
    mode: str = "keepalive"
    warmup: int = 0
    settle_s: float = 2.0
    rounds: int = 1
    path: str = "/"
    ready_timeout: float = 30.0
    #: The requests to send; ``None``: ``requests`` GETs of ``path`` (the seed's method).
    scenario: Scenario | None = None
    #: "dev" (each framework's own or customary server) or "production" (gunicorn / uvicorn).
    server: str = "dev"
    workers: int = 2
    threads: int = 2
    #: CRUD variants to run (``None``: every variant a framework has).
    variants: tuple[str, ...] | None = None
    #: What sends the requests: "native" (memprobe's hammer) or "locust" (the warm-up is
    #: always the native hammer's: it only has to warm the app up).
    engine: str = "native"

    def validate(self) -> None:
        """Raise :class:`UsageError` for values no run could use."""
        if self.requests <= 0:
            raise UsageError(f"N must be a positive number of requests, not {self.requests}")
        if self.timeout <= 0:
            raise UsageError(f"TIMEOUT must be a positive number of seconds, not {self.timeout:g}")
        for name, value in (("--concurrency", self.concurrency), ("--rounds", self.rounds),
                            ("--workers", self.workers), ("--threads", self.threads)):
            if value <= 0:
                raise UsageError(f"{name} must be positive, not {value}")
        for name, choice, choices in (("--mode", self.mode, MODES), ("--server", self.server, production.SERVERS),
                                      ("--engine", self.engine, ENGINES)):
            if choice not in choices:
                raise UsageError(f"{name} must be one of {', '.join(choices)}, not {choice!r}")
        if self.warmup < 0:
            raise UsageError(f"--warmup cannot be negative ({self.warmup})")
        if self.settle_s < 0:
            raise UsageError(f"--settle cannot be negative ({self.settle_s:g})")
        if self.engine == "locust" and self.mode == "burst":
            raise UsageError("--mode burst is the native hammer's; with --engine locust use keepalive or close")

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``timeout_s``, ``settle_s`` in seconds)."""
        return {
            "requests": self.requests,
            "timeout_s": self.timeout,
            "concurrency": self.concurrency,
            "mode": self.mode,
            "warmup": self.warmup,
            "settle_s": self.settle_s,
            "rounds": self.rounds,
            "path": self.path,
            "server": self.server,
            "workers": self.workers if self.server == "production" else None,
            "threads": self.threads if self.server == "production" else None,
            "scenario": self.scenario.to_dict() if self.scenario else None,
            "engine": self.engine,
        }


#: Called as on_event(framework, phase, done, total) for progress display.
ProgressFn = Callable[[catalog.Framework, str, int, "int | None"], None]


def measure(
    fw: catalog.Framework,
    settings: Settings,
    *,
    variant: str | None = None,
    log_dir: Path | None = None,
    on_progress: ProgressFn | None = None,
    load_engine: LocustEngine | None = None,
) -> Round:
    """Start ``fw``'s app (the hello-world, or the CRUD app in ``variant``) on its own server or
    a production one, settle, warm up, read, send every request kind while sampling, settle,
    read, stop. Raises :class:`TargetError` when it fails to start; a crash mid-run raises
    :class:`Crashed` carrying the partial round."""
    scenario = settings.scenario
    app = scenario.app if scenario else "hello"
    in_production = settings.server == "production"
    label = fw.name + (f"-{variant}" if variant else "")
    rnd = Round(url="")
    with contextlib.ExitStack() as stack:
        env: dict[str, str] | None = None
        db: str | None = None
        if app == "crud":
            db = _seeded_database(stack, scenario.records if scenario else None)
            env = {**os.environ, CRUD_DB_ENV: db, CRUD_VARIANT_ENV: variant or ""}

        def on_port(port: int) -> Child:
            if in_production:
                argv = production.command(fw, app, port,
                                          production.ProductionSettings(settings.workers, settings.threads))
            elif app == "crud":
                argv = [sys.executable, str(fw.crud_script()), "--port", str(port), "--host", LOOPBACK,
                        "--variant", variant or fw.crud[0], "--db", str(db)]
            else:
                argv = fw.command(port)
            rnd.url = f"http://{LOOPBACK}:{port}" + (settings.path if scenario is None else "/")
            return Child(argv, name=label, url=rnd.url, env=env,
                         log_path=log_dir / f"{label}-{port}.log" if log_dir else None,
                         ready_timeout=settings.ready_timeout)

        child = stack.enter_context(start_on_free_port(on_port))
        base, url = f"http://{LOOPBACK}:{child.port}", rnd.url
        rnd.pid, rnd.ready_s = child.pid, child.ready_after_s
        notify = (lambda phase, done, total: on_progress(fw, phase, done, total)) if on_progress else None
        try:
            if in_production:
                rnd.workers = production.wait_for_workers(child.pid, settings.workers, settings.ready_timeout)
            _warm_up(base, settings)
            settle(child.pid, settings.settle_s, tree=in_production)
            rnd.before, rnd.tree_before = _read(child.pid, in_production)
            if rnd.tree_before is not None:
                rnd.roles.update(production.roles(rnd.tree_before))
            steps = scenario.steps if scenario else (Step(name=settings.path, path=settings.path),)
            counts = scenario.counts(settings.requests) if scenario else [settings.requests]
            results: list[StepResult] = []
            done_before = 0
            current: list[LoadSender] = []
            sampler = Sampler(child.pid, tree=in_production,
                              progress=lambda: done_before + (current[-1].completed if current else 0))
            try:
                with sampler:
                    previous: MemoryReading | None = rnd.before
                    for step, count in zip(steps, counts):
                        hammer = _hammer(base, step, count, settings, scenario is not None, notify,
                                         load_engine)
                        current.append(hammer)
                        load = hammer.run()
                        done_before += load.sent
                        child.check_alive(grace=EXIT_GRACE_S if load.errors else 0.0)
                        after = _read(child.pid, in_production)[0] if scenario else None
                        results.append(StepResult(step, load, after=after, before=previous))
                        previous = after
            finally:
                # A sampler that died early says so in its series: a short series must not look
                # complete. A round the app crashed in keeps the points read until then.
                rnd.samples = {**sampler.series.to_dict(), "stopped": sampler.stopped}
            rnd.load = (results[0].load if scenario is None else merge_loads(url, [r.load for r in results])).kept()
            if scenario is not None:
                rnd.steps = [r.to_dict() for r in results]
            child.check_alive()
            settle(child.pid, settings.settle_s, tree=in_production)
            rnd.after, rnd.tree_after = _read(child.pid, in_production)
            if rnd.tree_after is not None:
                rnd.roles.update(production.roles(rnd.tree_after))
        except TargetError as err:
            if not child.exited(grace=EXIT_GRACE_S):
                raise
            if rnd.load is None and current:  # keep the counts of the hammering it died in
                loads = [r.load for r in results] + [h.result for h in current[len(results):]]
                rnd.load = (loads[0] if scenario is None else merge_loads(url, loads)).kept()
            _processes(rnd)
            code = child.proc.returncode if child.proc else "?"
            raise Crashed(f"{label} died during the run (exit code {code})", rnd, child.log_tail()) from err
    _processes(rnd)
    return rnd


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
    if load_engine is not None:
        return LocustHammer(base + step.path, count, engine=load_engine, **options)
    return Hammer(base + step.path, count, **options)


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


def run(
    frameworks: Iterable[catalog.Framework],
    settings: Settings,
    *,
    result: CompareResult | None = None,
    **hooks: Any,
) -> CompareResult:
    """Compare ``frameworks``; never raises for one framework's failure (its row says why).

    Pass ``result`` to keep partial results when interrupted: the caller still holds it.
    ``hooks`` go to every :func:`measure`: ``log_dir``, ``on_progress``, ``load_engine``.
    """
    settings.validate()
    frameworks = list(frameworks)
    by_name = {fw.name: fw for fw in frameworks}
    result = result if result is not None else CompareResult(settings)
    rows = plan(frameworks, settings)
    result.results = rows
    start = time.monotonic()
    try:
        for _ in range(settings.rounds):
            for row in rows:
                if row.status != "ok":
                    continue
                try:
                    row.rounds.append(measure(by_name[row.name], settings, variant=row.variant, **hooks))
                except LoadEngineError:
                    raise  # the engine is broken for every framework, not this one's fault
                except Crashed as err:
                    row.rounds.append(err.partial)
                    row.status, row.reason, row.log_tail = "crashed", str(err), err.log_tail
                except TargetError as err:
                    row.status, row.reason, row.log_tail = "failed-to-start", str(err), err.log_tail
    except BaseException:
        result.interrupted = True
        raise
    finally:
        result.duration_s = time.monotonic() - start
    return result


def plan(frameworks: Iterable[catalog.Framework], settings: Settings) -> list[FrameworkResult]:
    """One row per framework (per framework and CRUD variant for a CRUD scenario), with the
    status of those that cannot run here and why."""
    crud = settings.scenario is not None and settings.scenario.app == "crud"
    in_production = settings.server == "production"
    rows: list[FrameworkResult] = []
    for fw in frameworks:
        server = production.server_name(fw) if in_production and fw.interface else None
        if fw.unavailable:
            rows.append(_row(fw, "unavailable", fw.unavailable))
            continue
        variants: list[str | None] = [None]
        if crud:
            variants = [v for v in fw.crud if settings.variants is None or v in settings.variants]
            if not variants:
                why = (f"no CRUD app for {fw.title}" if not fw.crud else
                       f"{fw.title}'s CRUD variants are {', '.join(fw.crud)}")
                rows.append(_row(fw, "not-applicable", why))
                continue
        for variant in variants:
            row = _row(fw, variant=variant, server=server)
            rows.append(row)
            missing = fw.missing()
            if missing:
                row.status = "not-installed"
                row.reason = f"no module {', '.join(missing)}: pip install {fw.pip} (or {fw.extra_hint()})"
                continue
            if variant == "sqlalchemy" and not catalog.importable("sqlalchemy"):
                row.status, row.pip = "not-installed", "pip install sqlalchemy"
                row.pip_extra = 'pip install "memprobe[orm]"'
                row.reason = f"no module sqlalchemy: {row.pip} (or {row.pip_extra})"
                continue
            if in_production:
                if fw.interface is None:
                    row.status, row.reason = "not-applicable", f"no production server for {fw.title}"
                    continue
                absent = production.missing_modules(fw)
                if absent:
                    row.status, row.pip = "not-installed", f"pip install {' '.join(absent)}"
                    row.pip_extra = 'pip install "memprobe[production]"'
                    row.reason = f"no module {', '.join(absent)}: {row.pip} (or {row.pip_extra})"
    return rows


def _row(fw: catalog.Framework, status: str = "ok", reason: str = "", *, variant: str | None = None,
         server: str | None = None) -> FrameworkResult:
    """A row filled from the catalog: the framework's names, version, server, and what to
    install when it cannot run here."""
    return FrameworkResult(name=fw.name, title=fw.title, version=fw.version(), server=server or fw.server,
                           status=status, reason=reason, variant=variant, pip=f"pip install {fw.pip}",
                           pip_extra=fw.extra_hint())
