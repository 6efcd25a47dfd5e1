"""``memprobe watch``'s attribution window, inside one worker: tracemalloc on for a window
bounded in seconds and requests, then off; what the window's requests left behind, by route,
by allocating line, and the container that holds it.

Why a window and not tracing all along: tracemalloc costs every allocation (-60 % throughput on
bench/apps/watch_shop.py, one frame deep); a window in one worker at a time costs that worker
only while it lasts, and the parent opens one only when a route's retention is significant (or
the server grows and no route is told apart yet).

**What it reads.** Every trace alive when the window closes was allocated during it, so the
snapshot at the close is exactly what the window's requests (and the worker's other threads)
allocated and did not free: what leaks, but also what is still in flight, garbage in cycles not
yet collected and caches filling; the parent weighs windows against each other and against the
heap's regression, never one alone. A trace is charged to the route whose handler (the view
function the framework dispatched to: Flask's view, Django's view or class-based view, Bottle's
callback, CherryPy's handler, Starlette's endpoint) is on its stack, :data:`FRAMES` frames deep;
a trace with no handler on its stack (the framework's own per-request objects, or a handler
deeper than the frames kept) is charged to none. The holder: the roots scan
(:mod:`memprobe.agent.holders`, bounded at 40,000 containers) before and after the window names
the containers that grew, and the newest entries of each are looked up in tracemalloc
(``get_object_traceback``) to tell which route's requests put them there.

**What it costs.** Outside the window nothing is traced. At the open, one roots scan; at the
close, a snapshot of the window's surviving traces, a roots scan and the grouping, timed and
reported (``timings_s``). The window closes in the request thread at the first idle moment once
it is due (nothing else in flight: a sync worker between two requests), else from the control
thread at the next collection; it closes early if tracemalloc's own tables pass
:data:`MAX_TRACE_MEMORY`. A process already traced by someone else (``PYTHONTRACEMALLOC``, a
hunt in progress) is left alone: the window is refused.
"""
from __future__ import annotations

import inspect
import linecache
import os
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterable
from types import FunctionType, MethodType
from typing import Any

from memprobe.agent import holders
from memprobe.agent.attribution import group_sites

#: Frames kept per trace: deep enough to reach a view function from a leak a few calls below it.
FRAMES = 16
#: The window's default bounds.
SECONDS = 20.0
REQUESTS = 5_000
#: tracemalloc's own tables may grow to this before the window closes early.
MAX_TRACE_MEMORY = 64 * 1024 * 1024
#: Entries of a grown container looked up for the route that made them.
SAMPLED_ENTRIES = 32
#: A route's sites: at most this many, each from this many bytes in the window.
SITES = 5
MIN_SITE_BYTES = 512
#: What a trace is charged to when no handler is on its stack.
NO_ROUTE = "(no route's handler on the stack)"

_HERE = os.path.dirname(os.path.abspath(__file__))
#: memprobe's own code: an allocation made in it (the recorder, the capture buffer, the control
#: thread) is not the app's. Only the most recent frames are looked at: the request wrapper
#: (inject.py) is on the stack of everything the app allocates, many frames older.
_MEMPROBE = os.path.dirname(_HERE) + os.sep
_OWN_DEPTH = 4

#: (file, first line, last line) of one function's code
Range = tuple[str, int, int]


def code_ranges(handler: Any) -> tuple[Range, ...]:
    """The lines of a handler's code: a function (its decorators' ``__wrapped__`` followed), a
    bound method, or a class-based view (``view_class``: Django, Flask's MethodView) whose
    methods are all its code. Empty when it is none of these."""
    if handler is None:
        return ()
    view_class = getattr(handler, "view_class", None)
    if isinstance(view_class, type):
        return tuple(r for v in vars(view_class).values() if isinstance(v, FunctionType)
                     for r in code_ranges(v))
    try:
        fn = inspect.unwrap(handler)
    except ValueError:  # a __wrapped__ cycle
        fn = handler
    if isinstance(fn, MethodType):
        fn = fn.__func__
    code = getattr(fn, "__code__", None)
    if code is None:
        call = vars(type(fn)).get("__call__")  # a callable object's own code, not object's
        code = getattr(call, "__code__", None) if isinstance(call, FunctionType) else None
    if code is None:
        return ()
    lines = [line for _, _, line in code.co_lines() if line is not None]
    return ((code.co_filename, code.co_firstlineno, max(lines, default=code.co_firstlineno)),)


def wsgi_handler(environ: dict[str, Any]) -> Any:
    """The handler a WSGI framework dispatched the request to, where it can be told."""
    found = environ.get(ENV_HANDLER)
    if found is not None:
        return found
    route = environ.get("bottle.route")
    if route is not None:
        return getattr(route, "callback", None)
    if "django.urls" in sys.modules:
        try:
            from django.urls import resolve

            return resolve(environ.get("PATH_INFO") or "/").func
        except Exception:  # a 404, or settings not configured
            return None
    if "cherrypy" in sys.modules:
        return cherrypy_callable()
    return None


def cherrypy_callable() -> Any:
    """The callable CherryPy dispatched the request being served to (None outside one)."""
    serving = getattr(sys.modules["cherrypy"], "serving", None)
    handler = getattr(getattr(serving, "request", None), "handler", None)
    return getattr(handler, "callable", None)


def asgi_handler(scope: dict[str, Any]) -> Any:
    """The endpoint Starlette or FastAPI dispatched the request to."""
    return scope.get("endpoint")


#: where the Flask hook leaves the view function, in the WSGI environ
ENV_HANDLER = "memprobe.handler"


class TraceWindow:
    """One attribution window (see the module's docstring); thread-safe. Raises RuntimeError
    when the process is traced by someone else."""

    def __init__(self, seconds: float = SECONDS, requests: int = REQUESTS, frames: int = FRAMES) -> None:
        if tracemalloc.is_tracing():
            raise RuntimeError("tracemalloc is already on in this process (PYTHONTRACEMALLOC, or a hunt): "
                               "its traces are someone else's")
        self.seconds = seconds
        self.limit = requests
        self.frames = frames
        self.pid = os.getpid()
        self.requests: dict[str, int] = {}
        self.handlers: dict[str, tuple[Range, ...]] = {}
        self.timings: dict[str, float] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._count = 0
        t0 = time.perf_counter()
        self._roots = holders.scan_roots()
        self.timings["scan_before"] = round(time.perf_counter() - t0, 4)
        self.started = time.monotonic()
        tracemalloc.start(frames)

    def note(self, route: str, handler: Callable[[], Any]) -> None:
        """A request of ``route`` ended inside the window; ``handler()`` names its handler (asked
        once per route)."""
        with self._lock:
            if self._closed:
                return
            self.requests[route] = self.requests.get(route, 0) + 1
            self._count += 1
            known = bool(self.handlers.get(route))
        if not known:
            # Not cached while not found: a request already past the framework's hook when the
            # window opened names no handler (gthread: a whole window's POSTs charged to none).
            ranges = code_ranges(handler())
            if ranges:
                with self._lock:
                    self.handlers[route] = ranges

    def due(self) -> bool:
        """Past its seconds or its requests, or tracemalloc's tables past their bound."""
        if self._closed:
            return False
        if self._count >= self.limit or time.monotonic() - self.started >= self.seconds:
            return True
        return self._count % 100 == 0 and tracemalloc.get_tracemalloc_memory() > MAX_TRACE_MEMORY

    def close(self, why: str = "due") -> dict[str, Any] | None:
        """Snapshot, roots scan, tracing off; the window's findings as a JSON-ready dict (None
        when another thread closed it first)."""
        with self._lock:
            if self._closed:
                return None
            self._closed = True
            requests = dict(self.requests)
            handlers = dict(self.handlers)
        seconds = time.monotonic() - self.started
        try:
            t0 = time.perf_counter()
            snapshot = tracemalloc.take_snapshot()
            peak = tracemalloc.get_traced_memory()[1]
            own = tracemalloc.get_tracemalloc_memory()
            self.timings["snapshot"] = round(time.perf_counter() - t0, 4)
            t0 = time.perf_counter()
            after = holders.scan_roots(keep=True)
            grown = holders.grown(self._roots, after, max(1, sum(requests.values())))
            by_file = _by_file(handlers)
            storage = []
            for h in grown:
                node = after.get(tuple(h["chain"]))
                h["routes"] = _entries_routes(node, by_file)
                storage += _storage(node, h["entries"] - h["entries_before"])
            del after
            self.timings["holders"] = round(time.perf_counter() - t0, 4)
        finally:
            tracemalloc.stop()
        t0 = time.perf_counter()
        routes = _charge(snapshot.traces, by_file, requests, storage)
        del snapshot
        for r in routes:
            r["holders"] = [h for h in grown if h["routes"].get(r["route"], 0) > 0][:3]
        self.timings["group"] = round(time.perf_counter() - t0, 4)
        return {"pid": self.pid, "seconds": round(seconds, 3), "requests": requests, "frames": self.frames,
                "closed": why, "traced_peak": peak, "tracemalloc_memory": own, "routes": routes,
                "holders": grown, "timings_s": dict(self.timings)}


def _by_file(handlers: dict[str, tuple[Range, ...]]) -> dict[str, list[tuple[int, int, str]]]:
    out: dict[str, list[tuple[int, int, str]]] = {}
    for route, ranges in handlers.items():
        for file, first, last in ranges:
            out.setdefault(file, []).append((first, last, route))
    return out


def _route_of(frames: Iterable[tuple[str, int]], by_file: dict[str, list[tuple[int, int, str]]]) -> str | None:
    """The route whose handler is the most recent of ``frames`` (most recent first) on a stack."""
    for file, line in frames:
        for first, last, route in by_file.get(file, ()):
            if first <= line <= last:
                return route
    return None


def _entries_routes(node: holders.Node | None, by_file: dict[str, list[tuple[int, int, str]]]) -> dict[str, int]:
    """Of a grown container's newest entries, how many each route's requests made."""
    obj = node.ref if node is not None else None
    if obj is None:
        return {}
    if isinstance(obj, dict):
        newest: list[Any] = []
        for key in reversed(obj):
            newest += [obj[key], key]
            if len(newest) >= 2 * SAMPLED_ENTRIES:
                break
    elif isinstance(obj, (list, tuple)) or hasattr(obj, "__reversed__"):
        try:
            newest = list(obj[-SAMPLED_ENTRIES:]) if isinstance(obj, list) else list(reversed(obj))[:SAMPLED_ENTRIES]
        except TypeError:
            newest = []
    else:
        try:
            newest = list(obj)[:SAMPLED_ENTRIES]
        except TypeError:
            newest = []
    counts: dict[str, int] = {}
    for entry in newest:
        tb = tracemalloc.get_object_traceback(entry)
        if tb is None:
            continue
        route = _route_of(((f.filename, f.lineno) for f in reversed(tb)), by_file)
        if route is not None:
            counts[route] = counts.get(route, 0) + 1
    return counts


def _storage(node: holders.Node | None, added: int) -> list[tuple[int, int]]:
    """A grown container's storage (its item array or hash table: one block, reallocated
    whole as it grows) and the part of it its ``added`` entries take."""
    obj = node.ref if node is not None else None
    if not isinstance(obj, (list, dict, set)) or not obj or added <= 0:
        return []
    size = sys.getsizeof(obj) - sys.getsizeof(type(obj)())
    return [(size, int(size * min(1.0, added / len(obj))))] if size > 0 else []


def _charge(traces: Iterable[tracemalloc.Trace], by_file: dict[str, list[tuple[int, int, str]]],
            requests: dict[str, int], storage: list[tuple[int, int]] | None = None) -> list[dict[str, Any]]:
    """The window's surviving traces charged to routes, with each route's sites. ``storage``:
    the grown containers' (size, share of the window's entries) - a container that grows
    reallocates its whole item array, so the block allocated during the window holds the
    entries of every earlier request too: only the window's share of it is charged (a list
    of 1,100 entries otherwise added 60 B to each of 150 requests' 100)."""
    # Trace by trace, not tracemalloc's statistics: a container's storage shares its traceback
    # with the entries appended on the same line, and must be told apart from them.
    storage = list(storage or ())
    groups: dict[tracemalloc.Traceback, list[int]] = {}
    for trace in traces:
        size = trace.size
        found = next((i for i, (whole, _) in enumerate(storage) if whole * 0.85 <= size <= whole * 1.15 + 64), None)
        if found is not None:
            size = storage.pop(found)[1]
        group = groups.setdefault(trace.traceback, [0, 0])
        group[0] += size
        group[1] += 1
    diffs: dict[str, list[tuple[list[tuple[str, int]], int, int]]] = {}
    totals: dict[str, list[int]] = {}
    for traceback, (size, count) in groups.items():
        frames = [(f.filename, f.lineno) for f in traceback]  # oldest first
        if any(f[0].startswith(_MEMPROBE) or f[0] == tracemalloc.__file__ for f in frames[-_OWN_DEPTH:]):
            continue
        route = _route_of(reversed(frames), by_file) or NO_ROUTE
        diffs.setdefault(route, []).append((frames, size, count))
        total = totals.setdefault(route, [0, 0])
        total[0] += size
        total[1] += count
    out = []
    for route in sorted(set(requests) | set(totals), key=lambda r: -totals.get(r, [0])[0]):
        n = requests.get(route, 0)
        size, count = totals.get(route, [0, 0])
        sites = group_sites(diffs.get(route, []), max(n, 1), limit=SITES, min_bytes=MIN_SITE_BYTES)
        for site in sites:
            site.code = linecache.getline(site.file, site.line).strip()
        out.append({"route": route, "requests": n, "bytes": size, "count": count,
                    "sites": [s.to_dict() for s in sites]})
    return out
