"""The in-process hunt: a WSGI app called through a test client in this process, no server.

Same protocol and same analysis as :func:`memprobe.hunt.run.hunt`, without a child: warm-up ->
``gc.collect()`` and a baseline (traced heap with tracemalloc, USS of this process, a roots
scan) -> ``rounds`` rounds of ``requests`` calls, each followed by a collection and a reading ->
:func:`memprobe.hunt.model.judge` -> for a route that grew, one attribution round traced ``frames``
deep for the allocation sites, and the holders from a second roots scan. It returns the same
:class:`~memprobe.hunt.run.HuntResult`.

Why it exists: it is fast (no start-up, no sockets) and the traced heap is exact to the byte, so
a limit can be set a few bytes either side of an app's growth and the test stays deterministic.
Why it is not the default: it measures the app inside the test runner (whose USS is not the
server's), with the test client's code path instead of a real server's.

The client is werkzeug's ``Client`` when werkzeug is installed, else a small builder of WSGI
environs from the standard library (:func:`wsgiref.util.setup_testing_defaults`).
"""
from __future__ import annotations

import gc
import linecache
import os
import time
import tracemalloc
from dataclasses import dataclass
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

from memprobe.agent.attribution import group_sites
from memprobe.errors import TargetError, UsageError
from memprobe.hunt.model import judge
from memprobe.results.hunt import Reading, Site

__all__ = ["WsgiCaller", "hunt_in_process"]

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep

Progress = Callable[[str], None]
#: Calls in the attribution round, at most ``requests``. Fewer than ``hunt``'s 1,000: in a test
#: runner the stacks are deep and a call traced 25 frames deep costs ~30 ms on a busy 2-core box;
#: 200 calls still show a 36 B/request site as 7 KiB, well above the 1 KiB a site needs.
ATTRIBUTION_REQUESTS = 200


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


def _collect() -> None:
    # Twice: objects freed by the first pass's finalizers become collectable only then.
    gc.collect()
    gc.collect()


class _Tracing:
    """tracemalloc for the hunt; left as found when someone else (PYTHONTRACEMALLOC) traces."""

    def __init__(self) -> None:
        self.owned = not tracemalloc.is_tracing()

    def restart(self, frames: int) -> None:
        if self.owned:
            if tracemalloc.is_tracing():
                tracemalloc.stop()
            tracemalloc.start(frames)

    def stop(self) -> None:
        if self.owned and tracemalloc.is_tracing():
            tracemalloc.stop()


def _uss_reader() -> Callable[[], int | None]:
    try:
        from memprobe.process.memory import read_memory
    except ImportError:  # psutil missing: traced heap only
        return lambda: None
    pid = os.getpid()

    def read() -> int | None:
        uss = read_memory(pid).uss
        # tracemalloc's own tables grow with every live traced block; they are not the app's.
        return None if uss is None else uss - tracemalloc.get_tracemalloc_memory()

    return read


class _Route:
    """Calls one route, with ``{n}`` in it replaced by a counter that goes on across rounds."""

    def __init__(self, caller: WsgiCaller, route: str, method: str, body: bytes | None,
                 headers: dict[str, str] | None) -> None:
        self.caller = caller
        self.route = route if route.startswith("/") else "/" + route
        self.method, self.body, self.headers = method, body, headers
        self.next = 0
        self.statuses: dict[str, int] = {}

    def run(self, n: int) -> None:
        templated = "{n}" in self.route
        for i in range(self.next, self.next + n):
            path = self.route.replace("{n}", str(i)) if templated else self.route
            status = self.caller.call(path, self.method, self.body, self.headers).status
            key = str(status)
            self.statuses[key] = self.statuses.get(key, 0) + 1
        self.next += n


def load_wsgi_app(target: str | Callable[..., Any]) -> tuple[Callable[..., Any], str, str]:
    """The WSGI app for ``target`` (a spec such as ``app.py:app``, or the app itself), with the
    label reports show and the framework's name; TargetError for anything that is not WSGI."""
    if callable(target) and not isinstance(target, str):
        owner = type(target) if not hasattr(target, "__code__") else target
        framework = (getattr(owner, "__module__", None) or "?").split(".")[0]
        label = getattr(target, "import_name", None) or getattr(target, "__qualname__", None) \
            or type(target).__name__
        return target, str(label), framework
    from memprobe.target import load_target

    loaded = load_target(str(target))
    if loaded.kind != "wsgi":
        raise TargetError(f"{target}: in-process mode calls WSGI apps only; this is a "
                          f"{loaded.kind} app (use the default child-process mode)")
    return loaded.app, str(target), loaded.framework


def hunt_in_process(
    target: str | Callable[..., Any],
    routes: list[str] | None = None,
    requests: int = 2000,
    rounds: int = 5,
    warmup: int = 500,
    frames: int = 25,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    holders: bool = True,
    uss: bool = False,
    progress: Progress | None = None,
) -> Any:
    """Hunt for leaks in a WSGI app called in this process; returns a
    :class:`~memprobe.hunt.run.HuntResult` whose settings say ``"mode": "in_process"``.

    ``target`` is a spec (``app.py:app``, ``pkg.module:create_app()``) or the WSGI callable.
    Without ``routes``, a Flask or Bottle app's parameterless GET routes are hunted, else ``/``.
    Only the traced heap is judged unless ``uss=True``: the USS here is the test runner's, and
    pytest's own allocations move it by hundreds of KiB, enough to call a clean app "bounded".
    Raises UsageError for bad settings and TargetError when the target cannot be loaded.
    """
    from memprobe.agent.control import discover_routes
    from memprobe.results.hunt import HuntResult

    if requests <= 0 or rounds < 2 or warmup < 0 or frames < 1:
        raise UsageError("hunt needs requests > 0, rounds >= 2, warmup >= 0 and frames >= 1")
    say = progress or (lambda _msg: None)
    started = time.monotonic()
    app, label, framework = load_wsgi_app(target)
    caller = WsgiCaller(app)
    settings = {"requests": requests, "rounds": rounds, "warmup": warmup, "concurrency": 1,
                "frames": frames, "cmd": None, "mode": "in_process", "client": caller.engine,
                "uss": uss}
    result = HuntResult(target=label, settings=settings, app_kind="wsgi", framework=framework)
    result.startup_s = time.monotonic() - started
    todo = routes or discover_routes(app) or ["/"]
    if not routes and todo != ["/"]:
        result.notes.append(f"routes discovered from the app: {', '.join(todo)}")
    result.notes.append(f"in-process: {caller.engine} test client, no server; "
                        + ("USS is the test process's" if uss else "traced heap only"))
    tracing = _Tracing()
    if not tracing.owned:
        result.notes.append("tracemalloc was already tracing: its frame depth was kept")
    try:
        for route in todo:
            result.routes.append(_hunt_route(
                _Route(caller, route, method, body, headers), requests, rounds, warmup, frames,
                tracing, holders, uss, say))
    finally:
        tracing.stop()
    result.duration_s = time.monotonic() - started
    return result


def _hunt_route(route: _Route, requests: int, rounds: int, warmup: int, frames: int,
                tracing: _Tracing, scan_holders: bool, read_uss: bool, say: Progress) -> Any:
    from memprobe.agent import holders as roots
    from memprobe.results.hunt import Holder, RouteResult

    t0 = time.monotonic()
    uss = _uss_reader() if read_uss else (lambda: None)
    # Tracing starts before the warm-up, one frame deep (the traced total is the same at any
    # depth, and deep tracebacks cost ~10x per allocation): a cache filled before tracing
    # starts would turn its untraced entries into traced ones in the rounds, and that turnover
    # would look like growth (urllib's urlsplit cache: ~50 KiB with unique query strings).
    tracing.restart(1)
    if warmup:
        say(f"{route.route}: warm-up, {warmup} calls")
        route.run(warmup)
    _collect()
    before = roots.scan_roots() if scan_holders else {}
    _collect()
    readings = [Reading(0, tracemalloc.get_traced_memory()[0], uss())]
    done = 0
    for i in range(rounds):
        say(f"{route.route}: round {i + 1}/{rounds}, {requests} calls")
        route.run(requests)
        done += requests
        _collect()
        readings.append(Reading(done, tracemalloc.get_traced_memory()[0], uss()))
    judgement = judge(readings)
    sites: list[Site] = []
    found: list[Holder] = []
    if judgement.verdict != "clean":
        attributed = min(requests, ATTRIBUTION_REQUESTS)
        say(f"{route.route}: attribution round, {attributed} calls traced {frames} frames deep")
        tracing.restart(frames)
        _collect()
        base = tracemalloc.take_snapshot()
        route.run(attributed)
        _collect()
        end = tracemalloc.take_snapshot()
        sites = _sites(base, end, attributed)
        del base, end
        if scan_holders:
            after = roots.scan_roots()
            found = [Holder.from_dict(h) for h in roots.grown(before, after, done + attributed)]
    notes = []
    bad = {k: v for k, v in route.statuses.items() if not k.startswith(("2", "3"))}
    if bad:
        notes.append(f"{route.route}: answered " + ", ".join(f"{v} x {k}" for k, v in sorted(bad.items())))
    sent = sum(route.statuses.values())
    load = {"sent": sent, "ok": sent - sum(bad.values()), "failed": 0,
            "status_counts": dict(sorted(route.statuses.items())), "throughput_rps": 0.0}
    return RouteResult(route.route, judgement, readings, sites, [], found, load,
                       time.monotonic() - t0, notes)


def _sites(base: tracemalloc.Snapshot, end: tracemalloc.Snapshot, requests: int) -> list[Site]:
    keep_out = [tracemalloc.Filter(False, __file__, all_frames=False),
                tracemalloc.Filter(False, tracemalloc.__file__, all_frames=True)]
    base, end = base.filter_traces(keep_out), end.filter_traces(keep_out)
    diffs = []
    for stat in end.compare_to(base, "traceback"):
        if stat.size_diff <= 0:
            continue
        frames = [(f.filename, f.lineno) for f in stat.traceback]
        # Only the frames below this module's call of the app: the test that called the hunt is
        # the user's code too, and must not be named as the site of what the app keeps.
        ours = [i for i, (filename, _) in enumerate(frames) if filename.startswith(_PACKAGE)]
        frames = frames[ours[-1] + 1:] if ours else frames
        if frames:
            diffs.append((frames, stat.size_diff, stat.count_diff))
    sites = group_sites(diffs, requests)
    for site in sites:
        site.code = linecache.getline(site.file, site.line).strip()
    return sites
