"""The hammer: exactly N HTTP requests (or a duration's worth) at a concurrency and a timeout.

It must never be the bottleneck. ``requests`` costs ~2 ms of Python per call here, slower than
most servers it would measure (README.md, "How memprobe measures, and what the numbers mean"),
so this is wrk's design in Python: non-blocking sockets, one poller, a small state machine per
connection, keep-alive.
Latencies go into a fixed-size log histogram, so ten million requests cost no more memory than a
thousand.
"""
from __future__ import annotations

import errno
import heapq
import math
import os
import select
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any, Callable
from urllib.parse import urlsplit

from memprobe.errors import EnvironmentProblem, UsageError
from memprobe.http.load import LoadResult
from memprobe.http.parser import ProtocolError, ResponseParser
from memprobe.http.template import RequestTemplate

MODES = ("keepalive", "close", "burst")


class Hammer:
    """Sends ``n`` requests (or runs for ``duration`` seconds) to ``url``.

    Modes: ``keepalive`` (default; ``concurrency`` connections, each reused while the server
    keeps it open), ``close`` (a new connection per request, ``Connection: close``), ``burst``
    (the seed's method: all ``n`` requests at once, each on its own connection).
    A literal ``{n}`` in the URL is replaced by the request's index (0, 1, 2...), or, with
    ``first`` and ``cycle``, by ``first + index % cycle`` (ids 1..1500 of a seeded table:
    ``first=1, cycle=1500``).
    ``requests``: a sequence of :class:`~memprobe.http.template.RequestTemplate` instead of one
    method, headers and body (``hunt --replay``): request number ``k`` (what ``{n}`` becomes) is
    ``requests[k % len(requests)]``, its target in place of the URL's path.
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
        requests: Sequence[RequestTemplate] | None = None,
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
        if requests is not None and not requests:
            raise UsageError("a sequence of request templates must hold at least one")
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise UsageError(f"not an http:// URL: {url!r}")
        self.url = url
        self.host = parts.hostname
        try:
            self.port = parts.port or 80
        except ValueError:
            raise UsageError(f"the port of {url!r} is not a number from 0 to 65535") from None
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
        try:
            self._head.encode("latin-1")
        except UnicodeEncodeError as err:
            raise UsageError(f"a request header must be latin-1 (RFC 9110 5.5); not "
                             f"{self._head[err.start:err.end]!r}: percent- or RFC 8187-encode it") from None
        self._templated = "{n}" in self.path
        self._fixed = None if self._templated or requests else self._request(self.path)
        #: per template: (it, its method, its request's bytes when it has no {n}, the head's two
        #: halves around the target)
        self._templates = [self._prepare(t, host_header, mode) for t in requests or ()]
        self.result = LoadResult(url, mode, self.concurrency, timeout)

    @staticmethod
    def _prepare(t: RequestTemplate, host: str, mode: str) -> tuple[RequestTemplate, str, bytes | None, str, str]:
        extra = "".join(f"{k}: {v}\r\n" for k, v in t.headers.items())
        if mode != "keepalive":
            extra += "Connection: close\r\n"
        method = t.method.upper()
        head = f"{method} "
        rest = f" HTTP/1.1\r\nHost: {host}\r\nUser-Agent: memprobe\r\nAccept: */*\r\n{extra}"
        try:
            (head + t.target_for(0) + rest).encode("latin-1")
        except UnicodeEncodeError as err:
            raise UsageError(f"a request's target and headers must be latin-1 (RFC 9110 5.5); not "
                             f"{err.object[err.start:err.end]!r}: percent- or RFC 8187-encode it") from None
        fixed = None if t.numbered else Hammer._assemble(head, t.target, rest, t.body)
        return t, method, fixed, head, rest

    @staticmethod
    def _assemble(head: str, target: str, rest: str, body: bytes | None) -> bytes:
        if body is None:
            return (head + target + rest + "\r\n").encode("latin-1")
        return (head + target + rest + f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1") + body

    def _from_template(self, index: int) -> tuple[str, bytes]:
        """Request number ``index``'s method and bytes, from its template."""
        n = self.placeholder(index)
        t, method, fixed, head, rest = self._templates[n % len(self._templates)]
        if fixed is not None:
            return method, fixed
        return method, self._assemble(head, t.target_for(n), rest, t.body_for(n))

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
        """Run the hammering to its end and return the result (Ctrl-C stops it cleanly)."""
        try:
            family, _, _, _, addr = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0]
        except socket.gaierror as err:
            raise UsageError(f"cannot resolve {self.host!r}: {err.strerror}") from None
        _ensure_open_files(min(self.concurrency, self.n) if self.n is not None else self.concurrency)
        engine = _Engine(self, socket.AddressFamily(family), addr)
        start = time.perf_counter()
        if self.duration is not None:
            self._deadline = start + self.duration
        try:
            engine.run(min(self.concurrency, self.n) if self.n is not None else self.concurrency)
        finally:
            self.result.duration_s = time.perf_counter() - start
            engine.close()
        if self.progress:
            self.progress(self.completed, self.n)
        return self.result


def _ensure_open_files(sockets: int) -> None:
    """Raise the soft RLIMIT_NOFILE so that ``sockets`` connections fit, or say what to do."""
    import resource

    need = sockets + 64  # the interpreter's own files, the poller, a sampler's
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or need <= soft:
        return
    if hard == resource.RLIM_INFINITY or need <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
        return
    raise EnvironmentProblem(
        f"{sockets} connections at once need {need} open files, above this shell's hard limit of "
        f"{hard}: lower the concurrency (or use --mode keepalive -c C), or raise the limit "
        f"(ulimit -Hn, /etc/security/limits.conf)")


_CONNECTING, _SENDING, _READING = 0, 1, 2
_IN, _OUT = select.POLLIN, select.POLLOUT  # the same bits as EPOLLIN / EPOLLOUT


class _Slot:
    """One of the C concurrent request slots: its socket (kept while the server allows), the
    request in flight, its start time and deadline."""

    __slots__ = ("sock", "fd", "state", "mask", "parser", "raw", "pending", "t0", "deadline",
                 "seq", "exchanges", "retried")

    def __init__(self, method: str) -> None:
        self.sock: socket.socket | None = None
        self.fd = -1
        self.state = _CONNECTING
        self.mask = 0
        self.parser = ResponseParser(method)
        self.raw = b""
        self.pending = b""
        self.t0 = 0.0
        self.deadline = 0.0
        self.seq = 0
        self.exchanges = 0
        self.retried = False


class _Engine:
    """wrk's design in Python: non-blocking sockets, one poller, a state machine per slot.

    asyncio costs a future, a timer handle and several callbacks per request (~100 µs of client
    CPU a request here, 350 µs when each request needs a new connection); this does a send, a
    poll and a recv, and on a 2-core machine every microsecond the client spends is taken from
    the server it measures.
    """

    def __init__(self, hammer: Hammer, family: socket.AddressFamily, addr: Any) -> None:
        self.h = hammer
        self.family = family
        self.addr = addr
        self.poller = _Poller()
        self.by_fd: dict[int, _Slot] = {}
        self.timers: list[tuple[float, int, _Slot]] = []
        self.active = 0
        self.seq = 0
        #: connections that failed at once, handled from the loop (not by recursion, which a
        #: million refused connections would overflow)
        self.failed_at_once: list[tuple[_Slot, OSError]] = []
        self.close_each = hammer.mode != "keepalive"

    def run(self, slots: int) -> None:
        h, perf = self.h, time.perf_counter
        self.active = slots
        for _ in range(slots):
            self.begin(_Slot(h.method))
        next_tick = perf() + 0.1
        timers, by_fd = self.timers, self.by_fd
        while self.active:
            while self.failed_at_once:
                self.fail(*self.failed_at_once.pop())
            now = perf()
            wake = min(timers[0][0], next_tick) if timers else next_tick
            for fd, events in self.poller.poll(max(0.0, wake - now)):
                slot = by_fd.get(fd)
                if slot is not None:
                    self.on_event(slot, events)
            now = perf()
            while timers and timers[0][0] <= now:
                _, seq, slot = heapq.heappop(timers)
                if slot.seq == seq:  # still the request that timer was set for
                    h.result.timeouts += 1
                    self.fail(slot, None)
            if now >= next_tick:
                next_tick = now + 0.1
                if h.progress:
                    h.progress(h.completed, h.n)

    def begin(self, slot: _Slot) -> None:
        """Send the next request on ``slot``, or retire it when the run is over."""
        h = self.h
        index = h._take()
        if index is None:
            self.drop_socket(slot)
            self.active -= 1
            return
        if h._fixed is not None:
            slot.raw = h._fixed
        elif h._templates:
            # the parser must know a HEAD's answer has no body
            slot.parser.method, slot.raw = h._from_template(index)
        else:
            slot.raw = h._request(h.path.replace("{n}", str(h.placeholder(index))))
        h.result.sent += 1
        self.seq += 1
        slot.seq = self.seq
        slot.t0 = time.perf_counter()
        slot.deadline = slot.t0 + h.timeout
        slot.retried = False
        heapq.heappush(self.timers, (slot.deadline, slot.seq, slot))
        if slot.sock is None:
            self.connect(slot)
        else:
            self.send(slot, slot.raw)

    def connect(self, slot: _Slot) -> None:
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        slot.sock, slot.fd, slot.exchanges, slot.mask = sock, sock.fileno(), 0, 0
        self.by_fd[slot.fd] = slot
        self.h.result.connections_opened += 1
        err = sock.connect_ex(self.addr)
        if err == 0:
            self.send(slot, slot.raw)
        elif err in (errno.EINPROGRESS, errno.EAGAIN):
            # On loopback the handshake is usually done by now: try the send at once and save
            # a poll; if it is not, the send fails with EAGAIN/ENOTCONN and we wait to write.
            try:
                sent = sock.send(slot.raw)
            except (BlockingIOError, InterruptedError):
                sent = -1
            except OSError as exc:
                if exc.errno != errno.ENOTCONN:
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) or exc.errno or errno.EIO
                    self.failed_at_once.append((slot, OSError(code, os.strerror(code))))
                    return
                sent = -1
            if sent < 0:
                slot.state, slot.pending = _CONNECTING, slot.raw
                self.want(slot, _OUT)
                return
            slot.parser.reset()
            slot.state, slot.pending = (_READING, b"") if sent == len(slot.raw) else (_SENDING, slot.raw[sent:])
            self.want(slot, _IN if sent == len(slot.raw) else _OUT)
        else:
            self.failed_at_once.append((slot, OSError(err, os.strerror(err))))

    def send(self, slot: _Slot, data: bytes) -> None:
        slot.parser.reset()
        try:
            sent = slot.sock.send(data)  # type: ignore[union-attr]
        except BlockingIOError:
            sent = 0
        except OSError as err:
            self.broken(slot, err)
            return
        if sent < len(data):
            slot.state, slot.pending = _SENDING, data[sent:]
            self.want(slot, _OUT)
        else:
            slot.state, slot.pending = _READING, b""
            self.want(slot, _IN)

    def want(self, slot: _Slot, mask: int) -> None:
        if slot.mask == mask:
            return
        if slot.mask:
            self.poller.modify(slot.fd, mask)
        else:
            self.poller.register(slot.fd, mask)
        slot.mask = mask

    def on_event(self, slot: _Slot, events: int) -> None:
        if slot.state != _READING:
            if slot.state == _CONNECTING:
                err = slot.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)  # type: ignore[union-attr]
                if err:
                    self.fail(slot, OSError(err, os.strerror(err)))
                    return
            self.send(slot, slot.pending)
            return
        try:
            data = slot.sock.recv(65536)  # type: ignore[union-attr]
        except BlockingIOError:
            return
        except OSError as err:
            self.broken(slot, err)
            return
        if not data:
            if slot.parser.eof():
                self.complete(slot, close=True)
            else:
                self.broken(slot, ConnectionResetError(errno.ECONNRESET, "server closed the connection"))
            return
        try:
            done = slot.parser.feed(data)
        except ProtocolError as err:
            self.fail(slot, err)
            return
        if done:
            self.complete(slot, close=not slot.parser.keep_alive)

    def broken(self, slot: _Slot, err: OSError) -> None:
        """The connection failed mid-request. On a reused connection that closed before any
        byte of the answer, the server dropped an idle keep-alive connection, as HTTP/1.1 lets
        it: resend once on a new connection, as any client would."""
        if slot.exchanges and not slot.retried and not slot.parser.started:
            slot.retried = True
            self.drop_socket(slot)
            self.connect(slot)
            return
        self.fail(slot, err)

    def complete(self, slot: _Slot, close: bool) -> None:
        h, result = self.h, self.h.result
        result.latency.add(time.perf_counter() - slot.t0)
        result.answer(slot.parser.status)
        h.completed += 1
        slot.seq = 0
        slot.exchanges += 1
        if close or self.close_each:
            self.drop_socket(slot)
        self.begin(slot)

    def fail(self, slot: _Slot, err: Exception | None) -> None:
        """Count a failed request (``err`` None: a timeout) and go on with the next one."""
        h, result = self.h, self.h.result
        if err is not None:
            name = _error_name(err)
            result.errors[name] = result.errors.get(name, 0) + 1
        result.failed += 1
        h.completed += 1
        slot.seq = 0
        self.drop_socket(slot)
        self.begin(slot)

    def drop_socket(self, slot: _Slot) -> None:
        if slot.sock is None:
            return
        if slot.mask and not self.poller.forgets_closed:
            self.poller.unregister(slot.fd)
        del self.by_fd[slot.fd]
        slot.sock.close()
        slot.sock, slot.fd, slot.mask = None, -1, 0

    def close(self) -> None:
        for slot in list(self.by_fd.values()):
            self.drop_socket(slot)
        self.poller.close()


class _Poller:
    """``select.epoll`` where there is one (Linux), else ``select.poll``, with one interface."""

    def __init__(self) -> None:
        self._epoll = getattr(select, "epoll", None)
        self._p: Any = self._epoll() if self._epoll else select.poll()
        self.register, self.modify, self.unregister = self._p.register, self._p.modify, self._p.unregister
        #: epoll drops a socket by itself when it is closed (one syscall less per connection)
        self.forgets_closed = self._epoll is not None

    def poll(self, timeout_s: float) -> list[tuple[int, int]]:
        if self._epoll:
            return self._p.poll(timeout_s)
        return self._p.poll(timeout_s * 1000.0)

    def close(self) -> None:
        if self._epoll:
            self._p.close()


_ERRNO_NAMES = {errno.ECONNREFUSED: "refused", errno.ECONNRESET: "reset", errno.EPIPE: "broken-pipe",
                errno.ECONNABORTED: "broken-pipe"}


def errno_name(exc: BaseException) -> str | None:
    """The name a connection error is counted under (``refused``, ``reset``, ``broken-pipe``),
    None for one without a known errno."""
    return _ERRNO_NAMES.get(getattr(exc, "errno", None) or 0)


def _error_name(exc: BaseException) -> str:
    if isinstance(exc, ProtocolError):
        return "protocol"
    known = errno_name(exc)
    if known is not None:
        return known
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower().replace(" ", "-")
    return type(exc).__name__


def hammer(url: str, n: int | None = None, **options: Any) -> LoadResult:
    """Send ``n`` requests to ``url`` and return what happened (see :class:`Hammer`)."""
    return Hammer(url, n, **options).run()

