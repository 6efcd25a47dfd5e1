"""The in-process capture buffer: what it tees, what it keeps, and its bounds."""
from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest

from memprobe.capture.record import CaptureBuffer

pytestmark = pytest.mark.timeout(30)


def _environ(body: bytes, path: str = "/orders", length: int | None = None) -> dict[str, Any]:
    return {"REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": "",
            "CONTENT_TYPE": "text/plain", "CONTENT_LENGTH": str(len(body) if length is None else length),
            "HTTP_HOST": "example", "wsgi.input": io.BytesIO(body)}


def _run(buffer: CaptureBuffer, body: bytes, route: str = "POST /orders", read: int = -1) -> None:
    environ = _environ(body)
    pending, start_response = buffer.wsgi(environ, lambda *a: None)
    environ["wsgi.input"].read(read)
    start_response("201 Created", [])
    buffer.finish_wsgi(pending, environ, route)


def test_nothing_is_wanted_until_a_route_is_asked_for() -> None:
    buffer = CaptureBuffer(None)
    assert not buffer.wants(None)
    buffer.set_routes(["POST /orders"])
    assert buffer.wants(None) and buffer.wants("POST /orders") and not buffer.wants("GET /")
    buffer.set_routes(["/orders"])  # a bare route: any method
    assert buffer.wants("PUT /orders")


def test_the_tee_hands_the_app_what_it_reads_and_never_reads_more() -> None:
    buffer = CaptureBuffer(["*"])
    environ = _environ(b"hello world")
    stream = environ["wsgi.input"]
    pending, _ = buffer.wsgi(environ, lambda *a: None)
    assert environ["wsgi.input"].read(5) == b"hello"
    assert stream.tell() == 5  # the rest is still unread
    buffer.finish_wsgi(pending, environ, "POST /orders")
    [record] = buffer.take()
    assert record.body == b"hello" and record.body_truncated  # the app read 5 of 11 bytes
    assert record.headers == {"content-type": "text/plain"}  # host is not kept
    assert record.status is None


def test_requests_bytes_bodies_and_routes_are_bounded() -> None:
    buffer = CaptureBuffer(["*"], max_requests=10, max_body=8, per_route=3, max_bytes=1 << 20)
    for _ in range(5):
        _run(buffer, b"0123456789abcdef")
    for i in range(20):
        _run(buffer, b"x", route=f"POST /r{i}")
    records = buffer.take()
    assert len(records) == 10 and not buffer.wants(None)
    assert sum(r.route == "POST /orders" for r in records) == 3
    first = records[0]
    assert first.body == b"01234567" and first.body_truncated and first.status == 201
    assert buffer.take() == []  # taken once


def test_the_bytes_bound_stops_recording() -> None:
    buffer = CaptureBuffer(["*"], max_bytes=100, max_body=1000)
    for _ in range(10):
        _run(buffer, b"y" * 40)
    assert buffer.bytes <= 100 and len(buffer.take()) == 1 and not buffer.wants(None)


def test_an_asgi_request_is_teed_from_its_messages() -> None:
    buffer = CaptureBuffer(["POST /items/{item_id}"], redact=["token"])
    scope = {"type": "http", "method": "POST", "path": "/items/7", "raw_path": b"/items/7",
             "query_string": b"token=abc&x=1",
             "headers": [(b"content-type", b"application/json"), (b"content-length", b"16")]}
    messages = [{"type": "http.request", "body": b'{"token": ', "more_body": True},
                {"type": "http.request", "body": b'"abc"}', "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def app() -> None:
        pending, rcv, snd = buffer.asgi(receive, send)
        assert (await rcv())["body"] == b'{"token": '
        await rcv()
        await snd({"type": "http.response.start", "status": 202, "headers": []})
        buffer.finish_asgi(pending, scope, "POST /items/{item_id}")

    asyncio.run(app())
    [record] = buffer.take()
    assert (record.path, record.query, record.status) == ("/items/7", "token=%3Credacted%3Astr%3A2-3%3E&x=1", 202)
    assert record.body == b'{"token": "<redacted:str:2-3>"}' and not record.body_truncated
    assert sent[0]["status"] == 202


def test_the_agent_captures_nothing_until_told_the_routes_then_answers_the_records_with_its_windows() -> None:
    from memprobe.agent.control import Agent, WatchAnswer
    from memprobe.agent.inject import CountingWSGI, Served

    class Loaded:
        app, kind, counting, watching, framework = None, "wsgi", True, None, None

    loaded = Loaded()
    served = Served()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    wrapped = CountingWSGI(app, lambda: served, lambda: loaded.watching)
    agent = Agent(loaded, 5)

    def post(body: bytes) -> None:
        environ = {**_environ(body), "CONTENT_TYPE": "application/json"}
        out = wrapped(environ, lambda *a: None)
        assert b"".join(out) == body  # the app read what was sent
        out.close()  # type: ignore[attr-defined]

    assert agent.handle({"cmd": "watch_start", "interval": 60,
                         "capture": {"routes": None, "redact": ["token"], "max_body": 1024}})["recording"]
    post(b'{"token": "abc", "n": 1}')
    assert WatchAnswer.from_wire(agent.handle({"cmd": "watch"})).captured == ()
    assert agent.handle({"cmd": "capture_routes", "routes": ["POST /orders"]})["capturing"]
    post(b'{"token": "abcd", "n": 2}')
    answer = WatchAnswer.from_wire(agent.handle({"cmd": "watch_stop"}), "watch_stop")
    [record] = answer.captured
    assert (record.route, record.status, record.body) == ("POST /orders", 200, b'{"token": "<redacted:str:4-7>", "n": 2}')
    assert sum(sum(w.requests.values()) for w in answer.windows) == 1 and served.count == 2
