"""``memprobe watch``'s attribution window, inside one worker: for a window bounded in seconds
and requests, one request in :data:`SAMPLE` is traced (tracemalloc on from its start to its
end, then off); what each traced request left alive, by route, by allocating line, and the
container that holds it.

Why sampled requests and not tracing all along: tracemalloc costs every allocation (a Flask
request 4-7x slower one frame deep, 12x :data:`FRAMES` deep, 17-28x sixteen, measured
in-process; -44 % of a 2-worker gunicorn's throughput with one worker traced throughout 16
frames deep), so a window traces one request in :data:`SAMPLE`, and only while the traced
requests have taken at most :data:`SHARE` of its time: the worker pays at most that share.
Under moderate load the sampling rate bounds it; at full load the share does, and it is kept
small because a traced request (3-4 ms where the others take 0.25) holds a saturated worker
while the others serve the shared queue alone: the requests behind it wait, and the server's
99th percentile rose +38 % with 10 % of the time traced, +15 % with 0.5 % (watch alone +6 %,
bench/watch_overhead.py). The parent opens a window only
when a route's retention is significant (or the server grows and no route is told apart yet),
in one worker at a time.

**What it reads.** A request is traced only when it starts with nothing else in flight, and
kept only when nothing else started before it ended (in a threaded or asynchronous worker,
one that overlapped is dropped and counted in ``overlapped``). It is read as soon as the
server lets go of it (a WSGI response body's weak reference calls back as the server drops
it; an ASGI request at its end; else at the next request's start or the control thread's next
collection), after a full collection of only the objects made since the window opened
(``gc.freeze()`` at the open sets the heap aside, ``gc.unfreeze()`` at the close puts it back;
not where the app froze objects itself, where the young generations are collected instead):
what the server held of it is freed by then, its garbage in cycles collected, the
interpreter's free lists emptied, and every trace alive was allocated by it and stayed. A trace is
charged to the request's route when the route's handler (the view function the framework
dispatched to: Flask's view, Django's view or class-based view, Bottle's callback, CherryPy's
handler, Starlette's endpoint, the Tornado handler's method) is on its stack, :data:`FRAMES` frames deep, else counted as
``unrouted`` (the framework's own). Per route the
window sends the sum and the sum of squares of each traced request's bytes, so the parent has
a mean and its standard error. The free lists are emptied at its start too (the same
collection), so a small dict, list or float it keeps is a new, traced
block, not one freed earlier and reused untraced. Where the app froze objects itself, neither
is done: a kept object reused from a free list is not seen (only what it holds), and a block
freed into one is. What it sees beyond a leak: a bounded cache's new entry while it evicts an
older, untraced one. The parent weighs all this against the heap's analysis, never alone.

**The holder.** The roots scan (:mod:`memprobe.agent.holders`, bounded at 40,000 containers)
runs at the open, after :data:`SCREEN_S` seconds of tracing nothing (the containers grown
meanwhile are followed: their entries counted at each traced request's start and end, which
tells which route's requests add to them, and each request that adds entries is charged the
container's storage per entry for them, amortized, rather than a reallocation it happened to
make), and at the close (the containers that grew, each with the routes that added
entries).

**What it costs.** Outside the traced requests nothing is traced. A traced request pays
tracemalloc and, at its end, a snapshot of its own survivors; the three scans run at idle
moments or in the control thread; all timed and reported (``timings_s``, ``traced_s``). The
window closes in the request thread at the first idle moment once it is due, else from the
control thread at the next collection. A process already traced by someone else
(``PYTHONTRACEMALLOC``, a hunt in progress) is left alone: the window is refused.
"""
from __future__ import annotations

import gc
import inspect
import linecache
import os
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import FunctionType, MethodType
from typing import Any

from memprobe.agent import holders
from memprobe.agent.attribution import group_sites

#: Frames kept per trace: deep enough to reach a view function from a leak a few calls below it
#: (16 cost a server at full load +36 % more at the 99th percentile than 8, bench/watch_overhead.py).
FRAMES = 8
#: The window's default bounds.
SECONDS = 60.0
REQUESTS = 20_000
#: One request in SAMPLE (of those that start with nothing else in flight) is traced...
SAMPLE = 200
#: ... while traced requests have taken at most this share of the window's time.
SHARE = 0.005
#: The window's first seconds (a quarter of it at most) trace nothing: a second roots scan then
#: tells which containers grow, and each traced request follows those (at most CANDIDATES).
SCREEN_S = 5.0
CANDIDATES = 8
#: Errors of a window's scans kept (the latest).
ERRORS_KEPT = 4
#: Distinct tracebacks of what a route kept, kept per window.
MAX_GROUPS = 2_000
#: tracemalloc's own tables may grow to this before the window closes early.
MAX_TRACE_MEMORY = 64 * 1024 * 1024
#: A route's sites: at most this many, each from this many bytes in the window.
SITES = 5
MIN_SITE_BYTES = 512

_HERE = os.path.dirname(os.path.abspath(__file__))
#: memprobe's own code: an allocation made in it (the recorder, the capture buffer, the control
#: thread) is not the app's. Only the most recent frames are looked at: the request wrapper
#: (inject.py) is on the stack of everything the app allocates, many frames older.
_MEMPROBE = os.path.dirname(_HERE) + os.sep
_OWN_DEPTH = 4
#: The servers' own packages: a block allocated right in one of them while the handler awaited
#: it is the connection's state, not the route's (uvicorn's ``receive()`` leaves a new
#: ``bytearray`` on the connection for its next request: 86 B a POST).
SERVERS = ("uvicorn", "gunicorn", "h11", "httptools", "hypercorn", "daphne", "waitress", "cheroot", "wsgiref")
_SERVER_DIRS = tuple(f"{os.sep}{name}{os.sep}" for name in SERVERS)
#: How long a traced request whose server still holds it (``held``) is waited for.
HELD_WAIT_S = 0.05

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


def tornado_handler(handler: Any) -> Any:
    """The method of a Tornado ``RequestHandler`` that served its request (``get``, ``post``...)."""
    method = getattr(getattr(handler, "request", None), "method", None) or "GET"
    return getattr(handler, method.lower(), None)


#: where the Flask hook leaves the view function, in the WSGI environ
ENV_HANDLER = "memprobe.handler"


@dataclass
class _Sample:
    """The request being traced: its number (the recorder's), its start, and the followed
    containers' entries and storage bytes at its start; once it ended, its route and how long
    it took."""

    number: int
    t0: float
    before: list[tuple[tuple[str, ...], Any, int, int]]
    route: str | None = None
    took: float = 0.0
    #: alive while the server still holds the request (its response body), once it ended
    held: Callable[[], Any] | None = None
    ended: float = 0.0
    #: being read (the snapshot, tracing off) or dropped: no other sample starts meanwhile
    taken: bool = False


@dataclass
class _Tally:
    """What a route's traced requests left, summed over the window's samples."""

    samples: int = 0
    kept: int = 0
    kept_sq: float = 0.0
    unrouted: int = 0
    unrouted_sq: float = 0.0
    count: int = 0
    #: per traceback of what the handler kept: [bytes, blocks]
    groups: dict[tracemalloc.Traceback, list[int]] = field(default_factory=dict)


class TraceWindow:
    """One attribution window (see the module's docstring); thread-safe. Raises RuntimeError
    when the process is traced by someone else."""

    def __init__(self, seconds: float = SECONDS, requests: int = REQUESTS, frames: int = FRAMES,
                 sample: int = SAMPLE, share: float = SHARE, screen_s: float = SCREEN_S) -> None:
        if tracemalloc.is_tracing():
            raise RuntimeError("tracemalloc is already on in this process (PYTHONTRACEMALLOC, or a hunt): "
                               "its traces are someone else's")
        self.seconds = seconds
        self.limit = requests
        self.frames = frames
        self.sample = max(1, sample)
        self.share = share
        self.pid = os.getpid()
        self.requests: dict[str, int] = {}
        self.handlers: dict[str, tuple[Range, ...]] = {}
        self.timings: dict[str, float] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._count = 0
        self._since = self.sample  # the first request that may be traced is
        self._sampling: _Sample | None = None
        self._traced_s = 0.0
        self._overlapped = 0
        #: times tracing started or stopped (the recorder leaves the next requests' deltas out)
        self.switches = 0
        #: what went wrong in the window's scans (the window goes on without them)
        self.errors: list[str] = []
        self._peak = 0
        self._own = 0
        self._tallies: dict[str, _Tally] = {}
        #: per followed container, how many entries each route's traced requests added
        self._entries: dict[tuple[str, ...], dict[str, int]] = {}
        #: the containers each sample follows (None: still screening)
        self._candidates: list[tuple[tuple[str, ...], Any]] | None = None
        self._screening = False
        t0 = time.perf_counter()
        self._roots = holders.scan_roots()
        self.timings["scan_before"] = round(time.perf_counter() - t0, 4)
        # The heap as it is now set aside for the window (``gc.freeze()``, a list splice): the
        # full collections that empty the free lists and read each traced request examine only
        # what was made since. Once per window, not per traced request: the collection that
        # reads one resets the collector's count of old objects to what it examined, and after an
        # unfreeze the next automatic collection was then a full one (9 ms on this app, one per
        # traced request: -20 % of a worker's throughput). Not where the app froze objects itself
        # (gunicorn's preload idiom): unfreezing would undo that.
        self._froze = gc.get_freeze_count() == 0
        if self._froze:
            gc.freeze()
        self.started = time.monotonic()
        self._screen_at = self.started + min(screen_s, seconds / 4)

    # -- per request (the app's threads) ------------------------------------------------------

    def begin(self, number: int, alone: bool) -> bool:
        """Request ``number`` starts (``alone``: nothing else in flight); whether it is traced.
        A traced request that ended and was not read yet is read first."""
        self.flush()
        with self._lock:
            if self._closed:
                return False
            self._since += 1
            if not alone or self._sampling is not None or self._candidates is None or self._since < self.sample:
                return False
            if self._traced_s > self.share * (time.monotonic() - self.started):
                return False
            self._since = 0
            before = []
            for chain, ref in self._candidates:
                n = holders.entries(ref)
                if n is not None:
                    before.append((chain, ref, n, _storage_bytes(ref)))
            if self._froze:
                gc.collect(2)  # it empties the free lists: what the request allocates is new, and traced
            self._sampling = _Sample(number, time.perf_counter(), before)
            tracemalloc.start(self.frames)
            self.switches += 1
            return True

    def end(self, number: int, route: str, handler: Callable[[], Any], solo: bool,
            held: Callable[[], Any] | None = None) -> None:
        """Request ``number`` of ``route`` ended; ``handler()`` names its handler (asked once per
        route); ``solo``: no other request started while it ran (a traced one is kept only so).
        ``held()``: alive while the server has not let go of the request yet (its request object
        and parsed form in the WSGI environ): the read waits for that (the recorder's callback
        as it dies, else the next request's start, up to :data:`HELD_WAIT_S` after this end);
        without ``held`` (ASGI) it is read now."""
        dropped = None
        with self._lock:
            if self._closed:
                return
            self.requests[route] = self.requests.get(route, 0) + 1
            self._count += 1
            known = bool(self.handlers.get(route))
            sample = self._sampling
            now = None
            if sample is not None and sample.number == number and not sample.taken:
                sample.route, sample.took, sample.held = route, time.perf_counter() - sample.t0, held
                sample.ended = time.monotonic()
                if not solo:
                    sample.taken, dropped = True, sample
                elif held is None:  # nothing of it left in the server's hands: read it now
                    sample.taken, now = True, sample
        if not known:
            # Not cached while not found: a request already past the framework's hook when the
            # window opened names no handler.
            ranges = code_ranges(handler())
            if ranges:
                with self._lock:
                    self.handlers[route] = ranges
        if dropped is not None:
            self._read(dropped, keep=False)
        if now is not None:
            self._read(now)

    def flush(self, blocking: bool = True) -> None:
        """Read the traced request that ended, if one waits (the server letting go of it, the
        next request's start, the control thread's collection, the close). Not ``blocking``:
        nothing is done when the window's lock is held (a weak reference's callback may run in
        a collection, or a deallocation, that started while this very thread held it)."""
        if not self._lock.acquire(blocking=blocking):
            return
        try:
            sample = self._sampling
            if sample is None or sample.route is None or sample.taken:
                return
            if sample.held is not None and sample.held() is not None \
                    and time.monotonic() - sample.ended < HELD_WAIT_S and not self._closed:
                return
            sample.taken = True
        finally:
            self._lock.release()
        self._read(sample)

    def _read(self, sample: _Sample, keep: bool = True) -> None:
        """A traced request that ended: what it left alive, charged to its route; tracing off."""
        t0 = time.perf_counter()
        try:
            if keep:
                # A full collection, of the objects made since the freeze only (0.03-0.07 ms
                # where the whole heap's took 9 ms): the request's garbage in cycles is freed,
                # and so are the interpreter's free lists, where a block the request allocated
                # and freed would still count as alive (a dict's keys table, 120 B a POST form).
                gc.collect(2 if self._froze else 1)
            snapshot = tracemalloc.take_snapshot() if keep else None
            peak, own = tracemalloc.get_traced_memory()[1], tracemalloc.get_tracemalloc_memory()
        except RuntimeError:  # not tracing: someone stopped it under us
            snapshot, peak, own = None, 0, 0
        finally:
            tracemalloc.stop()
            self.switches += 1
        route = sample.route or ""
        with self._lock:
            self._sampling = None
            self._traced_s += sample.took + time.perf_counter() - t0
            self._peak, self._own = max(self._peak, peak), max(self._own, own)
            if snapshot is None:
                self._overlapped += 1
                return
            ranges = self.handlers.get(route, ())
        storage = []
        shared = 0.0
        added: dict[tuple[str, ...], int] = {}
        for chain, ref, entries, size in sample.before:
            now = holders.entries(ref)
            whole = _storage_bytes(ref)
            if now is not None and now > entries:
                added[chain] = now - entries
                shared += (now - entries) * whole / now
            if whole > size:
                storage.append(whole)
        kept, unrouted, groups = _charge(snapshot.traces, _by_file({route: ranges}), storage)
        kept += round(shared)
        del snapshot
        with self._lock:
            tally = self._tallies.setdefault(route, _Tally())
            tally.samples += 1
            tally.kept += kept
            tally.kept_sq += kept * kept
            tally.unrouted += unrouted
            tally.unrouted_sq += unrouted * unrouted
            for traceback, (size, count) in groups.items():
                tally.count += count
                group = tally.groups.get(traceback)
                if group is None and len(tally.groups) >= MAX_GROUPS:
                    continue  # the route's bytes are counted; only its rarest lines are not kept
                group = tally.groups.setdefault(traceback, [0, 0])
                group[0] += size
                group[1] += count
            for chain, n in added.items():
                by_route = self._entries.setdefault(chain, {})
                by_route[route] = by_route.get(route, 0) + n

    # -- between requests ---------------------------------------------------------------------

    def screen(self) -> None:
        """Past the screening seconds (at an idle moment, or from the control thread): the
        containers grown since the open become those each traced request follows."""
        with self._lock:
            if self._closed or self._screening or self._candidates is not None or time.monotonic() < self._screen_at:
                return
            self._screening = True
        t0 = time.perf_counter()
        try:
            now = holders.scan_roots(keep=True)
            found = []
            for h in holders.grown(self._roots, now, max(1, self._count), limit=CANDIDATES):
                node = now.get(tuple(h["chain"]))
                if node is not None and node.ref is not None:
                    found.append((node.chain, node.ref))
            del now
        except Exception as err:  # noqa: BLE001 - a container changed under the scan (the control thread's)
            # Tried again at the next idle moment: left screening, the window would trace
            # nothing for the rest of its time, and the error would reach the request's thread.
            with self._lock:
                self._screening = False
                self.errors.append(f"screening: {type(err).__name__}: {err}"[:200])
                del self.errors[:-ERRORS_KEPT]
            return
        with self._lock:
            self._candidates = found
        self.timings["scan_screen"] = round(time.perf_counter() - t0, 4)

    @property
    def screened(self) -> bool:
        """Whether the containers to follow are known (traced requests start only then)."""
        return self._candidates is not None

    def due(self) -> bool:
        """Past its seconds or its requests, or tracemalloc's tables past their bound."""
        if self._closed:
            return False
        if self._count >= self.limit or time.monotonic() - self.started >= self.seconds:
            return True
        return self._sampling is not None and tracemalloc.get_tracemalloc_memory() > MAX_TRACE_MEMORY

    def close(self, why: str = "due") -> dict[str, Any] | None:
        """Tracing off, the closing roots scan; the window's findings as a JSON-ready dict (None
        when another thread closed it first)."""
        self.flush()
        with self._lock:
            if self._closed:
                return None
            self._closed = True
            if self._sampling is not None and not self._sampling.taken:
                tracemalloc.stop()  # the traced request in flight is not counted
                self._sampling = None
            requests = dict(self.requests)
            tallies = dict(self._tallies)
            entries = {chain: dict(by_route) for chain, by_route in self._entries.items()}
            self._candidates = []
        seconds = time.monotonic() - self.started
        t0 = time.perf_counter()
        try:
            grown = holders.grown(self._roots, holders.scan_roots(), max(1, sum(requests.values())))
        except Exception as err:  # noqa: BLE001 - as in screen(): the window's findings still go out
            grown = []
            self.errors.append(f"closing scan: {type(err).__name__}: {err}"[:200])
        for h in grown:
            added = entries.get(tuple(h["chain"]), {})
            # A container that holds what leaks only grows, so its traced requests' entries are
            # a part of its growth; more than all of it is a queue that comes and goes (the
            # event loop's ready deque: +1 entry in a traced request of every route).
            h["routes"] = added if sum(added.values()) <= h["entries"] - h["entries_before"] else {}
        self.timings["holders"] = round(time.perf_counter() - t0, 4)
        t0 = time.perf_counter()
        routes = []
        for route in sorted(set(requests) | set(tallies), key=lambda r: -tallies.get(r, _Tally()).kept):
            tally = tallies.get(route, _Tally())
            diffs = [([(f.filename, f.lineno) for f in tb], size, count) for tb, (size, count) in tally.groups.items()]
            sites = group_sites(diffs, max(tally.samples, 1), limit=SITES, min_bytes=MIN_SITE_BYTES)
            for site in sites:
                site.code = linecache.getline(site.file, site.line).strip()
            routes.append({"route": route, "requests": requests.get(route, 0), "samples": tally.samples,
                           "bytes": tally.kept, "bytes_sq": tally.kept_sq, "count": tally.count,
                           "unrouted": tally.unrouted, "unrouted_sq": tally.unrouted_sq,
                           "sites": [s.to_dict() for s in sites],
                           "holders": [h for h in grown if h["routes"].get(route, 0) > 0][:3]})
        self.timings["group"] = round(time.perf_counter() - t0, 4)
        if self._froze:
            gc.unfreeze()
        return {"pid": self.pid, "seconds": round(seconds, 3), "requests": requests, "frames": self.frames,
                "closed": why, "sample": self.sample, "share": self.share,
                "samples": sum(t.samples for t in tallies.values()), "overlapped": self._overlapped,
                "traced_s": round(self._traced_s, 4), "traced_peak": self._peak, "tracemalloc_memory": self._own,
                "routes": routes, "holders": grown, "timings_s": dict(self.timings), "errors": list(self.errors)}


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


def _storage_bytes(obj: Any) -> int:
    """A container's storage (its item array or hash table: one block, reallocated whole as it
    grows), 0 for one that has none of its own."""
    if not isinstance(obj, (list, dict, set)):
        return 0
    return max(0, sys.getsizeof(obj) - sys.getsizeof(type(obj)()))


def _charge(traces: Iterable[tracemalloc.Trace], by_file: dict[str, list[tuple[int, int, str]]],
            storage: list[int]) -> tuple[int, int, dict[tracemalloc.Traceback, list[int]]]:
    """One traced request's surviving traces: the bytes its handler's code allocated (those on
    whose stack it is), the bytes allocated with no handler on the stack, and the former by
    traceback. ``storage``: the new storage sizes of the followed containers that reallocated
    theirs during the request - left out here: the block holds the entries of every earlier
    request too (a list of 1,100 entries otherwise added 60 B to each of 150 requests' 100),
    and its growth, charged whole to the request that happened to make it, swung one traced
    request by 12 KiB (a dict's table doubling). The caller charges instead each request its
    share of the storage, per entry it added (amortized, as the table's growth is)."""
    storage = list(storage)
    kept = unrouted = 0
    groups: dict[tracemalloc.Traceback, list[int]] = {}
    for trace in traces:
        size = trace.size
        found = next((i for i, whole in enumerate(storage) if whole * 0.85 <= size <= whole * 1.15 + 64), None)
        if found is not None:
            storage.pop(found)
            continue
        frames = [(f.filename, f.lineno) for f in trace.traceback]  # oldest first
        if any(f[0].startswith(_MEMPROBE) or f[0] == tracemalloc.__file__ for f in frames[-_OWN_DEPTH:]):
            continue
        if _route_of(reversed(frames), by_file) is None or any(d in frames[-1][0] for d in _SERVER_DIRS):
            unrouted += size
            continue
        kept += size
        group = groups.setdefault(trace.traceback, [0, 0])
        group[0] += size
        group[1] += 1
    return kept, unrouted, groups
