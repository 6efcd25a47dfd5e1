"""The in-process probe: a WSGI app called through a test client in this process, no server.

Why it exists: it is fast (no start-up, no sockets) and the traced heap is exact to the byte, so
a limit can be set a few bytes either side of an app's growth and the test stays deterministic.
Why it is not the default: it measures the app inside the test runner (whose USS is not the
server's), with the test client's code path instead of a real server's.

The client is werkzeug's ``Client`` when werkzeug is installed, else a small builder of WSGI
environs from the standard library (:func:`wsgiref.util.setup_testing_defaults`). Only the
traced heap is judged unless ``uss=True``: the USS here is the test runner's, and pytest's own
allocations move it by hundreds of KiB, enough to call a clean app "bounded".
"""
from __future__ import annotations

import importlib.util
import os
import time
import tracemalloc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

from memprobe.agent.attribution import Attributor
from memprobe.errors import MemprobeError, TargetError
from memprobe.http.load import LoadResult
from memprobe.http.template import RequestTemplate
from memprobe.hunt.probes import AppInfo, Attribution, Launch, Reach, RssLines
from memprobe.results.hunt import HuntSettings, Reading, WorkerResult
from memprobe.target import load_target
from memprobe.target.routes import find_routes

__all__ = ["InProcess", "SelfReader", "WsgiCaller", "load_wsgi_app"]

#: memprobe's own package: frames from here down are the caller's, not the app's.
_PACKAGE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) + os.sep


def client_name() -> str:
    """The test client the in-process probe uses here: ``werkzeug`` or ``wsgiref``."""
    return "werkzeug" if importlib.util.find_spec("werkzeug") is not None else "wsgiref"


@dataclass
class CallResult:
    """What one call of the app answered."""

    status: int
    body_bytes: int


class WsgiCaller:
    """Calls a WSGI app the way a server would, without a socket.

    Uses werkzeug's test ``Client`` (without a cookie jar, whose growth is the client's, not the
    app's) when werkzeug is importable, else builds the environ with :mod:`wsgiref.util`.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], prefer_werkzeug: bool = True) -> None:
        self.app = app
        self._client: Any = None
        if prefer_werkzeug:
            try:
                from werkzeug.test import Client
            except ImportError:
                pass
            else:
                self._client = Client(app, use_cookies=False)
        self.engine = "werkzeug" if self._client is not None else "wsgiref"

    def call(self, path: str, method: str = "GET", body: bytes | None = None,
             headers: dict[str, str] | None = None) -> CallResult:
        """Call the app once for ``path`` (with its query string) and consume the answer."""
        if self._client is not None:
            response = self._client.open(path, method=method, data=body, headers=headers)
            try:
                size = len(response.get_data())
                return CallResult(response.status_code, size)
            finally:
                response.close()
        return self._call_stdlib(path, method, body, headers or {})

    def _call_stdlib(self, path: str, method: str, body: bytes | None,
                     headers: dict[str, str]) -> CallResult:
        import io
        from wsgiref.util import setup_testing_defaults

        parts = urlsplit(path)
        data = body or b""
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method.upper(),
            "PATH_INFO": parts.path or "/",
            "QUERY_STRING": parts.query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "HTTP_HOST": "127.0.0.1",
            "CONTENT_LENGTH": str(len(data)),
            "wsgi.input": io.BytesIO(data),
        }
        for key, value in headers.items():
            name = key.upper().replace("-", "_")
            environ[name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{name}"] = value
        setup_testing_defaults(environ)
        status: list[str] = []

        def start_response(line: str, _headers: list[tuple[str, str]],
                           _exc_info: Any = None) -> Callable[[bytes], None]:
            status.append(line)
            return lambda _chunk: None

        answer = self.app(environ, start_response)
        size = 0
        try:
            for chunk in answer:
                size += len(chunk)
        finally:
            close = getattr(answer, "close", None)
            if close is not None:
                close()
        code = int(status[-1].split()[0]) if status else 500
        return CallResult(code, size)


def load_wsgi_app(target: str | Callable[..., Any]) -> tuple[Callable[..., Any], str, str | None]:
    """The WSGI app for ``target`` (a spec such as ``app.py:app``, or the app itself), with the
    label reports show and the framework's name; TargetError for anything that is not WSGI."""
    if callable(target) and not isinstance(target, str):
        owner = type(target) if not hasattr(target, "__code__") else target
        framework = (getattr(owner, "__module__", None) or "?").split(".")[0]
        label = getattr(target, "import_name", None) or getattr(target, "__qualname__", None) \
            or type(target).__name__
        return target, str(label), framework
    loaded = load_target(str(target))
    if loaded.kind != "wsgi":
        raise TargetError(f"{target}: in-process mode calls WSGI apps only; this is a "
                          f"{loaded.kind} app (use the default child-process mode)")
    return loaded.app, str(target), loaded.framework


class InProcess:
    """Reach ``target`` (a spec, or the WSGI callable itself) by calling it in this process;
    ``method``, ``body`` and ``headers`` shape every call."""

    def __init__(self, target: Any, settings: HuntSettings, *, method: str = "GET",
                 body: bytes | None = None, headers: dict[str, str] | None = None) -> None:
        self.target = target
        self.settings = settings
        self.method, self.body, self.headers = method, body, headers
        self.label = target if isinstance(target, str) else repr(target)
        self.caller: WsgiCaller | None = None
        self.framework: str | None = None

    @property
    def pid(self) -> int:
        """This process."""
        return os.getpid()

    @property
    def argv(self) -> list[str]:
        """No command: the app runs here."""
        return []

    def open(self, launch: Launch) -> None:
        """Load the app (this runs the user's code here) and pick the test client."""
        app, self.label, self.framework = load_wsgi_app(self.target)
        self.caller = WsgiCaller(app)

    def send(self, route: str, n: int, first: int, connections: str = "keepalive", *,
             requests: Sequence[RequestTemplate] | None = None) -> LoadResult:
        """``n`` calls of the app, one after another, counted as the hammer counts requests
        (``requests``: call number ``k`` made from ``requests[k % len(requests)]``)."""
        assert self.caller is not None, "open() first"
        result = LoadResult(route, "in_process", 1, 0.0)
        templated = "{n}" in route
        # No latency histogram here: its buckets are allocated in this very process, on the
        # traced heap being measured.
        start = time.perf_counter()
        for i in range(first, first + n):
            if requests:
                t = requests[i % len(requests)]
                result.answer(self.caller.call(t.target_for(i), t.method, t.body_for(i), dict(t.headers)).status)
                continue
            path = route.replace("{n}", str(i)) if templated else route
            result.answer(self.caller.call(path, self.method, self.body, self.headers).status)
        result.sent = n
        result.duration_s = time.perf_counter() - start
        return result

    def check_alive(self, grace: float = 0.0) -> None:
        """This process is alive."""

    def log_tail(self) -> str:
        """No log: errors are raised here."""
        return ""

    def failure(self, err: MemprobeError, phase: str) -> MemprobeError:
        """Nothing crashes apart from the caller here: the error as it is."""
        return err

    def close(self) -> None:
        """Nothing was started."""


class SelfReader:
    """This process's own heap, read by the agent's :class:`Attributor` in place: ``holders=False``
    skips the roots scans; ``uss=True`` also judges this process's USS. Growing types are not
    counted here (Heapy's walk of a test runner's heap costs seconds and names the runner's
    objects too)."""

    mode = "in_process"
    sees_inside = True
    memory = "uss"
    connections = "keepalive"
    serving = 1

    def __init__(self, settings: HuntSettings, *, holders: bool = True, uss: bool = False) -> None:
        self.settings = settings
        self.uss = uss
        self.attributor = Attributor(settings.frames, types=False, scan_holders=holders, cut_below=_PACKAGE)

    def launch(self) -> Launch:
        """Nothing is started."""
        return Launch()

    def start_failed(self, err: MemprobeError) -> MemprobeError:
        """The app's own error."""
        return err

    def connect(self, reach: Reach) -> AppInfo:
        """What the app is, and which test client calls it."""
        assert isinstance(reach, InProcess) and reach.caller is not None
        notes = [f"in-process: {reach.caller.engine} test client, no server; "
                 + ("USS is the test process's" if self.uss else "traced heap only")]
        if not self.attributor.tracing.owned:
            notes.append("tracemalloc was already tracing: its frame depth was kept")
        found = find_routes(reach.caller.app)
        return AppInfo("wsgi", reach.framework, found.routes, label=reach.label, notes=notes,
                       routes_note=found.note)

    def begin(self, route: str) -> None:
        """Tracing restarts one frame deep."""
        self.attributor.begin()

    def read(self, done: int, baseline: bool = False) -> Reading:
        """Traced heap after collection; this process's USS when asked (less tracemalloc's
        own tables, which are not the app's)."""
        inside = self.attributor.baseline() if baseline else self.attributor.measure()
        uss = None
        if self.uss:
            from memprobe.process.memory import read_memory

            measured = read_memory(os.getpid()).uss
            uss = None if measured is None else measured - tracemalloc.get_tracemalloc_memory()
        return Reading(done, inside["traced"], uss)

    def growth(self, done: int) -> None:
        """Which containers grew since the baseline."""
        self.attributor.growth(done)

    def deepen(self) -> None:
        """Deep tracebacks from now on."""
        self.attributor.deepen()

    def attribute(self, requests: int, chains: bool = True) -> Attribution:
        """Sites and holders (no types in-process)."""
        return Attribution.from_dict(self.attributor.attribute(requests, chains))  # read as the agent's answer

    def rss_lines(self, route: str, requests: int, uss_per_request: float, first: int) -> RssLines | None:
        """Not in the test process: its RSS is the runner's."""
        return None

    def processes(self) -> list[WorkerResult]:
        """One process: nothing per process."""
        return []

    def close(self) -> None:
        """Stop tracing, if this reader started it."""
        self.attributor.tracing.stop()

    def cleanup(self) -> None:
        """Nothing was written."""
