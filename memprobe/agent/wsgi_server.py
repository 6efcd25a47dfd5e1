"""A minimal HTTP/1.1 keep-alive WSGI server for the agent, on 127.0.0.1 only.

Why not ``wsgiref``: its handler speaks HTTP/1.0 and closes every connection, so a keep-alive
hammer reconnects (and the child starts a thread) per request; that costs time and churns the
very memory being measured. This server keeps a connection open across requests and serves it
from a fixed pool of threads started up front: no per-request thread or socket objects.

What a measuring run needs, and what a server living inside the measured process must not do:

* it **streams**: each chunk the app yields is written at once (``Content-Length`` when the app
  gives it or the body is one known piece, else chunked on HTTP/1.1, else until close), so a
  streaming app's body is never held whole in the process being measured;
* a worker is busy only while a request is: between requests a keep-alive connection waits in
  the accept loop's selector, not in a worker, so idle clients cannot pin the pool;
* connections silent for ``idle_timeout`` s between requests, and reads or writes stalled for
  ``io_timeout`` s within one, are closed.

It implements PEP 3333's environ, Content-Length request bodies (a chunked request body is
refused with 501), pipelining, HEAD, and nothing else a production server needs.

Requests are parsed as strictly as memprobe's client parses responses (RFC 9112, the same
decisions as h11's server, which ``tests/test_wsgi_server_h11.py`` checks on the same bytes): the
request line is ``token SP target SP HTTP/1.x``; field names are tokens with no whitespace before
the colon, values hold no NUL, CR, LF, VT or FF; ``Content-Length`` is digits, and repeated
values must agree; an HTTP/1.1 request has exactly one ``Host``. Anything else, or a request cut
short by the client's end of stream, is answered ``400`` and the connection closed, so no byte
of a malformed request is ever read as the start of the next one. Where it knowingly differs
from h11: empty lines before a request line are skipped (RFC 9112 section 2.2; h11 refuses
them); an obs-fold continuation line is refused (h11 unfolds it; RFC 9112 section 5.2 allows
either); any ``Transfer-Encoding`` is 501 (h11 reads chunked bodies); only HTTP/1.0 and
HTTP/1.1 are served, other versions get 505 (h11 takes any ``HTTP/d.d``); HTTP/1.0 with
``Connection: keep-alive`` is kept (h11 closes every HTTP/1.0 connection); a head may reach
64 KiB (h11: 16 KiB), else 414 or 431.
"""
from __future__ import annotations

import io
import re
import selectors
import socket
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote_to_bytes

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_REASONS = {400: "Bad Request", 411: "Length Required", 414: "URI Too Long",
            431: "Request Header Fields Too Large", 500: "Internal Server Error",
            501: "Not Implemented", 505: "HTTP Version Not Supported"}
_MAX_LINE = 65536
_MAX_HEAD = 65536
_MAX_HEADERS = 100
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
#: method, target (visible ASCII), major and minor version; one SP between them, nothing around
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])\r?\n")
#: name, then the value without its OWS: no NUL, CR, LF, VT or FF (h11's field-value)
_FIELD = re.compile(rb"(" + _TOKEN + rb"):[ \t]*+([^\x00\n\r\x0b\x0c]*?)[ \t]*\r?\n")
_DIGITS = re.compile(r"[0-9]{1,20}")
#: bytes and seconds a refused request's remaining input is read for before the close
_DRAIN_BYTES = 1 << 20
_DRAIN_S = 2.0
_RECV = 65536
#: Requests served at once by default (idle keep-alive connections do not count).
WORKERS = 16
#: Seconds a keep-alive connection may stay silent between requests.
IDLE_TIMEOUT_S = 60.0
#: Seconds a read or a write may stall within a request.
IO_TIMEOUT_S = 30.0
_NO_BODY_STATUS = ("1", "204", "304")
_scratch = threading.local()


class _Conn:
    """One client connection and the bytes received from it but not yet parsed."""

    __slots__ = ("sock", "address", "buf", "idle_since")

    def __init__(self, sock: socket.socket, address: tuple[str, int]) -> None:
        self.sock = sock
        self.address = address
        self.buf = bytearray()
        self.idle_since = 0.0

    def _fill(self) -> bool:
        # Into each worker's own buffer, allocated once: recv(65536) would allocate (and the
        # heap being measured would see) 64 KiB per read per worker, to keep a few hundred bytes.
        scratch: bytearray | None = getattr(_scratch, "buf", None)
        if scratch is None:
            scratch = _scratch.buf = bytearray(_RECV)
        n = self.sock.recv_into(scratch)
        self.buf += memoryview(scratch)[:n]
        return n > 0

    def readline(self) -> bytes:
        """One line with its ending; longer than ``_MAX_LINE`` when too long; b"" at EOF."""
        start = 0
        while True:
            end = self.buf.find(b"\n", start)
            if end >= 0:
                line = bytes(self.buf[:end + 1])
                del self.buf[:end + 1]
                return line
            if len(self.buf) > _MAX_LINE:
                return bytes(self.buf)
            start = len(self.buf)
            if not self._fill():
                line = bytes(self.buf)
                self.buf.clear()
                return line

    def read(self, n: int) -> bytes:
        """Exactly ``n`` bytes (fewer at EOF)."""
        while len(self.buf) < n and self._fill():
            pass
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _prepare(ready: threading.Barrier) -> None:
    _scratch.buf = bytearray(_RECV)
    ready.wait()


class WSGIServer:
    """Serves a WSGI app on one listening socket: an accept/idle loop in the thread that calls
    :meth:`serve_forever` and a fixed pool of ``workers`` threads that serve requests."""

    def __init__(self, app: WSGIApp, host: str, port: int, workers: int,
                 idle_timeout: float = IDLE_TIMEOUT_S, io_timeout: float = IO_TIMEOUT_S) -> None:
        self.app = app
        self.idle_timeout = idle_timeout
        self.io_timeout = io_timeout
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.socket.bind((host, port))
            self.socket.listen(128)
        except OSError:
            self.socket.close()
            raise
        self.socket.setblocking(False)
        self.server_address: tuple[str, int] = self.socket.getsockname()[:2]
        self.port = self.server_address[1]  # the one bound, also when asked for port 0
        self._selector = selectors.DefaultSelector()
        self._returned: deque[_Conn] = deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._idle: dict[_Conn, None] = {}  # ordered: the oldest idle connection first
        self._done = threading.Event()
        self._stopped = threading.Event()
        # A fixed pool, started now, not a thread per connection: each hammer round opens new
        # connections, and fresh threads would touch fresh malloc arenas and stacks (USS
        # growth), and keep fresh thread-locals of the app's (CherryPy keeps the last request
        # per thread: traced growth). Every worker serves during the warm-up; none appears later.
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="memprobe-wsgi")
        ready = threading.Barrier(workers + 1)
        for _ in range(workers):
            self.pool.submit(_prepare, ready)
        ready.wait()

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Accept and dispatch until :meth:`shutdown`."""
        sel = self._selector
        sel.register(self.socket, selectors.EVENT_READ, None)
        sel.register(self._wake_r, selectors.EVENT_READ, None)
        try:
            while not self._done.is_set():
                for key, _ in sel.select(poll_interval):
                    if key.fileobj is self.socket:
                        self._accept()
                    elif key.fileobj is self._wake_r:
                        self._take_back()
                    else:
                        conn: _Conn = key.data
                        sel.unregister(conn.sock)
                        del self._idle[conn]
                        self.pool.submit(self._serve, conn)
                self._expire()
        finally:
            for conn in list(self._idle):
                sel.unregister(conn.sock)
                conn.close()
            self._idle.clear()
            sel.close()
            self._stopped.set()

    def _accept(self) -> None:
        while True:
            try:
                sock, address = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # EMFILE and the like: the client sees a reset, the server lives
                return
            sock.setblocking(True)
            sock.settimeout(self.io_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._park(_Conn(sock, address))

    def _park(self, conn: _Conn) -> None:
        conn.idle_since = time.monotonic()
        self._idle[conn] = None
        self._selector.register(conn.sock, selectors.EVENT_READ, conn)

    def _take_back(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        while self._returned:
            self._park(self._returned.popleft())

    def _expire(self) -> None:
        if not self._idle:
            return
        limit = time.monotonic() - self.idle_timeout
        expired = []
        for conn in self._idle:  # parked in time order: the oldest first
            if conn.idle_since > limit:
                break
            expired.append(conn)
        for conn in expired:
            self._selector.unregister(conn.sock)
            del self._idle[conn]
            conn.close()

    def _serve(self, conn: _Conn) -> None:
        """Serve the requests that have arrived on ``conn``; then hand it back or close it."""
        keep = False
        try:
            keep = _Exchange(self, conn).serve()
        except OSError:  # resets, timeouts
            keep = False
        except Exception:
            traceback.print_exc(file=sys.stderr)
            keep = False
        if keep and not self._done.is_set():
            self._returned.append(conn)
            try:
                self._wake_w.send(b"x")
            except OSError:
                conn.close()
        else:
            conn.close()

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` and wait until it has returned."""
        self._done.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._stopped.wait()

    def server_close(self) -> None:
        """Close the listening socket and wait for the requests in progress."""
        self.socket.close()
        self.pool.shutdown(wait=True)
        while self._returned:
            self._returned.popleft().close()
        self._wake_r.close()
        self._wake_w.close()


class _Exchange:
    """The requests of one turn of a connection in a worker."""

    def __init__(self, server: WSGIServer, conn: _Conn) -> None:
        self.server = server
        self.conn = conn

    def serve(self) -> bool:
        """Serve requests while they are already here; whether the connection stays open."""
        while True:
            if not self._one():
                return False
            if not self.conn.buf:  # nothing pipelined: wait for the next one in the selector
                return True

    def _one(self) -> bool:
        conn = self.conn
        line = conn.readline()
        while line in (b"\r\n", b"\n"):  # RFC 9112 section 2.2: skipped before a request line
            line = conn.readline()
        if not line:
            return False  # closed between requests
        head = self._head(line)
        if isinstance(head, int):
            self._error(head)
            return False
        method, target, version, headers = head
        framing = _framing(headers, version == "HTTP/1.1")
        if isinstance(framing, int):
            self._error(framing)
            return False
        length, keep = framing
        body = conn.read(length) if length else b""
        if len(body) < length:  # the client's stream ended inside the body
            self._error(400)
            return False
        environ = self._environ(method, target, version, headers)
        environ["wsgi.input"] = io.BytesIO(body)
        return _Response(self, environ, keep, method == "HEAD", version == "HTTP/1.1").run()

    def _head(self, line: bytes) -> tuple[str, str, str, list[tuple[str, str]]] | int:
        """The request line ``line`` and the header fields after it, or the status refusing them."""
        if len(line) > _MAX_LINE:
            return 414
        m = _REQUEST_LINE.fullmatch(line)
        if m is None:
            return 400
        if m.group(3) != b"1" or m.group(4) not in (b"0", b"1"):
            return 505
        size = len(line)
        headers: list[tuple[str, str]] = []
        while True:
            raw = self.conn.readline()
            size += len(raw)
            if size > _MAX_HEAD or len(headers) > _MAX_HEADERS:
                return 431
            if raw in (b"\r\n", b"\n"):
                break
            # also a line cut short by the end of the stream, and an obs-fold continuation line
            field = _FIELD.fullmatch(raw)
            if field is None:
                return 400
            headers.append((field.group(1).decode("latin-1"), field.group(2).decode("latin-1")))
        version = "HTTP/1." + chr(m.group(4)[0])
        return m.group(1).decode("latin-1"), m.group(2).decode("latin-1"), version, headers

    def _environ(self, method: str, target: str, version: str,
                 headers: list[tuple[str, str]]) -> dict[str, Any]:
        path, _, query = target.partition("?")
        if path.startswith(("http://", "https://")):
            path = "/" + path.split("/", 3)[-1] if path.count("/") >= 3 else "/"
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": str(self.server.port),
            "SERVER_PROTOCOL": version,
            "REMOTE_ADDR": self.conn.address[0],
            "REMOTE_PORT": str(self.conn.address[1]),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in headers:
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE" or key == "CONTENT_LENGTH":
                environ[key] = value
            elif "_" not in name:  # headers spelled with '_' are dropped, as gunicorn does
                key = "HTTP_" + key
                environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def _error(self, code: int, keep: bool = False) -> None:
        text = _REASONS.get(code, "Error").encode()
        extra = "" if keep else "Connection: close\r\n"
        sock = self.conn.sock
        sock.sendall(
            f"HTTP/1.1 {code} {_REASONS.get(code, 'Error')}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(text)}\r\n{extra}\r\n".encode("latin-1") + text
        )
        if not keep:
            _drain(sock)


def _drain(sock: socket.socket) -> None:
    """Half-close and read what the client still sends (for a while): closing with unread input
    makes the kernel send a reset, which can destroy the error response before the client reads it."""
    try:
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + _DRAIN_S
        drained = 0
        while drained < _DRAIN_BYTES:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            got = len(sock.recv(65536))
            if not got:
                break
            drained += got
    except OSError:
        pass


def _framing(headers: list[tuple[str, str]], http11: bool) -> tuple[int, bool] | int:
    """The body's length and whether the connection is kept, or the status refusing the request:
    Content-Length is digits and its repeats agree; a Transfer-Encoding is not implemented; an
    HTTP/1.1 request names one Host (RFC 9112 section 3.2), an HTTP/1.0 one at most."""
    length = ""
    hosts = 0
    tokens: set[str] = set()
    chunked = False
    for name, value in headers:
        lowered = name.lower()
        if lowered == "content-length":
            values = {v.strip(" \t") for v in value.split(",")}
            text = values.pop() if len(values) == 1 else ""
            if not _DIGITS.fullmatch(text) or (length and text != length):
                return 400  # as h11: the digits as written, so 5 and 05 conflict
            length = text
        elif lowered == "transfer-encoding":
            chunked = True
        elif lowered == "host":
            hosts += 1
        elif lowered == "connection":
            tokens.update(v.strip(" \t").lower() for v in value.split(","))
    if hosts > 1 or (http11 and not hosts):
        return 400
    if chunked:
        return 501
    keep = "close" not in tokens and (http11 or "keep-alive" in tokens)
    return int(length or 0), keep


class _Response:
    """One response, written as the app produces it."""

    def __init__(self, exchange: _Exchange, environ: dict[str, Any], keep: bool, head: bool,
                 http11: bool) -> None:
        self.exchange = exchange
        self.sock = exchange.conn.sock
        self.environ = environ
        self.keep = keep
        self.head = head
        self.http11 = http11
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.sent = False
        self.framing = ""  # "length", "chunked", "close" or "none", fixed when the head is sent
        self.known_length: int | None = None

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None and self.sent:
            raise exc_info[1].with_traceback(exc_info[2])
        self.status, self.headers = status, headers
        return self.write

    def run(self) -> bool:
        """Call the app and write its answer; whether the connection stays open."""
        try:
            result = self.exchange.server.app(self.environ, self.start_response)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            self.exchange._error(500, self.keep)
            return self.keep
        try:
            if isinstance(result, (list, tuple)):  # the whole body is known: give its length
                self.known_length = sum(len(chunk) for chunk in result)
            for chunk in result:
                if chunk:
                    self.write(chunk)
            self._finish()
        except OSError:
            raise
        except Exception:
            traceback.print_exc(file=sys.stderr)
            if not self.sent:
                self.exchange._error(500, self.keep)
                return self.keep
            return False  # the head is out: only closing can tell the client it went wrong
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return self.keep

    def write(self, data: bytes) -> None:
        """Write ``data`` now (PEP 3333's write callable and each yielded chunk)."""
        if not self.sent:
            self.sock.sendall(self._head() + self._framed(data))
        elif data:
            self.sock.sendall(self._framed(data))

    def _framed(self, data: bytes) -> bytes:
        if not data or self.framing == "none":
            return b""
        if self.framing == "chunked":
            return b"%x\r\n%s\r\n" % (len(data), data)
        return data

    def _finish(self) -> None:
        if not self.sent:
            if self.known_length is None:
                self.known_length = 0
            self.sock.sendall(self._head())
        elif self.framing == "chunked":
            self.sock.sendall(b"0\r\n\r\n")

    def _head(self) -> bytes:
        if self.status is None:
            raise RuntimeError("the app returned without calling start_response")
        lines = [f"HTTP/1.1 {self.status}"]
        has_length = False
        for name, value in self.headers:
            lowered = name.lower()
            if lowered == "content-length":
                has_length = True
            elif lowered in ("connection", "transfer-encoding"):
                continue
            lines.append(f"{name}: {value}")
        if self.head or self.status.startswith(_NO_BODY_STATUS):
            self.framing = "none"  # HEAD: the app's own Content-Length, if any, is passed on
        elif has_length:
            self.framing = "length"
        elif self.known_length is not None:
            self.framing = "length"
            lines.append(f"Content-Length: {self.known_length}")
        elif self.http11:
            self.framing = "chunked"
            lines.append("Transfer-Encoding: chunked")
        else:
            self.framing = "close"
            self.keep = False
        if not self.keep:
            lines.append("Connection: close")
        self.sent = True
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def make_server(app: WSGIApp, port: int, host: str = "127.0.0.1", workers: int = WORKERS,
                idle_timeout: float = IDLE_TIMEOUT_S, io_timeout: float = IO_TIMEOUT_S) -> WSGIServer:
    """A server bound to ``host:port`` (loopback by default; port 0 picks one, see ``.port``)
    serving up to ``workers`` requests at once; call ``serve_forever()``."""
    return WSGIServer(app, host, port, workers, idle_timeout, io_timeout)
