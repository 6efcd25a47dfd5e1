"""The agent's WSGI server, which lives inside the measured process: it streams, it times out,
and idle keep-alive clients do not hold its workers. Real sockets on loopback."""
from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from memprobe.agent.wsgi_server import make_server
from memprobe.http.hammer import hammer

pytestmark = pytest.mark.timeout(30)

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def hello(environ: Environ, start_response: StartResponse) -> list[bytes]:
    body = b"hello " + environ["PATH_INFO"].encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class Served:
    """A running server and raw-socket helpers to talk to it."""

    def __init__(self, app: Callable[..., Any], **options: Any) -> None:
        self.server = make_server(app, 0, **options)
        self.port = self.server.port
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def connect(self, timeout: float = 5.0) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(app: Callable[..., Any], **options: Any) -> Served:
        started.append(Served(app, **options))
        return started[-1]

    yield start
    for served in started:
        served.close()


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One response's head and body (Content-Length, chunked, or until close)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before the head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    fields = {line.split(b":")[0].strip().lower(): line.split(b":", 1)[1].strip()
              for line in head.split(b"\r\n")[1:]}
    if head.startswith(b"HTTP/1.1 304") or b"content-length" in fields:
        length = int(fields.get(b"content-length", b"0"))
        while len(rest) < length:
            rest += sock.recv(65536)
        return head, rest[:length]
    if fields.get(b"transfer-encoding") == b"chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                rest += sock.recv(65536)
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            while len(rest) < size + 2:
                rest += sock.recv(65536)
            body, rest = body + rest[:size], rest[size + 2:]
            if size == 0:
                return head, body
    while chunk := sock.recv(65536):
        rest += chunk
    return head, rest


def test_a_keep_alive_connection_serves_request_after_request(serve: Callable[..., Served]) -> None:
    served = serve(hello)
    with served.connect() as sock:
        for path in ("/a", "/b", "/c"):
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head, body = read_response(sock)
            assert head.startswith(b"HTTP/1.1 200") and body == f"hello {path}".encode()


def test_pipelined_requests_are_all_answered_in_order(serve: Callable[..., Served]) -> None:
    served = serve(hello)
    with served.connect() as sock:
        sock.sendall(b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % n for n in (1, 2, 3)))
        got = b""
        while not got.endswith(b"hello /3"):
            got += sock.recv(65536)
    assert got.count(b"HTTP/1.1 200") == 3
    assert got.index(b"hello /1") < got.index(b"hello /2") < got.index(b"hello /3")


def test_port_zero_binds_a_free_port_and_says_which() -> None:
    server = make_server(hello, 0)
    try:
        assert server.port > 0 and server.server_address == ("127.0.0.1", server.port)
    finally:
        server.server_close()


def test_a_streamed_body_is_written_as_the_app_yields_it(serve: Callable[..., Served]) -> None:
    released = threading.Event()
    seen_before_release: list[bool] = []

    def stream(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first chunk;"
        released.wait(10)
        yield b"second chunk"

    served = serve(stream)
    with served.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        sock.settimeout(3)
        try:
            while b"first chunk;" not in got:
                got += sock.recv(65536)
            seen_before_release.append(True)
        except TimeoutError:
            seen_before_release.append(False)
        released.set()
        sock.settimeout(10)
        while not got.endswith(b"0\r\n\r\n"):
            got += sock.recv(65536)
    assert seen_before_release == [True], "the first chunk waited for the whole body"
    assert b"Transfer-Encoding: chunked" in got
    assert b"c\r\nfirst chunk;\r\nc\r\nsecond chunk\r\n0\r\n\r\n" in got


def test_a_large_streamed_body_is_never_held_whole(serve: Callable[..., Served]) -> None:
    import tracemalloc

    piece = b"x" * 65536

    def stream(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        for _ in range(128):  # 8 MiB
            yield piece

    served = serve(stream)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with served.connect(timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            total = 0
            while not (total > 8 * 65536 * 16):
                data = sock.recv(1 << 20)
                assert data
                total += len(data)
                del data
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024, f"{peak} bytes traced at the peak for an 8 MiB body"


def test_http_1_0_without_a_length_is_delimited_by_closing(serve: Callable[..., Served]) -> None:
    def stream(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"a"
        yield b"b"

    served = serve(stream)
    with served.connect() as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        head, body = read_response(sock)
    assert b"Connection: close" in head and body == b"ab"


def test_head_gets_no_body_and_the_connection_goes_on(serve: Callable[..., Served]) -> None:
    served = serve(hello)
    with served.connect() as sock:
        sock.sendall(b"HEAD /x HTTP/1.1\r\nHost: x\r\n\r\nGET /y HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0)
        data = b""
        while data.count(b"HTTP/1.1 200") < 2 or not data.endswith(b"hello /y"):
            data += sock.recv(65536)
    assert data.count(b"hello") == 1


def test_an_app_that_fails_before_answering_gets_a_500(serve: Callable[..., Served]) -> None:
    def broken(environ: Environ, start_response: StartResponse) -> list[bytes]:
        raise RuntimeError("boom")

    served = serve(broken)
    with served.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _ = read_response(sock)
    assert head.startswith(b"HTTP/1.1 500")


def test_an_app_that_fails_mid_stream_has_its_connection_closed(serve: Callable[..., Served]) -> None:
    def half(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"part"
        raise RuntimeError("boom")

    served = serve(half)
    with served.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
    assert b"4\r\npart\r\n" in got and not got.endswith(b"0\r\n\r\n")


def test_an_idle_keep_alive_client_does_not_hold_a_worker(serve: Callable[..., Served]) -> None:
    served = serve(hello, workers=1)
    with served.connect() as idle:
        idle.sendall(b"GET /idle HTTP/1.1\r\nHost: x\r\n\r\n")
        read_response(idle)  # served, and now silent with its connection open
        with served.connect(timeout=3) as other:
            other.sendall(b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(other)[1] == b"hello /other"
        idle.sendall(b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(idle)[1] == b"hello /again"


def test_more_keep_alive_clients_than_workers_are_all_served(serve: Callable[..., Served]) -> None:
    served = serve(hello, workers=2)
    result = hammer(f"http://127.0.0.1:{served.port}/", 400, concurrency=8, timeout=5)
    assert (result.sent, result.ok) == (400, 400)


def test_a_connection_silent_for_the_idle_timeout_is_closed(serve: Callable[..., Served]) -> None:
    served = serve(hello, idle_timeout=0.3)
    with served.connect(timeout=5) as sock:
        t0 = time.monotonic()
        assert sock.recv(1) == b""
        assert time.monotonic() - t0 < 3


def test_a_request_stalled_half_way_is_dropped_after_the_io_timeout(serve: Callable[..., Served]) -> None:
    served = serve(hello, io_timeout=0.3, workers=1)
    with served.connect(timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost:")  # and nothing more
        assert sock.recv(1) == b""
    with served.connect(timeout=3) as sock:  # the worker is free again
        sock.sendall(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[1] == b"hello /next"


def answers(served: Served, data: bytes) -> list[bytes]:
    """The status lines the server sends for ``data`` (the client's whole stream), up to its close."""
    with served.connect() as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
    return re.findall(rb"HTTP/1\.1 [0-9]{3} [^\r\n]*", got)  # hello's bodies hold no status line


def test_a_content_length_that_is_not_digits_is_a_400_and_its_body_is_never_a_request(
        serve: Callable[..., Served]) -> None:
    """Formerly taken as no body, so the body was read as the next request: here it would have
    been a second GET."""
    served = serve(hello)
    body = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    for length in (b"abc", b"-5", b"+40", b"0x28", b"4 0", b""):
        data = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n" + body
        assert answers(served, data) == [b"HTTP/1.1 400 Bad Request"], length


def test_conflicting_content_lengths_are_a_400(serve: Callable[..., Served]) -> None:
    served = serve(hello)
    for fields in (b"Content-Length: 5\r\nContent-Length: 6", b"Content-Length: 5, 6",
                   b"Content-Length: 5\r\nContent-Length: 05"):
        data = b"POST / HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n\r\nhello"
        assert answers(served, data) == [b"HTTP/1.1 400 Bad Request"], fields
    same = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\nhello"
    assert answers(served, same + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == [b"HTTP/1.1 200 OK"] * 2


def test_a_malformed_head_is_a_400_after_the_requests_before_it_are_answered(
        serve: Callable[..., Served]) -> None:
    """The good requests pipelined before it are served; the connection closes at the bad one,
    and nothing after it is read."""
    served = serve(hello)
    good = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    for bad in (b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",  # space in a name
                b"GET / HTTP/1.1\r\nHost: x\r\nName : v\r\n\r\n",  # space before the colon
                b"GET / HTTP/1.1\r\nHost: x\r\nNo colon\r\n\r\n",
                b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n folded\r\n\r\n",  # obs-fold
                b"GET / HTTP/1.1\r\nHost: x\r\nA: n\x00ul\r\n\r\n",
                b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET / HTTP/1.1\r\n\r\n",  # no Host
                b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"):
        assert answers(served, good + bad + good) == [b"HTTP/1.1 200 OK", b"HTTP/1.1 400 Bad Request"], bad
    # cut short by the end of the client's stream: in the head, in the body
    for cut in (b"GET / HTTP/1.1\r\nHost: x\r\n", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nshort"):
        assert answers(served, good + cut) == [b"HTTP/1.1 200 OK", b"HTTP/1.1 400 Bad Request"], cut


def test_what_memprobe_does_not_implement_is_refused_with_its_own_status(serve: Callable[..., Served]) -> None:
    served = serve(hello)
    chunked = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    assert answers(served, chunked) == [b"HTTP/1.1 501 Not Implemented"]
    with_length = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello"
    assert answers(served, with_length) == [b"HTTP/1.1 501 Not Implemented"]
    assert answers(served, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n") == [b"HTTP/1.1 505 HTTP Version Not Supported"]
    long_field = b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"v" * 70_000 + b"\r\n\r\n"
    assert answers(served, long_field) == [b"HTTP/1.1 431 Request Header Fields Too Large"]
    long_target = b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert answers(served, long_target) == [b"HTTP/1.1 414 URI Too Long"]
