"""The in-code form of ``memprobe watch``, for a server memprobe cannot attach to or start:

    from memprobe.watch.middleware import middleware
    app = middleware(app, json="/var/tmp/memprobe-watch.json", interval=10)

The same recorder the agent uses (:mod:`memprobe.agent.watching`) is put around the app (a WSGI
or an ASGI one, told apart by its ``__call__``), through the same wrappers
(:class:`~memprobe.agent.inject.CountingWSGI`, ``CountingASGI``). Each process that serves gets
its own recorder at its first request (so a server that forks its workers after loading the
app, ``gunicorn --preload``, records in each worker, not in the master), and a daemon thread
that every ``interval`` closes the window and adds it to the one report all the workers share:
under an exclusive lock on ``FILE.lock``, read, append, rewrite atomically, the oldest windows
dropped beyond ``max_windows``. At exit the last window is written.

``capture="FILE"`` also records requests into a capture file (:mod:`memprobe.capture`), for
``hunt --replay``: those of ``capture_routes`` (``METHOD route`` as the report names them, or a
bare route for any method; None: every route, each capped at a quarter of the requests),
``redact`` naming the header, query, form and JSON fields to redact besides the default headers
(done in the worker, before anything is written). Each process keeps its own bounded buffer
(:class:`~memprobe.capture.record.CaptureBuffer`) and, every interval and at exit, adds what it
recorded to the file under the same lock as the windows: read, append within the bounds, rewrite
atomically.
"""
from __future__ import annotations

import atexit
import fcntl
import inspect
import json as _json
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memprobe.agent.inject import CountingASGI, CountingWSGI, Served
from memprobe.agent.watching import Recorder, hook_frameworks
from memprobe.capture.record import ALL_ROUTES, MAX_BODY, MAX_BYTES, MAX_REQUESTS, CaptureBuffer, CaptureStore
from memprobe.capture.redact import Redactor
from memprobe.results.envelope import SCHEMA, now

DEFAULT_JSON = "memprobe-watch.json"
#: What the file the middleware writes holds: the workers' windows, as they came; ``memprobe
#: watch --windows FILE`` turns them into the report.
WINDOWS_KIND = "watch-windows"


def middleware(app: Any, json: str | os.PathLike[str] = DEFAULT_JSON, interval: float = 10.0,
               max_windows: int = 20_000, kind: str | None = None, *, capture: str | os.PathLike[str] | None = None,
               capture_routes: Iterable[str] | None = None, redact: Iterable[str] = (),
               capture_requests: int = MAX_REQUESTS, capture_bytes: int = MAX_BYTES,
               capture_body: int = MAX_BODY) -> Any:
    """``app`` wrapped so that each process serving it records windows into ``json`` (and, with
    ``capture``, requests into that capture file; see the module's docstring); ``kind``
    (``wsgi`` or ``asgi``) when its ``__call__`` does not tell."""
    if interval <= 0:
        raise ValueError(f"interval must be positive, not {interval:g}")
    if kind is None:
        kind = "asgi" if _is_asgi(app) else "wsgi"
    if kind not in ("wsgi", "asgi"):
        raise ValueError(f"kind must be 'wsgi' or 'asgi', not {kind!r}")
    recording = InProcess(Path(json), interval, max_windows)
    if capture is not None:
        recording.capture = CaptureSpec(Path(capture), None if capture_routes is None else tuple(capture_routes),
                                        tuple(redact), capture_requests, capture_bytes, capture_body)
    served = Served()
    wrapper = CountingASGI if kind == "asgi" else CountingWSGI
    return wrapper(app, lambda: served, recording.recorder)


def _is_asgi(app: Any) -> bool:
    return inspect.iscoroutinefunction(app) or (callable(app) and inspect.iscoroutinefunction(app.__call__))


@dataclass(frozen=True)
class CaptureSpec:
    """What the middleware captures, and where."""

    path: Path
    routes: tuple[str, ...] | None
    redact: tuple[str, ...]
    max_requests: int
    max_bytes: int
    max_body: int

    def buffer(self) -> CaptureBuffer:
        """A process's buffer."""
        return CaptureBuffer(self.routes if self.routes is not None else [ALL_ROUTES], redact=self.redact,
                             max_requests=self.max_requests, max_bytes=self.max_bytes, max_body=self.max_body)

    def store(self) -> CaptureStore:
        """The file's records as they are, to add to."""
        store = CaptureStore(self.path, "middleware", Redactor(self.redact).redacted, max_requests=self.max_requests,
                             max_bytes=self.max_bytes, max_body=self.max_body)
        store.load()
        return store


class InProcess:
    """The recorder of the process that serves now, and the thread that writes its windows."""

    def __init__(self, path: Path, interval: float, max_windows: int) -> None:
        self.path = path
        self.interval = interval
        self.max_windows = max_windows
        self.started = now()
        self._pid = 0
        self._recorder: Recorder | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.capture: CaptureSpec | None = None

    def recorder(self) -> Recorder:
        """This process's recorder, made (with its writer thread) at its first request."""
        recorder = self._recorder
        if recorder is not None and self._pid == os.getpid():
            return recorder
        with self._lock:
            if self._recorder is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._recorder = Recorder(self.interval)
                if self.capture is not None:
                    self._recorder.capture = self.capture.buffer()
                self._stop = threading.Event()
                hook_frameworks()
                threading.Thread(target=self._run, args=(self._recorder, self._stop), daemon=True,
                                 name="memprobe-watch").start()
                atexit.register(self.flush)
            return self._recorder

    def _run(self, recorder: Recorder, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            self.write(recorder)

    def flush(self) -> None:
        """Write this process's last windows (at exit)."""
        if self._recorder is not None and self._pid == os.getpid():
            self._stop.set()
            self.write(self._recorder)

    def write(self, recorder: Recorder) -> None:
        """Add the recorder's closed windows to the shared report."""
        windows = [w.to_dict() for w in recorder.take()]
        captured = recorder.capture.take() if recorder.capture is not None else []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(f"{self.path}.lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    data = _json.loads(self.path.read_text(encoding="utf-8"))
                    kept = list(data.get("windows") or [])
                except (OSError, ValueError):
                    kept = []
                kept = (kept + windows)[-self.max_windows:]
                from memprobe import __version__

                _write_atomically(self.path, {
                    "memprobe": __version__, "schema": SCHEMA, "result": WINDOWS_KIND, "started": self.started,
                    "machine": None, "settings": {"interval": self.interval, "max_windows": self.max_windows},
                    "duration_s": None, "how": "middleware", "windows": kept})
                if captured and self.capture is not None:
                    store = self.capture.store()
                    store.add(captured)
                    store.write()
        except OSError:
            pass  # a report that cannot be written must never break the app


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    """``data`` as JSON through a temporary file renamed over ``path``: a reader (or a kill)
    never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(_json.dumps(data) + "\n", encoding="utf-8")
    os.replace(tmp, path)
