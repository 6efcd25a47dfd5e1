"""A minimal HTTP/1.1 keep-alive WSGI server for the agent, on 127.0.0.1 only.

Why not ``wsgiref``: its handler speaks HTTP/1.0 and closes every connection, so a keep-alive
hammer reconnects (and the child starts a thread) per request; that costs time and churns the
very memory being measured. This server keeps a connection open across requests and serves it from
a pool of reused threads: no per-request thread or socket objects.

It implements what a measuring run needs (PEP 3333 environ, Content-Length request bodies,
keep-alive, buffered responses) and nothing a production server needs. Connections are served
by a pool of reused threads.
"""
from __future__ import annotations

import io
import socketserver
import sys
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable
from urllib.parse import unquote_to_bytes

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_REASONS = {400: "Bad Request", 411: "Length Required", 500: "Internal Server Error",
            501: "Not Implemented"}
_MAX_LINE = 65536
_MAX_HEADERS = 100
#: Connections served at once by default (a keep-alive connection holds a worker while open).
WORKERS = 16


class _Server(socketserver.TCPServer):
    allow_reuse_address = True
    request_queue_size = 128
    app: WSGIApp
    port: int

    def __init__(self, address: tuple[str, int], handler: type[_Handler], workers: int) -> None:
        super().__init__(address, handler)
        # A fixed pool, started now, not a thread per connection: each hammer round opens new
        # connections, and fresh threads would touch fresh malloc arenas and stacks (USS
        # growth), and keep fresh thread-locals of the app's (CherryPy keeps the last request
        # per thread: traced growth). A keep-alive connection holds a worker while it is open,
        # so the pool must be at least as large as the client's concurrency (the hunt makes it
        # exactly that: every worker serves during the warm-up, none appears later).
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="memprobe-wsgi")
        ready = threading.Barrier(workers + 1)
        for _ in range(workers):
            self.pool.submit(ready.wait)
        ready.wait()

    def process_request(self, request: Any, client_address: Any) -> None:
        self.pool.submit(self._work, request, client_address)

    def _work(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)


class _Handler(socketserver.StreamRequestHandler):
    rbufsize = 65536
    wbufsize = 0
    disable_nagle_algorithm = True
    server: _Server

    def handle(self) -> None:
        try:
            while self._one():
                pass
        except (ConnectionError, TimeoutError, OSError):
            pass

    def _one(self) -> bool:
        """Serve one request; return whether the connection stays open."""
        line = self.rfile.readline(_MAX_LINE + 1)
        while line in (b"\r\n", b"\n"):
            line = self.rfile.readline(_MAX_LINE + 1)
        if not line:
            return False
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or len(line) > _MAX_LINE:
            self._error(400)
            return False
        method, target, version = parts
        headers: list[tuple[str, str]] = []
        while True:
            raw = self.rfile.readline(_MAX_LINE + 1)
            if raw in (b"\r\n", b"\n", b""):
                break
            name, sep, value = raw.decode("latin-1").partition(":")
            if not sep or len(headers) >= _MAX_HEADERS:
                self._error(400)
                return False
            headers.append((name.strip(), value.strip()))
        environ = self._environ(method, target, version, headers)
        if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
            self._error(501)
            return False
        length = environ.get("CONTENT_LENGTH", "")
        body = self.rfile.read(int(length)) if length.isdigit() and int(length) else b""
        environ["wsgi.input"] = io.BytesIO(body)
        connection = environ.get("HTTP_CONNECTION", "").lower()
        keep = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        self._run_app(environ, keep, method == "HEAD")
        return keep

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
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": str(self.client_address[1]),
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

    def _run_app(self, environ: dict[str, Any], keep: bool, head: bool) -> None:
        state: dict[str, Any] = {}

        def start_response(status: str, response_headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            if exc_info is not None and state.get("sent"):
                raise exc_info[1].with_traceback(exc_info[2])
            state["status"], state["headers"] = status, response_headers
            return chunks.append

        chunks: list[bytes] = []
        try:
            result = self.server.app(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception:
            traceback.print_exc(file=sys.stderr)
            self._error(500, keep)
            return
        if "status" not in state:
            self._error(500, keep)
            return
        body = b"".join(chunks)
        lines = [f"HTTP/1.1 {state['status']}"]
        has_length = False
        for name, value in state["headers"]:
            lowered = name.lower()
            if lowered == "content-length":
                has_length = True
            elif lowered in ("connection", "transfer-encoding"):
                continue
            lines.append(f"{name}: {value}")
        if not has_length:
            lines.append(f"Content-Length: {len(body)}")
        if not keep:
            lines.append("Connection: close")
        head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        state["sent"] = True
        self.wfile.write(head_bytes if head else head_bytes + body)

    def _error(self, code: int, keep: bool = False) -> None:
        text = _REASONS.get(code, "Error").encode()
        extra = "" if keep else "Connection: close\r\n"
        self.wfile.write(
            f"HTTP/1.1 {code} {_REASONS.get(code, 'Error')}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(text)}\r\n{extra}\r\n".encode("latin-1") + text
        )


def make_server(app: WSGIApp, port: int, host: str = "127.0.0.1",
                workers: int = WORKERS) -> socketserver.TCPServer:
    """A server bound to ``host:port`` (loopback by default) serving up to ``workers``
    connections at once; call ``serve_forever()``."""
    server = _Server((host, port), _Handler, workers)
    server.app = app
    server.port = port
    return server
