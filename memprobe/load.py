"""The hammer: exactly N HTTP requests (or a duration's worth) at a concurrency and a timeout.

It must never be the bottleneck. ``requests`` costs ~2 ms of Python per call here, slower than
most servers it would measure (DESIGN.md, "Facts"), so this is an asyncio client on bare
protocols: one small parser, keep-alive connections, no per-request objects beyond a future.
Latencies go into a fixed-size log histogram, so ten million requests cost no more memory than a
thousand.
"""
from __future__ import annotations

import asyncio
import math
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from memprobe.errors import UsageError

MODES = ("keepalive", "close", "burst")


class LatencyHistogram:
    """Durations in log-spaced buckets, each 1 % wider than the last (as HdrHistogram does).

    Any percentile is within 1 % of the exact one; min, max, count and mean are exact. Memory
    is bounded by the bucket count (~2,100 from 1 µs to 1 h), whatever the number of samples.
    """

    _FLOOR = 1e-6
    _LOG_STEP = math.log(1.01)

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = 0.0

    def add(self, seconds: float) -> None:
        """Record one duration."""
        index = int(math.log(seconds / self._FLOOR) / self._LOG_STEP) if seconds > self._FLOOR else 0
        self.counts[index] = self.counts.get(index, 0) + 1
        self.count += 1
        self.total += seconds
        if seconds < self.min:
            self.min = seconds
        if seconds > self.max:
            self.max = seconds

    def merge(self, other: LatencyHistogram) -> None:
        """Add every sample of ``other`` to this histogram."""
        for index, n in other.counts.items():
            self.counts[index] = self.counts.get(index, 0) + n
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0-100) in seconds; 0.0 when empty."""
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(self.count * q / 100.0))
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                # geometric middle of the bucket, clipped to what was really seen
                value = self._FLOOR * math.exp((index + 0.5) * self._LOG_STEP)
                return min(max(value, self.min), self.max)
        return self.max

    def summary_ms(self) -> dict[str, float]:
        """p50/p90/p99/max/min/mean in milliseconds, as the JSON contract has them."""
        if not self.count:
            return {k: 0.0 for k in ("p50", "p90", "p99", "max", "min", "mean")}
        return {
            "p50": round(self.percentile(50) * 1e3, 3),
            "p90": round(self.percentile(90) * 1e3, 3),
            "p99": round(self.percentile(99) * 1e3, 3),
            "max": round(self.max * 1e3, 3),
            "min": round(self.min * 1e3, 3),
            "mean": round(self.total / self.count * 1e3, 3),
        }


@dataclass
class LoadResult:
    """What a hammering did: counts of every outcome, latency and throughput.

    ``ok`` counts responses with a status below 400; ``failed`` is everything else that was sent
    (4xx/5xx answers, timeouts and connection errors), so ``sent == ok + failed``.
    """

    url: str
    mode: str
    concurrency: int
    timeout_s: float
    sent: int = 0
    ok: int = 0
    failed: int = 0
    timeouts: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    status_counts: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram, repr=False)
    connections_opened: int = 0

    @property
    def answered(self) -> int:
        """Requests that got an HTTP response, whatever its status."""
        return sum(self.status_counts.values())

    @property
    def throughput_rps(self) -> float:
        """Responses per second of wall time."""
        return self.answered / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def latency_ms(self) -> dict[str, float]:
        """Latency percentiles of answered requests, in milliseconds."""
        return self.latency.summary_ms()

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract: ``requests`` counts, ``throughput_rps``, ``latency_ms``, ``duration_s``."""
        return {
            "url": self.url,
            "mode": self.mode,
            "concurrency": self.concurrency,
            "timeout_s": self.timeout_s,
            "requests": {
                "sent": self.sent,
                "ok": self.ok,
                "failed": self.failed,
                "timeouts": self.timeouts,
                "errors": dict(self.errors),
                "status_counts": dict(sorted(self.status_counts.items())),
            },
            "throughput_rps": round(self.throughput_rps, 2),
            "latency_ms": self.latency_ms,
            "duration_s": round(self.duration_s, 4),
            "connections_opened": self.connections_opened,
        }


class _ProtocolError(Exception):
    pass


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: send a request, parse one response, report (status, close)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bool]] | None = None
        self.closed = False
        self.exchanges = 0
        self._got_bytes = False
        self._buf = bytearray()
        self._reset()

    def _reset(self) -> None:
        self._status = 0
        self._header_done = False
        self._length = -1  # -1: until close, -2: chunked
        self._keep_alive = True
        self._chunk_left = 0  # bytes left of the current chunk, incl. its CRLF

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, raw: bytes, waiter: asyncio.Future[tuple[int, bool]]) -> None:
        self.waiter = waiter
        self.exchanges += 1
        self._got_bytes = False
        self._reset()
        self._buf.clear()
        assert self.transport is not None
        self.transport.write(raw)

    def stale(self) -> bool:
        """Whether the last request went on a reused connection that closed before answering."""
        return self.exchanges > 1 and not self._got_bytes

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        self._buf += data
        try:
            done = self._parse()
        except (_ProtocolError, ValueError, IndexError) as err:
            self._fail(_ProtocolError(str(err) or "bad response"))
            return
        if done and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self._status, not self._keep_alive))

    def _parse(self) -> bool:
        buf = self._buf
        if not self._header_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > 65536:
                    raise _ProtocolError("response header larger than 64 KiB")
                return False
            lines = bytes(buf[:end]).split(b"\r\n")
            version, status = lines[0].split(b" ", 2)[:2]
            self._status = int(status)
            self._keep_alive = version == b"HTTP/1.1"
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    self._length = int(value)
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    self._length = -2
                elif name == b"connection":
                    v = value.strip().lower()
                    self._keep_alive = v == b"keep-alive" or (self._keep_alive and v != b"close")
            del buf[: end + 4]
            self._header_done = True
            if self._status in (204, 304) or 100 <= self._status < 200:
                self._length = 0
        if self._length >= 0:
            return len(buf) >= self._length
        if self._length == -2:
            return self._parse_chunks()
        return False  # body runs until the server closes the connection

    def _parse_chunks(self) -> bool:
        buf = self._buf
        while True:
            if self._chunk_left:
                take = min(self._chunk_left, len(buf))
                del buf[:take]
                self._chunk_left -= take
                if self._chunk_left:
                    return False
            eol = buf.find(b"\r\n")
            if eol < 0:
                return False
            size = int(bytes(buf[:eol]).split(b";")[0], 16)
            del buf[: eol + 2]
            if size == 0:
                return True  # trailers are not used by any server measured here
            self._chunk_left = size + 2

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self._header_done and self._length == -1:
            waiter.set_result((self._status, True))  # body delimited by the close
        else:
            waiter.set_exception(exc or ConnectionResetError("server closed the connection"))

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self.abort()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


def _error_name(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, (BrokenPipeError, ConnectionAbortedError)):
        return "broken-pipe"
    if isinstance(exc, _ProtocolError):
        return "protocol"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower().replace(" ", "-")
    return type(exc).__name__


class Hammer:
    """Sends ``n`` requests (or runs for ``duration`` seconds) to ``url``.

    Modes: ``keepalive`` (default; ``concurrency`` connections, each reused while the server
    keeps it open), ``close`` (a new connection per request, ``Connection: close``), ``burst``
    (the seed's method: all ``n`` requests at once, each on its own connection).
    A literal ``{n}`` in the URL is replaced by the request's index (0, 1, 2...), or, with
    ``first`` and ``cycle``, by ``first + index % cycle`` (ids 1..1500 of a seeded table:
    ``first=1, cycle=1500``).
    ``completed`` can be read from another thread while the hammer runs.
    """

    def __init__(
        self,
        url: str,
        n: int | None = None,
        *,
        concurrency: int = 10,
        timeout: float = 5.0,
        mode: str = "keepalive",
        duration: float | None = None,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        progress: Callable[[int, int | None], None] | None = None,
        first: int = 0,
        cycle: int | None = None,
    ) -> None:
        if mode not in MODES:
            raise UsageError(f"unknown hammer mode {mode!r}; one of: {', '.join(MODES)}")
        if n is None and duration is None:
            raise UsageError("give a number of requests or a duration")
        if n is not None and n <= 0:
            raise UsageError(f"the number of requests must be positive, not {n}")
        if duration is not None and duration <= 0:
            raise UsageError(f"the duration must be positive, not {duration:g}")
        if timeout <= 0:
            raise UsageError(f"the timeout must be positive, not {timeout:g}")
        if concurrency <= 0:
            raise UsageError(f"the concurrency must be positive, not {concurrency}")
        if cycle is not None and cycle <= 0:
            raise UsageError(f"the cycle of {{n}} must be positive, not {cycle}")
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise UsageError(f"not an http:// URL: {url!r}")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or 80
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.n = n
        self.duration = duration
        self.mode = mode
        self.concurrency = n if mode == "burst" and n else concurrency
        self.timeout = timeout
        self.method = method.upper()
        self.body = body
        self.progress = progress
        self.first = first
        self.cycle = cycle
        self.completed = 0
        self._issued = 0
        self._deadline = math.inf
        self._family = socket.AF_INET
        self._addr: Any = (self.host, self.port)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        if body is not None:
            extra += f"Content-Length: {len(body)}\r\n"
        if mode != "keepalive":
            extra += "Connection: close\r\n"
        host_header = self.host if self.port == 80 else f"{self.host}:{self.port}"
        self._head = (
            f"{self.method} {{path}} HTTP/1.1\r\nHost: {host_header}\r\n"
            f"User-Agent: memprobe\r\nAccept: */*\r\n{extra}\r\n"
        )
        self._close_each = mode != "keepalive"
        self._templated = "{n}" in self.path
        self._fixed = None if self._templated else self._request(self.path)
        self.result = LoadResult(url, mode, self.concurrency, timeout)

    def _request(self, path: str) -> bytes:
        raw = self._head.replace("{path}", path).encode("latin-1")
        return raw + self.body if self.body is not None else raw

    def placeholder(self, index: int) -> int:
        """What ``{n}`` becomes in request number ``index`` (from 0)."""
        return self.first + (index % self.cycle if self.cycle else index)

    def _take(self) -> int | None:
        """The next request's index, or None when the run is over."""
        if self.n is not None and self._issued >= self.n:
            return None
        if time.perf_counter() >= self._deadline:
            return None
        index = self._issued
        self._issued += 1
        return index

    def run(self) -> LoadResult:
        """Run the hammering to its end (in a fresh event loop) and return the result."""
        return asyncio.run(self.run_async())

    async def run_async(self) -> LoadResult:
        """Run inside an existing event loop."""
        loop = asyncio.get_running_loop()
        try:  # once, not per connection: "localhost" may mean ::1 or 127.0.0.1
            family, _, _, _, self._addr = (await loop.getaddrinfo(
                self.host, self.port, type=socket.SOCK_STREAM))[0]
            self._family = socket.AddressFamily(family)
        except socket.gaierror as err:
            raise UsageError(f"cannot resolve {self.host!r}: {err.strerror}") from None
        start = time.perf_counter()
        if self.duration is not None:
            self._deadline = start + self.duration
        ticker = loop.create_task(self._tick()) if self.progress else None
        workers = min(self.concurrency, self.n) if self.n is not None else self.concurrency
        try:
            await asyncio.gather(*(self._worker(loop) for _ in range(workers)))
        finally:
            self.result.duration_s = time.perf_counter() - start
            if ticker is not None:
                ticker.cancel()
        if self.progress:
            self.progress(self.completed, self.n)
        return self.result

    async def _tick(self) -> None:
        assert self.progress is not None
        while True:
            self.progress(self.completed, self.n)
            await asyncio.sleep(0.1)

    async def _worker(self, loop: asyncio.AbstractEventLoop) -> None:
        result = self.result
        latency = result.latency
        statuses = result.status_counts
        conn: _Connection | None = None
        perf = time.perf_counter
        timeout = self.timeout
        # Servers that close after every response (wsgiref is HTTP/1.0, werkzeug sends
        # "Connection: close") get bare sockets: a transport per connection costs ~40 % more
        # client CPU. A keep-alive server that closes now and then keeps its connections.
        one_shot = self._close_each
        single_use = 0
        while (index := self._take()) is not None:
            raw = self._fixed if self._fixed is not None else self._request(
                self.path.replace("{n}", str(self.placeholder(index))))
            result.sent += 1
            t0 = perf()
            try:
                if one_shot:
                    status, close = await self._exchange_once(loop, raw, t0)
                else:
                    if conn is None or conn.closed:
                        conn = await self._connect(loop, timeout)
                    try:
                        status, close = await self._exchange(loop, conn, raw, t0)
                    except ConnectionError:
                        if not conn.stale():
                            raise
                        # The server closed an idle keep-alive connection before reading our
                        # request (as HTTP/1.1 allows); any client would resend it once.
                        conn = await self._connect(loop, timeout)
                        status, close = await self._exchange(loop, conn, raw, t0)
            except asyncio.TimeoutError:
                result.timeouts += 1
                result.failed += 1
                if conn is not None:
                    conn.abort()
                conn = None
            except (OSError, _ProtocolError) as exc:
                name = _error_name(exc)
                result.errors[name] = result.errors.get(name, 0) + 1
                result.failed += 1
                if conn is not None:
                    conn.abort()
                conn = None
            else:
                latency.add(perf() - t0)
                key = str(status)
                statuses[key] = statuses.get(key, 0) + 1
                if status < 400:
                    result.ok += 1
                else:
                    result.failed += 1
                if close and conn is not None:
                    single_use = single_use + 1 if conn.exchanges == 1 else 0
                    one_shot = single_use >= 3
                    conn.abort()
                    conn = None
            self.completed += 1
        if conn is not None:
            conn.abort()

    async def _exchange_once(self, loop: asyncio.AbstractEventLoop, raw: bytes,
                             t0: float) -> tuple[int, bool]:
        """One request on a fresh bare socket, read to the end of the response, closed."""
        task = asyncio.current_task()
        assert task is not None
        expired: list[bool] = []

        def expire() -> None:
            expired.append(True)
            task.cancel()

        timer = loop.call_later(max(0.0, self.timeout - (time.perf_counter() - t0)), expire)
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        sock.setblocking(False)
        parser = _Connection()
        waiter: asyncio.Future[tuple[int, bool]] = loop.create_future()
        parser.waiter = waiter
        try:
            self.result.connections_opened += 1
            await loop.sock_connect(sock, self._addr)
            await loop.sock_sendall(sock, raw)
            while not waiter.done():
                data = await loop.sock_recv(sock, 65536)
                if not data:
                    parser.connection_lost(None)
                    break
                parser.data_received(data)
            return waiter.result()
        except asyncio.CancelledError:
            if expired:
                raise asyncio.TimeoutError() from None
            raise
        finally:
            timer.cancel()
            sock.close()

    async def _exchange(self, loop: asyncio.AbstractEventLoop, conn: _Connection, raw: bytes,
                        t0: float) -> tuple[int, bool]:
        waiter: asyncio.Future[tuple[int, bool]] = loop.create_future()
        timer = loop.call_later(max(0.0, self.timeout - (time.perf_counter() - t0)), _expire, waiter)
        conn.send(raw, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()

    async def _connect(self, loop: asyncio.AbstractEventLoop, timeout: float) -> _Connection:
        self.result.connections_opened += 1
        _, conn = await asyncio.wait_for(
            loop.create_connection(_Connection, self.host, self.port), timeout
        )
        return conn


def _expire(waiter: asyncio.Future[tuple[int, bool]]) -> None:
    if not waiter.done():
        waiter.set_exception(asyncio.TimeoutError())


def hammer(url: str, n: int | None = None, **options: Any) -> LoadResult:
    """Send ``n`` requests to ``url`` and return what happened (see :class:`Hammer`)."""
    return Hammer(url, n, **options).run()

