"""Inside the measured process: which lines of a route's view grow RSS (a native leak's line).

tracemalloc cannot see memory that C code allocates, so a ``native`` verdict has no site from
the snapshot diff. Here the route's view function (Flask: ``app.view_functions[endpoint]``
through the url_map adapter; Bottle: the route's callback; a plain WSGI callable of the user's:
itself), and the user's functions it calls, run under memory_profiler's line profiler while the
app is called in this thread, ``calls`` times, with the route's environ, once the route's RSS
grows as its USS did (:func:`_fill`: free memory the arenas keep resident takes a leak's blocks
without a page of RSS). Each line's RSS increment is summed over the calls.

memory_profiler's own per-line increments are measured against the previous traced line,
whichever function it was in: the line after a call into another profiled function is charged
with the whole RSS. :class:`_LineRss` keeps its tracing and its code map, and measures each line
against the RSS at its own start, less what profiled functions it called grew (so the lines add
up, each byte counted once).
"""
from __future__ import annotations

import inspect
import io
import linecache
import math
import os
import sys
import threading
import time
from types import CodeType, FrameType
from typing import Any, Callable

from memprobe.agent import allocator
from memprobe.target.usercode import is_user_file

__all__ = ["find_view", "rss_lines", "INSTALL"]

INSTALL = "pip install 'memory-profiler>=0.61'"
#: a native leak's line is measured over at least this much growth (RSS moves in 4 KiB pages)
_TARGET_GROWTH = 2 * 1024 * 1024
_MAX_CALLS = 4000
#: before the profiled calls: batches of this much growth, at most _FILL_BYTES in all
_BATCH_BYTES = 512 * 1024
_FILL_BYTES = 16 * 1024 * 1024
_MAX_FILL_CALLS = 20000
_PAGE = 4096
#: Seconds the profiled calls, and the unprofiled ones that fill the arenas first, may take
#: each: memory_profiler reads RSS at every line, and a view whose loop runs 50,000 times took
#: minutes for its 300 calls. At least _MIN_CALLS are profiled whatever they take.
BUDGET_S = 10.0
_MIN_CALLS = 3


def find_view(app: Any, kind: str | None, route: str) -> tuple[Callable[..., Any] | None, str]:
    """The user's function ``route`` dispatches to, and where it was found (``flask``...);
    None and the reason when it cannot be found."""
    path = route.split("?", 1)[0]
    url_map, views = getattr(app, "url_map", None), getattr(app, "view_functions", None)
    if url_map is not None and isinstance(views, dict):  # Flask
        try:
            endpoint, _args = url_map.bind("localhost").match(path, method="GET")
        except Exception as err:  # werkzeug's NotFound, MethodNotAllowed, RequestRedirect
            return None, f"Flask's url_map does not match GET {path} ({type(err).__name__})"
        view = views.get(endpoint)
        return (inspect.unwrap(view), "flask") if view else (None, f"no view for endpoint {endpoint!r}")
    if callable(getattr(app, "match", None)) and hasattr(app, "router"):  # Bottle
        try:
            found, _args = app.match(_environ(route))
        except Exception as err:  # bottle's HTTPError 404/405
            return None, f"Bottle's router does not match GET {path} ({type(err).__name__})"
        undecorated = getattr(found, "get_undecorated_callback", None)
        return (undecorated() if undecorated else found.callback), "bottle"
    if kind == "wsgi":
        func = app if inspect.isfunction(app) else vars(type(app)).get("__call__")
        if inspect.isfunction(func) and is_user_file(func.__code__.co_filename):
            return func, "wsgi"
    owner = type(app).__module__.split(".")[0] if app is not None else "unknown"
    return None, (f"memprobe finds a route's view in Flask, Bottle and plain WSGI apps, not in "
                  f"{'an ASGI app' if kind == 'asgi' else owner}")


def rss_lines(app: Any, kind: str | None, route: str, requests: int, uss_per_request: float,
              first: int = 0) -> dict[str, Any]:
    """The lines of ``route``'s view (and the user's functions it calls) whose RSS grew, over
    enough calls to grow ``_TARGET_GROWTH`` at ``uss_per_request`` (at least ``requests``, and
    as many of them as fit in :data:`BUDGET_S`):
    ``{"lines": [...], "calls": n, "view": "file:line function"}``, or ``{"note": ...}`` when the
    view cannot be found or memory_profiler is missing."""
    try:
        from memory_profiler import LineProfiler
    except ImportError:
        return {"note": "the native leak's line was not looked for: memory_profiler is not "
                        f"installed where the app runs ({INSTALL})"}
    if kind not in ("wsgi", None) or app is None:
        return {"note": "the native leak's line was not looked for: the route's view function "
                        "can be run by memprobe in a WSGI app only"}
    view, how = find_view(app, kind, route)
    if view is None:
        return {"note": f"the native leak's line was not looked for: the route's view function "
                        f"was not found ({how})"}
    calls = requests
    if uss_per_request > 0:
        calls = max(requests, math.ceil(_TARGET_GROWTH / uss_per_request))
    calls = min(calls, _MAX_CALLS)
    codes = _called_codes(app, route, first, view.__code__)

    class _LineRss(LineProfiler):
        """memory_profiler's line profiler, each line measured against its own start."""

        def __init__(self) -> None:
            super().__init__(backend="psutil")
            #: per profiled frame: [code, line, RSS at the line's start, growth of calls in it,
            #: RSS at the frame's call]
            self.stack: list[list[Any]] = []
            #: (file, line) -> [bytes, hits]
            self.totals: dict[tuple[str, int], list[int]] = {}

        def _close(self, entry: list[Any], rss: int) -> None:
            code, line, start, nested, _ = entry
            if line is not None:
                total = self.totals.setdefault((code.co_filename, line), [0, 0])
                total[0] += rss - start - nested
                total[1] += 1

        def trace_memory_usage(self, frame: FrameType, event: str, arg: Any) -> Any:
            code = frame.f_code
            if code in self.code_map and event in ("call", "line", "return"):
                rss = _rss()
                if event == "call":
                    self.stack.append([code, None, rss, 0, rss])
                elif self.stack and self.stack[-1][0] is code:
                    top = self.stack[-1]
                    self._close(top, rss)
                    if event == "line":
                        top[1], top[2], top[3] = frame.f_lineno, rss, 0
                    else:
                        self.stack.pop()
                        if self.stack:
                            self.stack[-1][3] += rss - top[4]
            if self._original_trace_function is not None:
                self._original_trace_function(frame, event, arg)
            return self.trace_memory_usage

    profiler = _LineRss()
    for code in codes:
        profiler.code_map.add(code)
    done: dict[str, Any] = {}

    def run() -> None:
        try:
            done["filled"] = _fill(app, route, first + 1, uss_per_request)
            deadline = time.monotonic() + BUDGET_S
            profiler.enable_by_count()
            try:
                for i in range(calls):
                    if i >= _MIN_CALLS and time.monotonic() > deadline:
                        break
                    _call(app, route, first + 1 + done["filled"] + i)
                    done["calls"] = i + 1
            finally:
                profiler.disable_by_count()
        except BaseException as err:  # raised again in the agent's thread
            done["error"] = err

    # A thread of its own: the agent's has malloc'd and freed megabytes in its arena (the scans),
    # which would take a leak's blocks without a page of RSS; a new thread gets a new arena
    # while glibc has fewer than 8 per core.
    thread = threading.Thread(target=run, name="memprobe-rss-lines")
    thread.start()
    thread.join()
    if "error" in done:
        raise done["error"]
    filled = int(done["filled"])
    calls = int(done.get("calls", 0)) or 1
    grown = sorted(((k, v) for k, v in profiler.totals.items() if v[0] >= _PAGE),
                   key=lambda kv: -kv[1][0])
    lines = []
    for (file, line), (size, hits) in grown[:5]:
        lines.append({"file": file, "line": line, "code": linecache.getline(file, line).strip(),
                      "bytes_per_request": round(size / calls, 2), "rss_bytes": size,
                      "hits": hits, "calls": calls, "source": "rss"})
    code = view.__code__
    return {"lines": lines, "calls": calls, "framework": how, "filled": filled,
            "view": f"{code.co_filename}:{code.co_firstlineno} {view.__qualname__}"}


def _fill(app: Any, route: str, first: int, per_request: float) -> int:
    """Call the route, unprofiled, until its RSS grows as fast as USS did (the number of calls).

    Free memory the arenas keep resident (the agent's scans freed megabytes in this thread's
    arena, and ``malloc_trim(0)`` does not trim a thread arena's top) takes a leak's blocks
    without a page of RSS; so does the kernel's RSS counter, exact only to ~32 pages per CPU.
    The leak goes on meanwhile: at most ``_FILL_BYTES`` more of it."""
    allocator.trim()
    if per_request <= 0:
        return 0
    batch = max(1, math.ceil(_BATCH_BYTES / per_request))
    done = 0
    deadline = time.monotonic() + BUDGET_S
    while done * per_request < _FILL_BYTES and done < _MAX_FILL_CALLS and time.monotonic() < deadline:
        before = _rss()
        for i in range(batch):
            _call(app, route, first + done + i)
        done += batch
        if _rss() - before >= 0.8 * batch * per_request:
            break
    return done


def _rss() -> int:
    """This process's RSS in bytes (what memory_profiler's psutil backend reads), from
    /proc/self/statm: a line event must cost little."""
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE


def _called_codes(app: Any, route: str, n: int, view: CodeType) -> list[CodeType]:
    """The view's code and every user function's it calls, over one call of the route."""
    found: dict[CodeType, None] = {view: None}
    depth = 0

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        nonlocal depth
        code = frame.f_code
        if event == "call":
            if code is view:
                depth += 1
            elif depth and is_user_file(code.co_filename) and os.path.exists(code.co_filename):
                found[code] = None
        elif event == "return" and code is view:
            depth -= 1

    old = sys.getprofile()
    sys.setprofile(profile)
    try:
        _call(app, route, n)
    finally:
        sys.setprofile(old)
    return list(found)


def _environ(route: str, n: int = 0) -> dict[str, Any]:
    """A GET of ``route`` (``{n}`` replaced by ``n``) as a WSGI environ."""
    from wsgiref.util import setup_testing_defaults

    path, _, query = route.replace("{n}", str(n)).partition("?")
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query,
                               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
                               "HTTP_HOST": "127.0.0.1", "wsgi.input": io.BytesIO(b""),
                               "wsgi.errors": io.StringIO()}
    setup_testing_defaults(environ)
    return environ


def _call(app: Any, route: str, n: int) -> None:
    """One request of ``route`` through the whole app, its body read and closed."""
    body = app(_environ(route, n), lambda status, headers, exc_info=None: (lambda data: None))
    try:
        for _chunk in body:
            pass
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
