"""The hammer's HTTP/1.x response parser, fed the way a network feeds it: in arbitrary pieces."""
from __future__ import annotations

import pytest

from memprobe.http.parser import ProtocolError, ResponseParser

CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nHello\r\n7;ext=1\r\n, World\r\n0\r\n\r\n")


def feed_in_pieces(parser: ResponseParser, data: bytes, size: int) -> list[bool]:
    return [parser.feed(data[i:i + size]) for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 2, 7, 1000])
def test_a_content_length_response_completes_on_its_last_byte(size: int) -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nHello World!"
    steps = feed_in_pieces(parser := ResponseParser(), raw, size)
    assert steps[-1] is True and not any(steps[:-1])
    assert parser.status == 200 and parser.keep_alive


@pytest.mark.parametrize("size", [1, 3, 1000])
def test_a_chunked_response_completes_only_after_its_final_crlf(size: int) -> None:
    steps = feed_in_pieces(parser := ResponseParser(), CHUNKED, size)
    assert steps[-1] is True and not any(steps[:-1])
    # nothing is left over to corrupt the next response on the same connection
    parser.reset()
    assert parser.feed(b"HTTP/1.1 204 No Content\r\n\r\n") and parser.status == 204


def test_a_body_delimited_by_close_completes_at_eof() -> None:
    parser = ResponseParser()
    assert not parser.feed(b"HTTP/1.0 200 OK\r\n\r\nsome body")
    assert parser.eof() and not parser.keep_alive


def test_a_cut_short_response_is_not_complete_at_eof() -> None:
    parser = ResponseParser()
    assert not parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort")
    assert not parser.eof()


@pytest.mark.parametrize("head, keep_alive", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", True),
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", False),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", False),
    (b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n", True),
])
def test_keep_alive_follows_the_version_and_the_connection_header(head: bytes, keep_alive: bool) -> None:
    parser = ResponseParser()
    assert parser.feed(head)
    assert parser.keep_alive is keep_alive


@pytest.mark.parametrize("raw", [b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 abc OK\r\n\r\n",
                                 b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"])
def test_garbage_is_a_protocol_error(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        ResponseParser().feed(raw)


def test_an_endless_header_is_refused() -> None:
    with pytest.raises(ProtocolError, match="64 KiB"):
        ResponseParser().feed(b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 10_000)


def test_the_answer_to_a_head_has_no_body_whatever_its_content_length() -> None:
    parser = ResponseParser("HEAD")
    assert parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n")
    assert parser.status == 200 and parser.body_length == 0 and parser.keep_alive


def test_interim_1xx_responses_are_skipped_and_101_is_final() -> None:
    parser = ResponseParser()
    assert not parser.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
    assert parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") and parser.status == 200
    upgraded = ResponseParser()
    assert upgraded.feed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
    assert upgraded.status == 101 and not upgraded.keep_alive


@pytest.mark.parametrize("value", [b"-1", b"x", b"5, 6", b"1e3", b""])
def test_a_bad_or_conflicting_content_length_is_refused(value: bytes) -> None:
    with pytest.raises(ProtocolError):
        ResponseParser().feed(b"HTTP/1.1 200 OK\r\nContent-Length: " + value + b"\r\n\r\n")
    with pytest.raises(ProtocolError):
        ResponseParser().feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n")


def test_a_body_is_counted_not_kept() -> None:
    parser = ResponseParser()
    assert not parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + b"x" * 1000)
    for _ in range(199):
        parser.feed(b"x" * 1000)
    assert parser.body_length == 200000 and len(parser._buf) == 0
    closing = ResponseParser()
    closing.feed(b"HTTP/1.0 200 OK\r\n\r\n")
    for _ in range(100):
        closing.feed(b"y" * 1000)
    assert len(closing._buf) == 0 and closing.eof() and closing.body_length == 100000


def test_pipelined_responses_are_read_one_after_another() -> None:
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 204 No Content\r\n\r\n")
    assert parser.status == 200 and parser.surplus
    assert parser.next_response() and parser.status == 204
