"""``--server production``: the apps under the servers people deploy them with.

WSGI apps run under gunicorn with the ``gthread`` worker (``--workers`` processes of
``--threads`` threads), ASGI apps under uvicorn with ``--workers`` processes, aiohttp and Tornado
under gunicorn with their own worker classes (aiohttp's ``GunicornWebWorker``, gunicorn's
``tornado``). The server's master and every worker are read with :func:`read_tree`; the master
is the process memprobe started, the workers its descendants.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

import psutil

from memprobe.compare import frameworks as catalog
from memprobe.errors import TargetError
from memprobe.process.memory import FIELDS, MemoryReading, TreeReading

SERVERS = ("dev", "production")

_GUNICORN_WORKERS = {"wsgi": "gthread", "aiohttp": "aiohttp.GunicornWebWorker", "tornado": "tornado"}


@dataclass(frozen=True)
class ProductionSettings:
    """Workers and threads per worker (threads apply to gunicorn's gthread worker only)."""

    workers: int = 2
    threads: int = 2


def server_name(fw: catalog.Framework) -> str:
    """The production server for ``fw``, for people ("gunicorn gthread", "uvicorn")."""
    if fw.interface == "asgi":
        return "uvicorn"
    return f"gunicorn {_GUNICORN_WORKERS.get(fw.interface or '', '?')}"


def missing_modules(fw: catalog.Framework) -> list[str]:
    """The server modules production mode needs for ``fw`` that cannot be imported."""
    needed = ["uvicorn"] if fw.interface == "asgi" else ["gunicorn"]
    return [m for m in needed if not catalog.importable(m)]


def app_target(fw: catalog.Framework, app: str) -> str:
    """``module:object`` for the server: the hello-world's app, or the CRUD app's factory."""
    if app == "crud":
        return f"crud_{fw.name}:create_app" + ("" if fw.interface == "asgi" else "()")
    return f"hello_{fw.name}:{fw.app_spec}"


def command(fw: catalog.Framework, app: str, port: int, settings: ProductionSettings,
            host: str = "127.0.0.1", python: str = sys.executable) -> list[str]:
    """The argv that serves ``fw``'s ``app`` ("hello" or "crud") on ``host:port``."""
    if fw.interface is None or fw.app_spec is None:
        raise TargetError(f"{fw.title} has no production server in memprobe's catalog")
    folder = str(catalog.frameworks_dir())
    target = app_target(fw, app)
    if fw.interface == "asgi":
        argv = [python, "-m", "uvicorn", "--app-dir", folder, "--host", host, "--port", str(port),
                "--workers", str(settings.workers), "--log-level", "warning", "--no-access-log"]
        if app == "crud":
            argv.append("--factory")
        return argv + [target]
    argv = [python, "-m", "gunicorn", "--chdir", folder, "--bind", f"{host}:{port}",
            "--workers", str(settings.workers), "--worker-class", _GUNICORN_WORKERS[fw.interface],
            "--log-level", "warning"]
    if fw.interface == "wsgi":
        argv += ["--threads", str(settings.threads)]
    return argv + [target]


def role(pid: int, root: int) -> str:
    """"master" for the process memprobe started, "helper" for multiprocessing's resource
    tracker (uvicorn's workers start one), "worker" for the rest."""
    if pid == root:
        return "master"
    try:
        cmdline = " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return "worker"
    return "helper" if "resource_tracker" in cmdline or "semaphore_tracker" in cmdline else "worker"


def wait_for_workers(pid: int, workers: int, timeout: float) -> int:
    """Wait until the master ``pid`` has ``workers`` worker processes; return how many it has."""
    deadline = time.monotonic() + timeout
    count = 0
    while True:
        try:
            children = psutil.Process(pid).children(recursive=True)
        except psutil.NoSuchProcess:
            raise TargetError(f"the server's master (pid {pid}) is gone") from None
        count = sum(1 for c in children if role(c.pid, pid) == "worker")
        if count >= workers or time.monotonic() >= deadline:
            return count
        time.sleep(0.05)


def roles(reading: TreeReading) -> dict[int, str]:
    """The role of every process of ``reading``, while they still run (read it at once)."""
    return {pid: role(pid, reading.root) for pid in reading.processes}


def processes(before: TreeReading | None, after: TreeReading | None,
              known: dict[int, str] | None = None) -> list[dict[str, Any]]:
    """One entry per process seen in either reading: pid, role, before, after, delta.
    ``known`` holds roles read while the processes ran (see :func:`roles`)."""
    either = after or before
    root = either.root if either is not None else 0
    known = known or {}
    pids = list(dict.fromkeys([*(before.processes if before else {}), *(after.processes if after else {})]))
    out = []
    for pid in pids:
        b = before.processes.get(pid) if before else None
        a = after.processes.get(pid) if after else None
        out.append({
            "pid": pid,
            "role": known.get(pid) or role(pid, root),
            "before": _reading(b),
            "after": _reading(a),
            "delta": b.delta(a) if a is not None and b is not None else None,
        })
    return out


def by_role(entries: list[dict[str, Any]], key: str = "after") -> dict[str, Any]:
    """Totals per role of the ``key`` readings, and the mean worker: what one more worker costs."""
    out: dict[str, Any] = {}
    for name in ("master", "worker", "helper"):
        readings = [e[key] for e in entries if e["role"] == name and e[key] is not None]
        if not readings:
            continue
        total = {f: _sum([r[f] for r in readings]) for f in FIELDS}
        out[name] = {"count": len(readings), "total": total}
        if name == "worker":
            out[name]["mean"] = {f: None if v is None else v // len(readings) for f, v in total.items()}
    return out


def _sum(values: list[int | None]) -> int | None:
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


def _reading(r: MemoryReading | None) -> dict[str, int | None] | None:
    return None if r is None else {k: getattr(r, k) for k in FIELDS}
