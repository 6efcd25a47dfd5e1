"""Recording requests inside the process that serves them, for the capture file.

A :class:`CaptureBuffer` hangs on the watch recorder (``Recorder.capture``); the request
wrappers (:class:`memprobe.agent.inject.CountingWSGI`, ``CountingASGI``, the WSGI body
:class:`memprobe.agent.watching.Closing`) drive it:

1. :meth:`CaptureBuffer.wants` ``(None, method)`` as the request enters: a few comparisons,
   False once the buffer is full, every route asked for is at its cap, no route is asked for, or
   no route asked for has the request's method; the request then runs untouched;
2. otherwise :meth:`CaptureBuffer.wsgi` (or :meth:`CaptureBuffer.asgi`) tees what the app reads:
   ``wsgi.input`` is wrapped so that each ``read``/``readline``/iteration the app makes is kept,
   up to the body limit (the tee never reads a byte the app did not ask for, and hands back exactly
   what it read); ASGI ``receive`` messages' bodies likewise; the status is caught from
   ``start_response`` or the ``http.response.start`` message;
3. :meth:`CaptureBuffer.finish_wsgi` (``finish_asgi``) once the route is known (the app has
   run): only if ``wants(route)`` is the record kept, as it came;
4. :meth:`CaptureBuffer.take`, on the control thread when the parent collects: the records
   redacted (:mod:`memprobe.capture.redact`) and handed over. Nothing leaves the process in
   clear, and the request a record was made of never waits for its redaction.

A body the app did not read to its ``Content-Length`` (or past the limit) is kept as
``body_truncated``: replay refuses such a request rather than send half a body.

Headers kept (lower case): ``content-type``, ``content-encoding``, ``accept``,
``accept-language``, ``x-requested-with``, the default redacted ones (``authorization``,
``cookie``, ``proxy-authorization``: kept, as placeholders, so that replay sends a value of the
same shape where the app needs one), every name the user redacts, and those in
``keep_headers``. ``host``, ``content-length`` and the connection's headers are not kept: the
replaying client sets them.

Routes: ``routes`` is a set of ``METHOD route`` names as the framework names them
(``POST /orders``), a bare route (``/orders``) for any method, ``*`` for every route, or None
while no route is chosen yet (nothing is recorded until :meth:`CaptureBuffer.set_routes`).

Bounds, over the buffer's life (a full buffer costs one comparison per request from then on):
``max_requests`` records, ``max_bytes`` of bodies, targets and headers, ``max_body`` bytes of each
body, and ``per_route`` records of any one route (one busy route cannot fill it).
:meth:`CaptureBuffer.take` hands over the records kept since the last call (to the parent that
writes the file). :class:`CaptureStore` is the writer's side: the records of several processes,
bounded the same way, written atomically.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from memprobe.capture.format import CapturedRequest, CaptureHeader, read_capture, write_capture
from memprobe.capture.redact import Redactor
from memprobe.errors import UsageError

__all__ = ["ALL_ROUTES", "KEPT_HEADERS", "CaptureBuffer", "CaptureStore", "Pending", "limits_of"]

#: The route filter that takes every route.
ALL_ROUTES = "*"
#: Headers kept besides the redacted ones and ``keep_headers``.
KEPT_HEADERS = ("content-type", "content-encoding", "accept", "accept-language", "x-requested-with",
                "authorization", "cookie", "proxy-authorization")
#: Defaults of the bounds.
MAX_REQUESTS = 2_000
MAX_BYTES = 8 << 20
MAX_BODY = 64 << 10


def limits_of(max_requests: int, max_bytes: int, max_body: int) -> dict[str, int]:
    """The capture file header's ``limits``."""
    return {"requests": max_requests, "bytes": max_bytes, "body": max_body}


class Pending:
    """One request being teed: the body the app read so far, whether it was cut, its status."""

    __slots__ = ("chunks", "size", "cut", "status", "t", "_limit")

    def __init__(self, limit: int, t: float) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.cut = False
        self.status: int | None = None
        self.t = t
        self._limit = limit

    def keep(self, data: bytes) -> None:
        """The app read ``data``: keep what fits under the body limit."""
        if not data:
            return
        room = self._limit - self.size
        if room <= 0:
            self.cut = True
            return
        if len(data) > room:
            data, self.cut = data[:room], True
        self.chunks.append(bytes(data))
        self.size += len(data)

    def body(self) -> bytes:
        """What was kept."""
        return b"".join(self.chunks)


class _TeeInput:
    """``wsgi.input`` as the app sees it, each read also kept by ``pending``."""

    def __init__(self, stream: Any, pending: Pending) -> None:
        self._stream = stream
        self._pending = pending

    def read(self, *args: Any) -> bytes:
        data: bytes = self._stream.read(*args)
        self._pending.keep(data)
        return data

    def readline(self, *args: Any) -> bytes:
        data: bytes = self._stream.readline(*args)
        self._pending.keep(data)
        return data

    def readlines(self, *args: Any) -> list[bytes]:
        lines: list[bytes] = self._stream.readlines(*args)
        for line in lines:
            self._pending.keep(line)
        return lines

    def __iter__(self) -> Iterator[bytes]:
        for line in self._stream:
            self._pending.keep(line)
            yield line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class CaptureBuffer:
    """The requests one process recorded (see the module's docstring); thread-safe."""

    def __init__(self, routes: Iterable[str] | None = None, *, redact: Iterable[str] = (),
                 max_requests: int = MAX_REQUESTS, max_bytes: int = MAX_BYTES, max_body: int = MAX_BODY,
                 per_route: int | None = None, keep_headers: Iterable[str] = (), t0: float | None = None) -> None:
        self.redactor = Redactor(redact)
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.max_body = max_body
        self.per_route = per_route or max(1, max_requests // 4)
        self.t0 = time.time() if t0 is None else t0
        self.kept = tuple(dict.fromkeys([*KEPT_HEADERS, *self.redactor.headers_redacted,
                                         *(h.lower() for h in keep_headers)]))
        self._wsgi_keys = tuple((h, _wsgi_key(h)) for h in self.kept)
        self._lock = threading.Lock()
        self._records: list[CapturedRequest] = []
        self._per_route: dict[str, int] = {}
        self.requests = 0
        self.bytes = 0
        #: requests of wanted routes left out because a bound was reached
        self.dropped = 0
        #: a bound reached: nothing more is recorded
        self._full = False
        self._routes: frozenset[str] = frozenset()
        self._all = False
        self.set_routes(routes)

    @property
    def limits(self) -> dict[str, int]:
        """The bounds, as the file's header says them."""
        return limits_of(self.max_requests, self.max_bytes, self.max_body)

    def set_routes(self, routes: Iterable[str] | None) -> None:
        """Record these routes from now on (None or empty: none)."""
        names = frozenset(routes or ())
        self._all = ALL_ROUTES in names
        self._routes = names
        # The methods a request must have to be one of them (None: any): a GET never pays for a
        # tee when only "POST /orders" is asked.
        methods = {name.partition(" ")[0] for name in names if " " in name}
        self._methods = None if self._all or any(" " not in name for name in names) else frozenset(methods)
        self._saturated = False

    @property
    def routes(self) -> tuple[str, ...]:
        """The routes asked for, sorted."""
        return tuple(sorted(self._routes))

    def full(self) -> bool:
        """Whether a bound of the whole buffer is reached (a request that did not fit in the
        bytes left closes it too: each later one would cost a tee for nothing)."""
        return self._full

    def wants(self, route: str | None, method: str | None = None) -> bool:
        """Whether a request of ``route`` would be kept (None: of any route, as a request enters
        and its route is not known yet; its ``method`` then, where known)."""
        if self._full or self._saturated or not self._routes:
            return False
        if route is None:
            return self._methods is None or method is None or method in self._methods
        if not (self._all or route in self._routes or route.partition(" ")[2] in self._routes):
            return False
        return self._per_route.get(route, 0) < self.per_route

    # -- per request ------------------------------------------------------------------------

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> tuple[Pending, Callable[..., Any]]:
        """Tee ``environ``'s input (in place) and ``start_response``: the pending record and the
        ``start_response`` to hand to the app."""
        pending = Pending(self.max_body, time.time() - self.t0)
        stream = environ.get("wsgi.input")
        if stream is not None:
            environ["wsgi.input"] = _TeeInput(stream, pending)

        def teed(status: str, headers: Any, exc_info: Any = None) -> Any:
            try:
                pending.status = int(status.split(None, 1)[0])
            except (ValueError, IndexError):
                pass
            return start_response(status, headers, exc_info) if exc_info is not None \
                else start_response(status, headers)

        return pending, teed

    def asgi(self, receive: Callable[[], Awaitable[dict[str, Any]]],
             send: Callable[[dict[str, Any]], Awaitable[None]]) -> tuple[Pending, Any, Any]:
        """Tee an ASGI request's ``receive`` (the bodies of its ``http.request`` messages) and
        ``send`` (the status of ``http.response.start``)."""
        pending = Pending(self.max_body, time.time() - self.t0)

        async def teed_receive() -> dict[str, Any]:
            message = await receive()
            if message.get("type") == "http.request":
                pending.keep(message.get("body") or b"")
            return message

        async def teed_send(message: dict[str, Any]) -> None:
            if message.get("type") == "http.response.start":
                pending.status = int(message.get("status") or 0) or None
            await send(message)

        return pending, teed_receive, teed_send

    def finish_wsgi(self, pending: Pending, environ: dict[str, Any], route: str) -> None:
        """The WSGI request of ``route`` is over: kept if it is wanted. Never raises."""
        if not self.wants(route):
            return
        try:
            headers = {h: str(environ[k]) for h, k in self._wsgi_keys if k in environ}
            path = quote((environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1"),
                         safe="/:@!$&'()*+,;=-._~%") or "/"
            self._finish(pending, route, str(environ.get("REQUEST_METHOD") or "GET"), path,
                         str(environ.get("QUERY_STRING") or ""), headers, environ.get("CONTENT_LENGTH"))
        except Exception:  # a record that cannot be made must never break the app
            pass

    def finish_asgi(self, pending: Pending, scope: dict[str, Any], route: str) -> None:
        """The ASGI request of ``route`` is over: kept if it is wanted. Never raises."""
        if not self.wants(route):
            return
        try:
            headers: dict[str, str] = {}
            length = None
            for k, v in scope.get("headers") or ():
                name = k.decode("latin-1").lower()
                if name == "content-length":
                    length = v.decode("latin-1")
                elif name in self.kept:
                    headers[name] = f"{headers[name]}, {v.decode('latin-1')}" if name in headers \
                        else v.decode("latin-1")
            raw = scope.get("raw_path")
            path = raw.decode("latin-1").split("?")[0] if isinstance(raw, bytes) and raw \
                else quote(str(scope.get("path") or "/").encode("utf-8"), safe="/:@!$&'()*+,;=-._~%")
            self._finish(pending, route, str(scope.get("method") or "GET"), path or "/",
                         (scope.get("query_string") or b"").decode("latin-1"), headers, length)
        except Exception:
            pass

    def _finish(self, pending: Pending, route: str, method: str, path: str, query: str,
                headers: dict[str, str], length: Any) -> None:
        body = pending.body()
        try:
            declared = int(length) if length not in (None, "") else None
        except (TypeError, ValueError):
            declared = None
        truncated = pending.cut or (declared is not None and declared > len(body))
        # Kept as it came; redacted by take(), on the control thread: the request it records
        # does not wait for the redaction (a JSON body parsed, walked and dumped: ~8 µs).
        record = CapturedRequest(route, method.upper(), path, query, headers, body or None, truncated,
                                 pending.status, pending.t)
        size = record_size(record)
        with self._lock:
            if not self.wants(route) or self.bytes + size > self.max_bytes:
                self.dropped += 1
                self._full = self._full or self.bytes + size > self.max_bytes
                return
            self._records.append(record)
            self._per_route[route] = self._per_route.get(route, 0) + 1
            self._saturated = not self._all and all(self._per_route.get(r, 0) >= self.per_route for r in self._routes
                                                    if " " in r) and all(" " in r for r in self._routes)
            self.requests += 1
            self.bytes += size
            self._full = self.requests >= self.max_requests or self.bytes >= self.max_bytes

    def take(self) -> list[CapturedRequest]:
        """The records kept since the last call, redacted now (the bounds still count them); a
        record that cannot be redacted is dropped, never handed over in clear."""
        with self._lock:
            out, self._records = self._records, []
        red = self.redactor
        redacted = []
        for r in out:
            try:
                redacted.append(replace(
                    r, query=red.urlencoded(r.query), headers=red.headers(r.headers),
                    body=red.body(r.body, r.headers.get("content-type", ""), r.body_truncated) if r.body else None))
            except Exception:  # a body the redactor chokes on: dropped rather than kept in clear
                self.dropped += 1
        return redacted


def record_size(r: CapturedRequest) -> int:
    """What a record counts against the bytes bound: its body, target and headers."""
    headers = r.headers
    return (len(r.body or b"") + len(r.path) + len(r.query) + len(r.route)
            + sum(map(len, headers)) + sum(map(len, headers.values())))


def _wsgi_key(header: str) -> str:
    key = header.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"


class CaptureStore:
    """The writer's side: records from any number of processes, kept under the same bounds
    (the first come are kept), written as one capture file."""

    def __init__(self, path: str | Path, source: str, redacted: Iterable[str], *, max_requests: int = MAX_REQUESTS,
                 max_bytes: int = MAX_BYTES, max_body: int = MAX_BODY, per_route: int | None = None) -> None:
        self.path = Path(path)
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.per_route = per_route or max(1, max_requests // 4)
        self.header = CaptureHeader(created=_utc_now(), source=source, redacted=tuple(sorted(set(redacted))),
                                    limits=limits_of(max_requests, max_bytes, max_body))
        self.records: list[CapturedRequest] = []
        self.bytes = 0
        self._per_route: dict[str, int] = {}
        self.dropped = 0

    def add(self, records: Iterable[CapturedRequest]) -> int:
        """Keep those that fit; how many were kept."""
        kept = 0
        for r in records:
            size = record_size(r)
            if (len(self.records) >= self.max_requests or self.bytes + size > self.max_bytes
                    or self._per_route.get(r.route, 0) >= self.per_route):
                self.dropped += 1
                continue
            self.records.append(r)
            self.bytes += size
            self._per_route[r.route] = self._per_route.get(r.route, 0) + 1
            kept += 1
        return kept

    def load(self) -> None:
        """Start from the records already in the file (another process's), if it is one."""
        try:
            capture = read_capture(self.path)
        except UsageError:
            return
        self.header = capture.header
        self.records, self.bytes, self._per_route = [], 0, {}
        self.add(capture.requests)

    def write(self) -> Path | None:
        """Write the file atomically once it holds a request (an empty capture is no file)."""
        if not self.records:
            return None
        return write_capture(self.path, self.header, sorted(self.records, key=lambda r: r.t or 0.0))


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
