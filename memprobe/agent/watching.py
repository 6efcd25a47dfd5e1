"""What ``memprobe watch`` records inside a serving process: per window, the requests each route
completed, the most requests in flight at once, and the heap's cheap levels; per route, the heap
deltas of requests that ran alone.

A :class:`Recorder` is driven by the wrapper around the app the server loaded
(:class:`memprobe.agent.inject.CountingWSGI` and ``CountingASGI``, or Tornado's handlers:
``counting_tornado``): :meth:`Recorder.begin` as a request enters the app, :meth:`Recorder.end`
once its response is over (a WSGI body closed, an ASGI call or a Tornado handler's run
returned). It never traces and never collects garbage.

**What a request costs** (``bench/watch_readings.py``, Python 3.11): ``sys.getallocatedblocks()``
walks pymalloc's arenas, 0.7 µs on a fresh interpreter but ~210 µs median on a heap of 6 million
blocks, and glibc ``mallinfo2()`` walks malloc's arenas, ~1.6 ms there. So neither is read per
request unconditionally:

* the blocks are read at the start of a request that enters an idle process, and only while the
  time spent reading stays under :data:`BUDGET` of the time requests took (measured as it goes,
  so a large heap gets fewer samples, never a slower server); a sample is the difference between
  the start of a request that ran alone and the start of the next request, when nothing else
  started in between: everything the request left behind once its response was closed and the
  server's own per-request objects were freed;
* ``mallinfo2()`` and the blocks are read once per window, when the window closes.

Everything kept is bounded: the closed windows (a parent that stops asking loses the oldest,
counted in ``dropped``), the routes of a window, the deltas of a route.

When the parent asks (``watch_trace``), the recorder also runs one attribution window
(:mod:`memprobe.agent.watch_trace`): for a bounded window, one request in 200 traced
(tracemalloc on from its start to its end), the findings handed over with the next windows.
"""
from __future__ import annotations

import os
import re
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from memprobe.agent.watch_trace import (
    ENV_HANDLER,
    FRAMES,
    REQUESTS,
    SAMPLE,
    SCREEN_S,
    SECONDS,
    SHARE,
    TraceWindow,
    cherrypy_callable,
    wsgi_handler,
)
from memprobe.results.watch import Window

if TYPE_CHECKING:
    from memprobe.capture.record import CaptureBuffer, Pending

#: The share of the requests' own time the per-request heap readings may take.
BUDGET = 0.01
#: Defaults of :class:`Recorder`'s bounds.
INTERVAL_S = 10.0
MAX_WINDOWS = 360
MAX_ROUTES = 200
MAX_DELTAS = 64
#: After tracing starts or stops, this many requests give no alone delta.
QUIET_AFTER_TRACE = 3
#: Nor do requests during an attribution window, nor this many after: its collections empty the
#: free lists, refilled a block at a time (gunicorn sync: ``GET /health`` +17.4 ± 2.0 blocks alone).
QUIET_AFTER_WINDOW = 1_000
#: The route a window counts requests under once it holds :data:`MAX_ROUTES` routes.
OTHER = "(other routes)"

_ID_SEGMENT = re.compile(
    r"\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}")
#: where a framework hook leaves the route it matched, in the WSGI environ
ENV_ROUTE = "memprobe.route"


def collapse(path: str) -> str:
    """A raw path with its ids collapsed: every segment that is digits, a uuid or a hex string
    of 8 characters or more (with a digit in it) becomes ``{id}``. Not cached: a cache keyed by
    raw paths would grow with every id, inside the heap being watched."""
    return "/".join("{id}" if _ID_SEGMENT.fullmatch(seg) else seg for seg in path.split("/"))


def wsgi_route(environ: dict[str, Any]) -> str:
    """``METHOD route`` of a WSGI request whose app has run, as its framework names it: Flask's
    url rule (werkzeug keeps the request in the environ), Bottle's rule, Django's URL pattern,
    CherryPy's handler; else the raw path with its ids collapsed."""
    method = environ.get("REQUEST_METHOD") or "GET"
    named = environ.get(ENV_ROUTE)
    if named is not None:
        return f"{method} {named}"
    route = environ.get("bottle.route")
    if route is not None:
        return f"{method} {route.rule}"
    path = environ.get("PATH_INFO") or "/"
    if "django.urls" in sys.modules:
        pattern = _django_route(path)
        if pattern is not None:
            return f"{method} {pattern}"
    if "cherrypy" in sys.modules:
        handler = _cherrypy_handler()
        if handler is not None:
            return f"{method} {handler}"
    return f"{method} {collapse(path)}"


def asgi_route(scope: dict[str, Any]) -> str:
    """``METHOD route`` of an ASGI request whose app has run: the route Starlette and FastAPI
    matched (``scope["route"]``), else the raw path with its ids collapsed."""
    method = scope.get("method") or "GET"
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return f"{method} {path}"
    return f"{method} {collapse(scope.get('path') or '/')}"


def tornado_route(handler: Any) -> str:
    """``METHOD route`` of a Tornado request: the URL pattern of the rule that made its handler
    (``/items/([0-9]+)``, as the application lists it), else the raw path with its ids
    collapsed (a 404's ``ErrorHandler``). Looked up once per handler class."""
    request = handler.request
    cls = type(handler)
    pattern = _tornado_patterns.get(cls)
    if pattern is None:
        router = getattr(getattr(handler, "application", None), "wildcard_router", None)
        pattern = _tornado_pattern(router, cls)
        if pattern is not None and len(_tornado_patterns) < MAX_ROUTES:
            _tornado_patterns[cls] = pattern
    return f"{request.method or 'GET'} {pattern if pattern is not None else collapse(request.path or '/')}"


#: each Tornado handler class's URL pattern, once found (as many as the app has rules)
_tornado_patterns: dict[type, str] = {}


def _tornado_pattern(router: Any, cls: type, depth: int = 0) -> str | None:
    """The path pattern of the first rule of ``router`` (or of the routers it nests) whose
    target is ``cls``."""
    for rule in getattr(router, "rules", None) or ():
        target = getattr(rule, "target", None)
        if target is cls:
            regex = getattr(getattr(rule, "matcher", None), "regex", None)
            return regex.pattern.removesuffix("$") if regex is not None else None
        if depth < 4 and getattr(target, "rules", None) is not None:
            found = _tornado_pattern(target, cls, depth + 1)
            if found is not None:
                return found
    return None


def _django_route(path: str) -> str | None:
    try:
        from django.urls import resolve

        match = resolve(path)
    except Exception:  # a 404, or settings not configured: the raw path names it
        return None
    return "/" + str(match.route).lstrip("^") if match.route else None


def _named_match(ctx: Any) -> None:
    """Flask's ``RequestContext.match_request``, then the matched rule left in the environ
    (Flask drops the request object from it as the request ends): a Python call and a dict
    write per request, where a ``request_tearing_down`` receiver cost ~4 µs (blinker's dispatch
    and two context-local lookups)."""
    _flask_match[0](ctx)
    rule = ctx.request.url_rule
    if rule is not None:
        environ = ctx.request.environ
        environ[ENV_ROUTE] = rule.rule
        if _tracing:  # the view function, for an attribution window
            environ[ENV_HANDLER] = ctx.app.view_functions.get(rule.endpoint)


#: Flask's own ``RequestContext.match_request``, once :func:`_named_match` replaced it: never
#: dropped, as a request already inside ours when it is put back still calls it.
_flask_match: list[Callable[[Any], None]] = []
#: Whether some recorder of this process has an attribution window open.
_tracing: list[bool] = []


def hook_frameworks() -> None:
    """Install the hooks that name routes where the framework forgets them by the end of the
    request (Flask: its request context's ``match_request``). Undone by
    :func:`unhook_frameworks`."""
    flask_ctx = sys.modules.get("flask.ctx")
    context = getattr(flask_ctx, "RequestContext", None)
    own = vars(context).get("match_request") if context is not None else None
    if context is not None and callable(own) and own is not _named_match:
        if not _flask_match:
            _flask_match.append(own)
        context.match_request = _named_match


def unhook_frameworks() -> None:
    """Put back what :func:`hook_frameworks` replaced (unless someone replaced it since: theirs
    is left, and ours, calling Flask's, goes on harmlessly)."""
    flask_ctx = sys.modules.get("flask.ctx")
    context = getattr(flask_ctx, "RequestContext", None)
    if context is not None and _flask_match and vars(context).get("match_request") is _named_match:
        context.match_request = _flask_match[0]


def _cherrypy_handler() -> str | None:
    name = getattr(cherrypy_callable(), "__qualname__", None)
    return name if isinstance(name, str) else None


def _no_handler() -> None:
    return None


_mallinfo: list[Callable[[], int] | None] = []


def heap_bytes() -> int | None:
    """The bytes glibc's malloc has handed out (``mallinfo2().uordblks``), None where it cannot be
    read (not glibc, or older than 2.33). ctypes is loaded at the first call, not in every
    process the agent is armed in."""
    if not _mallinfo:
        _mallinfo.append(_load_mallinfo2())
    fn = _mallinfo[0]
    return None if fn is None else fn()


def _load_mallinfo2() -> Callable[[], int] | None:
    import ctypes

    class Mallinfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                     "fordblks", "keepcost")]

    try:
        fn = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = Mallinfo2
    return lambda: int(fn().uordblks)

#: what :meth:`Recorder.begin` hands to :meth:`Recorder.end`: the request's start number, its
#: start (perf_counter_ns), the blocks read at its start (-1: not read) and the route of the
#: request that ended before it began
Token = tuple[int, int, int, str]


class Recorder:
    """One process's windows (see the module's docstring); thread-safe."""

    def __init__(self, interval: float = INTERVAL_S, *, max_windows: int = MAX_WINDOWS,
                 max_routes: int = MAX_ROUTES, max_deltas: int = MAX_DELTAS, budget: float = BUDGET) -> None:
        self.interval = interval
        self.max_routes = max_routes
        self.max_deltas = max_deltas
        self.budget = budget
        self.pid = os.getpid()
        self.windows: deque[Window] = deque(maxlen=max_windows)
        #: closed windows lost because the parent did not ask for them in time
        self.dropped = 0
        self._lock = threading.Lock()
        self._in_flight = 0
        self._starts = 0
        #: the last request that ran alone and was sampled: route, blocks at its start, its number
        self._solo: tuple[str, int, int, str] | None = None
        #: the route of the request that ended last
        self._last_route = ""
        #: nanoseconds spent reading the blocks per request, and the requests' own
        self.spent_ns = 0
        self.busy_ns = 0
        #: the attribution window open now, and the findings of those closed since the last answer
        self.trace: TraceWindow | None = None
        self.traced: list[dict[str, Any]] = []
        #: the number of the request the window traces now (or traced last)
        self._sampled = -1
        #: requests up to this number give no alone delta (see :meth:`_settle`)
        self._quiet_through = 0
        #: set by the ASGI wrapper: the app's requests share an event loop
        self.asynchronous = False
        #: the requests recorded for the capture file (``watch --capture``), if asked
        self.capture: CaptureBuffer | None = None
        self._open(time.monotonic())

    def _open(self, now: float) -> None:
        self._start = now
        self._requests: dict[str, int] = {}
        self._deltas: dict[str, list[int]] = {}
        self._after: dict[str, list[str]] = {}
        self._threads: set[int] = set()
        self._max_in_flight = self._in_flight

    # -- per request (the app's threads) --------------------------------------------------------

    def begin(self) -> Token:
        """A request enters the app."""
        token, alone = self._begin()
        trace = self.trace
        if trace is not None:
            switches = trace.switches
            if trace.begin(token[0], alone):
                self._sampled = token[0]
            if trace.switches != switches:
                self._settle()
        return token

    def sampled(self, token: Token) -> bool:
        """Whether the request of ``token`` is the one the attribution window traces."""
        return self.trace is not None and token[0] == self._sampled

    def released(self, _body: object) -> None:
        """The server let go of a request (a weak reference's callback, as it drops the response
        body): the traced request waiting for that is read now, before the server reads the next
        one."""
        trace = self.trace
        if trace is None:
            return
        switches = trace.switches
        try:
            trace.flush(blocking=False)
        except Exception:  # noqa: BLE001 - inside a deallocation: never let it reach the server
            return
        if trace.switches != switches:
            self._settle()

    def _settle(self) -> None:
        """Tracing started or stopped: its collection emptied the free lists, which the next
        requests refill (a block each, +23 to +45 blocks a request over every route under
        gunicorn sync): their deltas are left out."""
        self._quiet_through = self._starts + QUIET_AFTER_TRACE

    def _begin(self) -> tuple[Token, bool]:
        t0 = time.perf_counter_ns()
        with self._lock:
            self._starts += 1
            number = self._starts
            if len(self._threads) < 2:
                self._threads.add(threading.get_ident())
            alone = self._in_flight == 0
            self._in_flight += 1
            if self._in_flight > self._max_in_flight:
                self._max_in_flight = self._in_flight
            before = self._last_route
            if not alone:
                return (number, t0, -1, before), False
            solo, self._solo = self._solo, None
            within = self.spent_ns < self.budget * self.busy_ns
            if solo is None and not within:
                return (number, t0, -1, before), True
            r0 = time.perf_counter_ns()
            blocks = sys.getallocatedblocks()
            self.spent_ns += time.perf_counter_ns() - r0
            if solo is not None and solo[2] == number - 1 and solo[2] > self._quiet_through \
                    and self.trace is None:
                deltas = self._deltas.setdefault(solo[0], [])
                if len(deltas) < self.max_deltas:
                    deltas.append(blocks - solo[1])
                    self._after.setdefault(solo[0], []).append(solo[3])
            return (number, t0, (blocks if within else -1), before), True

    def end(self, token: Token, route: str, handler: Callable[[], Any] | None = None,
            held: Callable[[], Any] | None = None) -> None:
        """The request's response is over; ``route`` names it, ``handler()`` its handler (asked
        during an attribution window only), ``held()`` is alive while the server still holds
        the request."""
        number, t0, blocks, before = token
        took = time.perf_counter_ns() - t0
        traced = number == self._sampled
        with self._lock:
            self._in_flight -= 1
            self.busy_ns += took
            requests = self._requests
            if route not in requests and len(requests) >= self.max_routes:
                route = OTHER
            requests[route] = requests.get(route, 0) + 1
            solo = number == self._starts
            if blocks >= 0 and solo and self._in_flight == 0 and not traced:
                # (a traced request's delta holds what tracing it kept: not the route's)
                self._solo = (route, blocks, number, before)
            self._last_route = route
            late = time.monotonic() - self._start >= 2 * self.interval
            idle = self._in_flight == 0
        trace = self.trace
        if trace is not None:
            switches = trace.switches
            trace.end(number, route, handler or _no_handler, solo, held)
            if trace.switches != switches:
                self._settle()
        if late:  # nobody asked for two intervals: the window closes here, cheaply
            self.close(heap=False)
        if trace is not None and idle:
            # between two requests: the window's scans see no request half done
            trace.screen()
            if trace.due():
                self.close_trace("due")

    # -- the attribution window -------------------------------------------------------------

    def open_trace(self, seconds: float, requests: int, frames: int, sample: int = SAMPLE,
                   share: float = SHARE, screen_s: float = SCREEN_S) -> None:
        """Open an attribution window (one request in ``sample`` traced, ``share`` of its time
        at most); RuntimeError when one is open or the process is traced by someone else."""
        if self.trace is not None:
            raise RuntimeError("an attribution window is open already")
        self.trace = TraceWindow(seconds, requests, frames, sample, share, screen_s)
        _tracing.append(True)

    def close_trace(self, why: str) -> None:
        """Close the attribution window, if open; its findings go with the next answer."""
        trace = self.trace
        if trace is None:
            return
        found = trace.close(why)
        if found is None:
            return
        self.trace = None
        if _tracing:
            _tracing.pop()
        with self._lock:
            self.traced.append(found)
            del self.traced[:-4]
            self._quiet_through = max(self._quiet_through, self._starts + QUIET_AFTER_WINDOW)

    # -- per window (the control thread) --------------------------------------------------------

    def close(self, heap: bool = True) -> None:
        """Close the open window (the heap read at its end) and open the next one. ``heap``
        False: the blocks only, no ``mallinfo2()`` (a request's thread closes it)."""
        with self._lock:
            now = time.monotonic()
            start, requests, deltas, after, peak, threads = (self._start, self._requests, self._deltas, self._after,
                                                             self._max_in_flight, max(1, len(self._threads)))
            self._open(now)
            # The control thread's own allocations would be counted in a pending sample.
            self._solo = None
        blocks = sys.getallocatedblocks()
        malloc = heap_bytes() if heap else None
        window = Window(self.pid, start, now, requests, blocks, malloc, max_in_flight=peak,
                        alone_deltas=deltas, alone_after=after, threads=threads, asynchronous=self.asynchronous)
        with self._lock:
            if len(self.windows) == self.windows.maxlen:
                self.dropped += 1
            self.windows.append(window)

    def take(self) -> list[Window]:
        """Close the open window and hand over every closed window since the last call."""
        self.close()
        with self._lock:
            out = list(self.windows)
            self.windows.clear()
        return out

    def answer(self) -> dict[str, Any]:
        """The control channel's answer to ``watch``: the windows since the last call, how many
        were lost meanwhile, and what the per-request readings cost so far."""
        if self.trace is not None:
            switches = self.trace.switches
            self.trace.flush()
            if self.trace.switches != switches:
                self._settle()
            self.trace.screen()
            if self.trace.due():
                self.close_trace("due")
        windows = self.take()
        dropped, self.dropped = self.dropped, 0
        with self._lock:
            traced, self.traced = self.traced, []
        return {"windows": [w.to_dict() for w in windows], "dropped": dropped,
                "reading_share": round(self.spent_ns / self.busy_ns, 5) if self.busy_ns else 0.0,
                "traced": traced, "tracing": self.trace is not None}


class Closing:
    """A WSGI response body whose ``close()`` (which every WSGI server calls once the body is
    sent) ends the request for the recorder; iterating it is the body's own iteration."""

    __slots__ = ("_body", "_recorder", "_token", "_environ", "_pending", "__weakref__")

    def __init__(self, body: Iterable[bytes], recorder: Recorder, token: Token, environ: dict[str, Any],
                 pending: tuple[CaptureBuffer, Pending] | None = None) -> None:
        self._body = body
        self._recorder = recorder
        self._token = token
        self._environ = environ
        #: the request being captured, if it is
        self._pending = pending

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        """Name the route (CherryPy's request is released by the body's close), close the body,
        end the request."""
        route = wsgi_route(self._environ)
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            recorder = self._recorder
            handler = partial(wsgi_handler, self._environ) if recorder.trace is not None else None
            # the server lets go of the request (and its environ) as it drops this body: only
            # the traced request waits for that (a weak reference a request cost the window's
            # other requests ~1 µs each, and its callback a lock)
            recorder.end(self._token, route, handler,
                         weakref.ref(self, recorder.released) if recorder.sampled(self._token) else None)
            if self._pending is not None:
                self._pending[0].finish_wsgi(self._pending[1], self._environ, route)


def start(loaded: Any, request: dict[str, Any]) -> dict[str, Any]:
    """The control channel's ``watch_start``: a recorder on ``loaded`` (the agent's process),
    unless its app's requests are not seen here (not wrapped: attached to a server memprobe
    does not know). A recorder already there goes on (its windows go to whoever asks first)."""
    if not getattr(loaded, "counting", False):
        return {"recording": False,
                "why": "this process's app was not wrapped (not a gunicorn or uvicorn worker, nor a "
                       "Tornado server): its requests cannot be seen"}
    if getattr(loaded, "watching", None) is not None:
        return {"recording": True, "already": True}
    loaded.watching = Recorder(float(request.get("interval") or INTERVAL_S),
                               max_windows=int(request.get("max_windows") or MAX_WINDOWS))
    loaded.watching.capture = capture_buffer(request.get("capture"))
    hook_frameworks()
    return {"recording": True}


def capture_buffer(spec: Any) -> CaptureBuffer | None:
    """The capture buffer ``watch_start``'s ``capture`` asks for (None: no capture): ``routes``
    (None: named later by ``capture_routes``), ``redact``, ``max_requests``, ``max_bytes``,
    ``max_body``, ``per_route``, ``t0`` (the parent's clock, so that the workers' ``t`` agree)."""
    if not isinstance(spec, dict):
        return None
    from memprobe.capture.record import MAX_BODY, MAX_BYTES, MAX_REQUESTS, CaptureBuffer

    routes = spec.get("routes")
    return CaptureBuffer(None if routes is None else [str(r) for r in routes],
                         redact=[str(n) for n in spec.get("redact") or ()],
                         max_requests=int(spec.get("max_requests") or MAX_REQUESTS),
                         max_bytes=int(spec.get("max_bytes") or MAX_BYTES),
                         max_body=int(spec.get("max_body") or MAX_BODY),
                         per_route=int(spec.get("per_route") or 0) or None,
                         t0=float(spec["t0"]) if spec.get("t0") else None)


def capture_routes(loaded: Any, request: dict[str, Any]) -> dict[str, Any]:
    """The control channel's ``capture_routes``: the routes to capture from now on."""
    recorder = getattr(loaded, "watching", None)
    capture = getattr(recorder, "capture", None)
    if capture is None:
        return {"capturing": False}
    capture.set_routes([str(r) for r in request.get("routes") or ()])
    return {"capturing": True, "routes": list(capture.routes)}


def take(loaded: Any, stop: bool = False) -> dict[str, Any]:
    """The control channel's ``watch`` (and ``watch_stop``, which also removes the recorder):
    the windows closed since the last call, the open one closed now."""
    recorder = getattr(loaded, "watching", None)
    if recorder is None:
        return {"recording": False, "windows": [], "dropped": 0}
    if stop:
        stop_recording(loaded)
    answer = {"recording": not stop, **recorder.answer()}
    if recorder.capture is not None:
        answer["captured"] = [r.to_dict() for r in recorder.capture.take()]
    return answer


def stop_recording(loaded: Any) -> None:
    """No more recording in this process: the attribution window closed, the recorder
    dropped, the framework hooks removed."""
    recorder = getattr(loaded, "watching", None)
    if recorder is not None:
        recorder.close_trace("watch stopped")
        loaded.watching = None
        unhook_frameworks()


def trace(loaded: Any, request: dict[str, Any]) -> dict[str, Any]:
    """The control channel's ``watch_trace``: open an attribution window of ``seconds`` and
    ``requests`` at most, ``frames`` deep, tracing one request in ``sample`` (its findings come
    with a later ``watch``)."""
    recorder = getattr(loaded, "watching", None)
    if recorder is None:
        return {"tracing": False, "why": "not recording"}
    try:
        recorder.open_trace(float(request.get("seconds") or SECONDS), int(request.get("requests") or REQUESTS),
                            int(request.get("frames") or FRAMES), int(request.get("sample") or SAMPLE),
                            float(request.get("share") or SHARE))
    except RuntimeError as err:
        return {"tracing": False, "why": str(err)}
    return {"tracing": True}
