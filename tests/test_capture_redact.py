"""Redaction of captured requests: what is redacted, the placeholders' shape, and that no redacted
value reaches the capture file in any form (searched byte for byte)."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from memprobe.capture.format import read_capture
from memprobe.capture.record import CaptureBuffer, CaptureStore
from memprobe.capture.redact import Redactor, length_class, parse_placeholder, placeholder

pytestmark = pytest.mark.timeout(30)

SECRET = "s3cr3t-Tok/en+42"
CARD = 4111111111111111


def test_the_length_class_is_the_power_of_two_range_the_length_falls_in() -> None:
    assert [length_class(n) for n in (0, 1, 2, 3, 4, 7, 8, 15, 16, 1000)] == \
        ["0", "1", "2-3", "2-3", "4-7", "4-7", "8-15", "8-15", "16-31", "512-1023"]


def test_a_placeholder_keeps_the_type_and_the_size_class_never_the_value() -> None:
    assert placeholder("abcdefghij") == "<redacted:str:8-15>"
    assert placeholder(4242) == "<redacted:int:4-7>"
    assert placeholder(-3.25) == "<redacted:float:1>"
    assert placeholder(True) == "<redacted:bool>"
    assert placeholder(None) is None
    assert placeholder({"a": [1, "xy"]}) == {"a": ["<redacted:int:1>", "<redacted:str:2-3>"]}
    assert parse_placeholder("<redacted:str:8-15>") == ("str", 8, 15)
    assert parse_placeholder("<redacted:bool>") == ("bool", 0, 0)
    assert parse_placeholder("hello") is None


def test_the_default_headers_are_redacted_keeping_cookie_names_and_the_scheme() -> None:
    r = Redactor()
    out = r.headers({"Authorization": f"Bearer {SECRET}", "Cookie": f"sid={SECRET}; theme=dark",
                     "Proxy-Authorization": "Basic dXNlcjpwYXNz", "Content-Type": "text/plain"})
    assert out == {"authorization": "Bearer <redacted:str:16-31>",
                   "cookie": "sid=<redacted:str:16-31>; theme=<redacted:str:4-7>",
                   "proxy-authorization": "Basic <redacted:str:8-15>", "content-type": "text/plain"}


def test_listed_query_and_form_fields_are_redacted_others_left_byte_for_byte() -> None:
    r = Redactor(["Token"])
    assert r.urlencoded(f"a=1&token={quote_plus(SECRET)}&b=%20x") == \
        "a=1&token=%3Credacted%3Astr%3A16-31%3E&b=%20x"
    assert r.body(f"TOKEN={quote_plus(SECRET)}&gift=1".encode(), "application/x-www-form-urlencoded") == \
        b"TOKEN=%3Credacted%3Astr%3A16-31%3E&gift=1"


def test_listed_json_fields_are_redacted_at_any_depth_keeping_the_json_type() -> None:
    r = Redactor(["token", "card"])
    body = json.dumps({"order": {"items": [{"card": CARD, "token": SECRET}], "gift": True}, "n": 3}).encode()
    out = json.loads(r.body(body, "application/json"))
    assert out == {"order": {"items": [{"card": "<redacted:int:16-31>", "token": "<redacted:str:16-31>"}],
                             "gift": True}, "n": 3}
    untouched = b'{"a":  1}'
    assert r.body(untouched, "application/json") == untouched


def test_a_body_that_cannot_be_parsed_is_replaced_whole_where_a_listed_name_occurs() -> None:
    r = Redactor(["token"])
    assert r.body(f'{{"token": "{SECRET}", "x'.encode(), "application/json", truncated=True) == \
        b"<redacted:body:32-63>"
    assert r.body(b"plain text", "text/plain") == b"plain text"


class _Input(io.BytesIO):
    pass


def _wsgi_request(buffer: CaptureBuffer, method: str, path: str, query: str, body: bytes,
                  headers: dict[str, str], route: str) -> None:
    environ: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
                               "CONTENT_LENGTH": str(len(body)), "wsgi.input": _Input(body)}
    for k, v in headers.items():
        key = k.upper().replace("-", "_")
        environ[key if key == "CONTENT_TYPE" else f"HTTP_{key}"] = v
    pending, start_response = buffer.wsgi(environ, lambda status, hdrs: None)
    assert environ["wsgi.input"].read() == body  # what the app reads is what was sent
    start_response("200 OK", [])
    buffer.finish_wsgi(pending, environ, route)


def test_no_redacted_value_appears_anywhere_in_the_written_file(tmp_path: Path) -> None:
    names = ["token", "card", "X-Api-Key", "session"]
    buffer = CaptureBuffer(["*"], redact=names)
    _wsgi_request(buffer, "POST", "/orders", f"token={quote_plus(SECRET)}&page=2",
                  json.dumps({"user": {"token": SECRET, "card": CARD}, "ids": [1, 2]}).encode(),
                  {"Content-Type": "application/json", "Authorization": f"Bearer {SECRET}",
                   "Cookie": f"session={SECRET}", "X-Api-Key": SECRET}, "POST /orders")
    _wsgi_request(buffer, "POST", "/forms", "", f"card={CARD}&token={quote(SECRET, safe='')}&gift=1".encode(),
                  {"Content-Type": "application/x-www-form-urlencoded"}, "POST /forms")
    _wsgi_request(buffer, "GET", "/search", f"q=shoes&session={quote(SECRET)}", b"", {}, "GET /search")
    store = CaptureStore(tmp_path / "c.jsonl", "test", buffer.redactor.redacted)
    store.add(buffer.take())
    path = store.write()
    assert path is not None
    raw = path.read_bytes()
    forms = {SECRET, str(CARD), quote(SECRET), quote(SECRET, safe=""), quote_plus(SECRET),
             json.dumps(SECRET), SECRET.replace("/", "\\/")}
    for form in forms:
        assert form.encode() not in raw, form
    requests = read_capture(path).requests
    assert [r.route for r in requests] == ["POST /orders", "POST /forms", "GET /search"]
    first = requests[0]
    assert first.query == "token=%3Credacted%3Astr%3A16-31%3E&page=2"
    assert json.loads(first.body or b"") == {"user": {"token": "<redacted:str:16-31>",
                                                      "card": "<redacted:int:16-31>"}, "ids": [1, 2]}
    assert first.headers["x-api-key"] == "<redacted:str:16-31>" and first.status == 200
    assert requests[1].body == b"card=%3Credacted%3Astr%3A16-31%3E&token=%3Credacted%3Astr%3A16-31%3E&gift=1"
