"""``compare``: each framework's hello-world started, hammered, and measured before and after.

Frameworks are hammered one at a time, so that one does not steal CPU from another's
measurement; their idle waits (the settles before each reading, the stops) overlap, see
:func:`_overlapped_round` (``Settings.overlap``; ``--alone`` runs each child on its own). With
several rounds the order is interleaved (a, b, c, a, b, c) so that drift on the machine spreads
over all of them, and each round starts fresh children.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from memprobe.compare import frameworks as catalog
from memprobe.compare import production
from memprobe.compare.settings import Settings
from memprobe.compare.stages import Crashed, Measurement, ProgressFn
from memprobe.errors import LoadEngineError, TargetError
from memprobe.http.locust_engine import LocustEngine
from memprobe.process.child import PortTaken
from memprobe.results.compare import CompareResult, FrameworkResult, Round

#: CompareResult and Settings are re-exported: ``memprobe compare`` and bench/ take them from here
__all__ = ["CompareResult", "Settings", "measure", "plan", "run"]



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
    one = Measurement(fw, settings, variant=variant, log_dir=log_dir, on_progress=on_progress,
                       load_engine=load_engine)
    one.start()
    try:
        one.read_before()
        one.hammer()
        one.read_after()
    finally:
        one.close()
    return one.finish()


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
            if settings.overlap:
                _overlapped_round(rows, by_name, settings, hooks)
                continue
            for row in rows:
                if row.status != "ok":
                    continue
                try:
                    row.rounds.append(measure(by_name[row.name], settings, variant=row.variant, **hooks))
                except LoadEngineError:
                    raise  # the engine is broken for every framework, not this one's fault
                except TargetError as err:
                    _failed(row, err)
    except BaseException:
        result.interrupted = True
        raise
    finally:
        result.duration_s = time.monotonic() - start
    return result


def _failed(row: FrameworkResult, err: TargetError) -> None:
    """A row's round that failed: ``crashed`` with what was measured, or ``failed-to-start``."""
    if isinstance(err, Crashed):
        row.rounds.append(err.partial)
        row.status, row.reason, row.log_tail = "crashed", str(err), err.log_tail
    else:
        row.status, row.reason, row.log_tail = "failed-to-start", str(err), err.log_tail


def _overlapped_round(rows: list[FrameworkResult], by_name: dict[str, catalog.Framework],
                      settings: Settings, hooks: dict[str, Any]) -> None:
    """One round of every row, the children alive together so that their idle waits overlap.

    The children start one after the other (each start-up has the CPU to itself: its
    ``ready_s`` is its own), each settling while the next starts. Then each is read, hammered
    alone, and left to settle while the next is read and hammered: a process that is idle or
    settling costs the one being hammered nothing measurable. Every reading of a round is
    taken with the same processes alive (a page two children map counts in neither one's USS,
    and PSS shares it between them), so a framework's before and after see the same neighbours;
    they all stop together once the last reading is taken.
    """
    jobs: list[tuple[FrameworkResult, Measurement]] = []
    pending: list[tuple[FrameworkResult, Measurement, Future[None]]] = []
    pool = ThreadPoolExecutor(max_workers=max(1, len(rows)), thread_name_prefix="memprobe-after")
    try:
        _start_all([row for row in rows if row.status == "ok"], by_name, settings, hooks, jobs)
        for row, one in jobs:
            try:
                one.read_before()
                one.hammer()
            except LoadEngineError:
                raise  # the engine is broken for every framework, not this one's fault
            except TargetError as err:
                _failed(row, err)
                continue
            pending.append((row, one, pool.submit(one.read_after)))
        for row, one, done in pending:
            try:
                done.result()
            except TargetError as err:
                _failed(row, err)
                continue
            row.rounds.append(one.finish())
    finally:
        # Stopping ends every watch, so a reading still waiting returns at once.
        _close_all([one for _, one in jobs])
        pool.shutdown(wait=True)


def _start_all(rows: list[FrameworkResult], by_name: dict[str, catalog.Framework], settings: Settings,
               hooks: dict[str, Any], jobs: list[tuple[FrameworkResult, Measurement]]) -> None:
    """Start every row's child, as many at once as there are CPUs (more would slow each
    start-up and make its ``ready_s`` another's); ``jobs`` gets the ones that answer, in the
    rows' order, the others' rows say why. The children are launched from this thread (their
    death signal follows the thread that started them); threads only wait for them."""
    at_once = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    todo = [(row, Measurement(by_name[row.name], settings, variant=row.variant, **hooks)) for row in rows]
    started: dict[int, Measurement] = {}
    running: dict[Future[None], tuple[FrameworkResult, Measurement]] = {}
    pool = ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="memprobe-start")
    try:
        queue = list(todo)
        while queue or running:
            while queue and len(running) < at_once:
                row, one = queue.pop(0)
                try:
                    one.launch()
                except TargetError as err:
                    _failed(row, err)
                    continue
                running[pool.submit(one.wait_ready)] = (row, one)
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                row, one = running.pop(future)
                try:
                    try:
                        future.result()
                    except PortTaken:  # another process took the port first: the slow way, with retries
                        one.start()
                except TargetError as err:
                    _failed(row, err)
                    continue
                started[id(one)] = one
    except BaseException:
        for _, one in todo:
            one.stop_child()
        pool.shutdown(wait=True)
        for _, one in todo:
            one.close()
        raise
    pool.shutdown(wait=True)
    jobs.extend((row, one) for row, one in todo if id(one) in started)


def _close_all(jobs: list[Measurement]) -> None:
    """Stop every child at once: each may take its SIGTERM grace to exit."""
    if len(jobs) <= 1:
        for one in jobs:
            one.close()
        return
    with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="memprobe-stop") as pool:
        for done in [pool.submit(one.close) for one in jobs]:
            done.result()


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
