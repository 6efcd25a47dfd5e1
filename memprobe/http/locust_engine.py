"""Locust as memprobe's load engine: exactly N requests from a Locust master and its workers.

memprobe's own hammer is the default and the faster one on a single machine; Locust is for
load from many machines. Locust (and gevent's monkey-patching) never enters this process: a
driver (:mod:`memprobe.http.locust_driver`) runs the master in a process group of its own and
starts the local workers in it; jobs go to it and figures come back as JSON lines on a pipe.
Its logs live in a private temporary directory, removed at :meth:`LocustEngine.close`, which
also ends the whole group (on success, failure and Ctrl-C alike).
"""
from __future__ import annotations

import collections
import importlib.util
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Callable

from memprobe.errors import LoadEngineError, MissingDependency, UsageError
from memprobe.http.hammer import Hammer
from memprobe.http.histogram import LatencyHistogram
from memprobe.http.load import LoadResult
from memprobe.process.group import spawn, stop_group, wait_exit

ENGINES = ("native", "locust")
#: The pip command a missing Locust names.
PIP_SPEC = "'memprobe[locust]'"
#: Local workers reach a master bound to every interface through loopback.
_ANY = {"", "*", "0.0.0.0", "::"}


def require_locust() -> None:
    """Raise :class:`MissingDependency` (exit 4) when Locust is not installed."""
    try:
        found = importlib.util.find_spec("locust") is not None
    except (ImportError, ValueError):  # a broken install, or a module blocked in sys.modules
        found = False
    if not found:
        raise MissingDependency("Locust (for --engine locust)", PIP_SPEC)


def parse_master(address: str) -> tuple[str, int]:
    """``HOST:PORT`` where a master that accepts remote workers binds."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--locust-master is HOST:PORT (e.g. 0.0.0.0:5557), not {address!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


class LocustEngine:
    """A Locust master with ``workers`` local workers (and ``expect_workers`` in all, remote
    ones included), started once and used for any number of loads.

    ``master`` (``HOST:PORT``) is where the master binds for workers on other machines;
    without it the master binds 127.0.0.1 on a free port and only local workers can join.
    """

    def __init__(self, workers: int = 1, *, master: str | None = None, expect_workers: int | None = None,
                 ready_timeout: float = 60.0) -> None:
        if workers < 0:
            raise UsageError(f"--locust-workers cannot be negative ({workers})")
        self.bind_host, self.bind_port = parse_master(master) if master else ("127.0.0.1", 0)
        self.workers = workers
        self.expect = expect_workers if expect_workers is not None else max(workers, 1)
        if self.expect < 1:
            raise UsageError(f"--expect-workers must be at least 1, not {self.expect}")
        if self.expect < workers:
            raise UsageError(f"--expect-workers ({self.expect}) is fewer than --locust-workers ({workers})")
        if master is None and self.expect > workers:
            raise UsageError("remote workers need a master they can reach: give --locust-master HOST:PORT")
        self.ready_timeout = ready_timeout
        self.port = 0
        self.connected = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stopped = False
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The driver's pid (the master; its workers are in its process group)."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> LocustEngine:
        """Start the master and its local workers; wait until every expected worker joined."""
        require_locust()
        if self._proc is not None:
            return self
        self._dir = Path(tempfile.mkdtemp(prefix="memprobe-locust-"))
        connect = "127.0.0.1" if self.bind_host in _ANY else self.bind_host
        argv = [sys.executable, "-m", "memprobe.http.locust_driver", "master", "--bind-host", self.bind_host,
                "--bind-port", str(self.bind_port), "--connect-host", connect, "--workers", str(self.workers),
                "--expect", str(self.expect), "--ready-timeout", str(self.ready_timeout),
                "--log-dir", str(self._dir)]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self._dir / "master.log", "wb") as log:
            try:
                self._proc = spawn(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
            except OSError as err:
                self.close()
                raise LoadEngineError(f"cannot start the Locust master: {err.strerror}") from None
        _live.add(self)
        assert self._proc.stdout is not None
        threading.Thread(target=self._read, args=(self._proc.stdout,), daemon=True,
                         name="memprobe-locust").start()
        try:
            ready = self._next("starting", timeout=self.ready_timeout + 30)
        except BaseException:
            self.close()
            raise
        self.port, self.connected = int(ready["port"]), int(ready["workers"])
        return self

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            try:
                self._events.put(json.loads(line))
            except ValueError:
                continue
        self._events.put(None)

    def _next(self, phase: str, timeout: float | None = None,
              on_progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """The next event that is not progress; raise on failure or on the driver's end."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            try:
                event = self._events.get(timeout=wait)
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise LoadEngineError(f"the Locust master did not answer while {phase}", self.log_tail()) from None
                continue
            if event is None:
                raise LoadEngineError(f"the Locust master exited while {phase}", self.log_tail())
            kind = event.get("event")
            if kind == "progress":
                if on_progress is not None:
                    on_progress(int(event["done"]))
                continue
            if kind == "failed":
                raise LoadEngineError(f"locust engine: {event.get('message')}", self.log_tail())
            return event

    def run(self, job: Mapping[str, Any], on_progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Send one job (see :class:`LocustHammer`) and wait for its figures."""
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise RuntimeError("the Locust engine has not been started")
        try:
            proc.stdin.write((json.dumps(dict(job)) + "\n").encode())
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise LoadEngineError("the Locust master exited before the load", self.log_tail()) from None
        return self._next("sending the load", on_progress=on_progress)

    def log_tail(self, lines: int = 12) -> str:
        """The last lines of the master's and workers' logs that say something went wrong."""
        if self._dir is None or not self._dir.exists():
            return ""
        kept: collections.deque[str] = collections.deque(maxlen=lines)
        for path in sorted(self._dir.glob("*.log")):
            text = path.read_text(encoding="utf-8", errors="replace")
            kept.extend(f"{path.stem}: {line}" for line in text.splitlines()
                        if any(w in line for w in ("Error", "error", "Traceback", "Exception")))
        return "\n".join(kept)

    def close(self) -> None:
        """End the master and every worker in its group, then remove the logs. Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            proc = self._proc
            if proc is not None:
                _end(proc)
            _live.discard(self)
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> LocustEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _end(proc: subprocess.Popen[bytes]) -> None:
    # Closing stdin asks the master to quit its workers (remote ones too); the group goes after.
    try:
        if proc.stdin is not None:
            proc.stdin.close()
    except OSError:
        pass
    wait_exit(proc, 3.0)
    stop_group(proc, 3.0)
    if proc.stdout is not None:
        proc.stdout.close()


_live: set[LocustEngine] = set()


def stop_all() -> None:
    """End every engine still running (memprobe exiting without reaching a ``finally``)."""
    for engine in list(_live):
        engine.close()


import atexit  # noqa: E402 - registered after the function it calls

atexit.register(stop_all)


class LocustHammer:
    """The native :class:`~memprobe.http.hammer.Hammer`'s interface (``run()``, ``completed``,
    ``result``, ``progress``) with the requests sent by Locust workers.

    Every argument means what it means to the native hammer (``{n}``, ``first`` and ``cycle``
    included; ``burst`` mode is the native hammer's alone). ``engine`` is a started
    :class:`LocustEngine` to reuse across loads; without one, ``run()`` starts its own with
    ``workers`` local workers and ends it after.
    """

    def __init__(self, url: str, n: int | None = None, *, engine: LocustEngine | None = None, workers: int = 1,
                 **options: Any) -> None:
        require_locust()
        if options.get("requests"):
            raise UsageError("a sequence of request templates (hunt --replay) is sent by memprobe's own "
                             "hammer only; drop --engine locust")
        if options.get("mode") == "burst":
            raise UsageError("--mode burst (every request on its own connection at once) is the native "
                             "hammer's; with --engine locust use keepalive or close")
        # The native hammer's options and checks, once: URL, port, counts, timeout, latin-1 headers.
        spec = Hammer(url, n, **options)
        headers: Mapping[str, str] = options.get("headers") or {}
        self.url, self.host, self.port, self.n = url, spec.host, spec.port, n
        self.duration, self.concurrency, self.timeout, self.mode = spec.duration, spec.concurrency, spec.timeout, spec.mode
        self.progress = spec.progress
        self.engine = engine
        self.workers = workers
        sent_headers = {"User-Agent": "memprobe", "Accept": "*/*", **headers}
        if spec.mode == "close":
            sent_headers["Connection"] = "close"
        self.job: dict[str, Any] = {
            "url": url, "templated": "{n}" in url, "name": url.split("?")[0], "n": n, "duration": spec.duration,
            "concurrency": spec.concurrency, "timeout": spec.timeout, "method": spec.method,
            "body": spec.body.decode("latin-1") if spec.body is not None else None, "headers": sent_headers,
            "first": spec.first, "cycle": spec.cycle,
        }
        self.completed = 0
        self.result = LoadResult(url, spec.mode, spec.concurrency, spec.timeout, engine="locust")

    def _on_progress(self, done: int) -> None:
        self.completed = done
        if self.progress:
            self.progress(done, self.n)

    def run(self) -> LoadResult:
        """Send the load through the engine (started here when none was given) and return it."""
        engine = self.engine if self.engine is not None else LocustEngine(self.workers).start()
        try:
            data = engine.run(self.job, self._on_progress)
        finally:
            if engine is not self.engine:
                engine.close()
        merge_figures(self.result, data)
        self.completed = self.result.sent
        if self.progress:
            self.progress(self.completed, self.n)
        return self.result


def merge_figures(result: LoadResult, data: Mapping[str, Any]) -> None:
    """Add what each worker counted (and its latency histogram) to ``result``."""
    result.duration_s = float(data["duration_s"])
    result.engine_workers = int(data["workers"])
    for w in data["by_worker"]:
        result.sent += int(w["sent"])
        result.ok += int(w["ok"])
        result.failed += int(w["failed"])
        result.timeouts += int(w["timeouts"])
        for k, v in w["errors"].items():
            result.errors[k] = result.errors.get(k, 0) + int(v)
        for k, v in w["status_counts"].items():
            result.status_counts[k] = result.status_counts.get(k, 0) + int(v)
        lat = w["latency"]
        h = LatencyHistogram()
        h.counts = {int(k): int(v) for k, v in lat["buckets"]}
        h.count, h.total = int(lat["count"]), float(lat["total"])
        if h.count:
            h.min, h.max = float(lat["min"]), float(lat["max"])
        result.latency.merge(h)
