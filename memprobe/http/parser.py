"""The least HTTP/1.x a load generator needs: where one response ends, its status, and whether
the server keeps the connection.

Bodies are counted, never kept: between two calls of :meth:`ResponseParser.feed` the parser
holds only an unfinished header block, chunk-size line or trailer, and whatever the server sent
after the end of the response. Framing follows RFC 9112 section 6.3 (the same decisions as h11,
which ``tests/test_http1_h11.py`` checks on generated responses):

- no body after a request with ``HEAD``, nor in a 204 or 304 response;
- interim ``1xx`` responses are skipped and the next status line read; ``101`` (Switching
  Protocols) is final, and the connection is no longer HTTP, so it is not kept;
- ``Transfer-Encoding: chunked`` wins over Content-Length; any other transfer coding is refused;
- ``Content-Length`` must be digits; repeated values must agree (``5, 5`` is 5, ``5, 6`` is
  refused, as is ``-1``);
- otherwise the body runs until the server closes the connection (HTTP/1.0 servers such as
  wsgiref).

Header blocks are validated as h11 validates them (field names are tokens, values hold no
control characters, obs-fold continuation lines are unfolded, a bare LF ends a line). Where
this parser knowingly differs from h11: an HTTP/1.0 response with ``Connection: keep-alive``
keeps the connection (h11 closes every HTTP/1.0 connection); only ``HTTP/1.x`` status lines are
accepted (h11 takes any ``HTTP/d.d``); a header block may reach 64 KiB (h11: 16 KiB).
"""
from __future__ import annotations

import re

MAX_HEADER = 65536

# Possessive quantifiers (*+, ++): nothing here needs backtracking, and without it the match of
# a typical header block takes half the time.
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]++"
#: the rest of a header line: no NUL, CR, LF, VT or FF (h11's field-value, with its OWS)
_VALUE = rb"[^\x00\n\r\x0b\x0c]*+\r?+"
#: header fields; the empty group (3) matches if a field is folded over lines (obs-fold)
_FIELDS = rb"(?:\n" + _TOKEN + rb":" + _VALUE + rb"(?:\n[ \t]()" + _VALUE + rb")*+)*+"
_HEAD = re.compile(rb"HTTP/1\.([0-9]) ([0-9]{3})(?: [^\x00\n\r\x0b\x0c]*+)?+\r?+" + _FIELDS)
#: trailer fields after the last chunk: the header-field grammar without a status line
_TRAILER = re.compile(_TOKEN + rb":" + _VALUE + rb"(?:\n[ \t]()" + _VALUE + rb")*+" + _FIELDS)
_BLANK_LINE = re.compile(rb"\n\r?\n")
_FOLD = re.compile(rb"\r?\n[ \t]+")
_FRAMING = re.compile(rb"\n(content-length|transfer-encoding|connection):([^\r\n]*+)")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;[^\n]*)?[ \t]*\r\n")

# states
_HEADER, _LENGTH, _CHUNK_SIZE_LINE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _UNTIL_CLOSE, _DONE = range(8)


class ProtocolError(Exception):
    """The bytes received are not an HTTP/1.x response."""


class ResponseParser:
    """Feed it the bytes of a response as they arrive; :meth:`feed` says when it is complete.

    ``method`` is the request's method: the answer to a ``HEAD`` has no body, whatever its
    headers say. After a response, ``status``, ``keep_alive`` and ``body_length`` describe it.
    """

    __slots__ = ("method", "status", "keep_alive", "body_length", "_buf", "_state", "_left", "_scan")

    def __init__(self, method: str = "GET") -> None:
        self.method = method.upper()
        self._buf = bytearray()
        self.reset()

    def reset(self, method: str | None = None) -> None:
        """Forget the last response and any byte received: ready for the next request."""
        self._buf.clear()
        self.next_response(method)

    def next_response(self, method: str | None = None) -> bool:
        """Start on the next response of a pipelined connection, keeping the bytes received
        after the last one; True if they already hold the next response whole."""
        if method is not None:
            self.method = method.upper()
        self.status = 0
        self.keep_alive = True
        self.body_length = 0
        self._state = _HEADER
        self._left = 0  # bytes left of the Content-Length body, or of the current chunk
        self._scan = 0  # where to resume looking for the end of the header block
        return bool(self._buf) and self.feed(b"")

    @property
    def started(self) -> bool:
        """Whether any byte of the response has arrived."""
        return self._state != _HEADER or bool(self._buf)

    @property
    def surplus(self) -> int:
        """Bytes received after the end of the response (the start of a pipelined next one)."""
        return len(self._buf) if self._state == _DONE else 0

    def feed(self, data: bytes) -> bool:
        """Add received bytes; True once the whole response is in. Raises :class:`ProtocolError`."""
        buf = self._buf
        if not buf:
            state = self._state
            # The body of a response, arriving by itself: counted without a copy.
            if state == _LENGTH and len(data) <= self._left:
                self._left -= len(data)
                self.body_length += len(data)
                if self._left:
                    return False
                self._state = _DONE
                return True
            if state == _UNTIL_CLOSE:
                self.body_length += len(data)
                return False
            src: bytes | bytearray = data
        else:
            buf += data
            src = buf
        try:
            pos = self._parse(src)
        except (ValueError, IndexError) as err:
            raise ProtocolError(str(err) or "malformed response") from None
        if src is buf:
            del buf[:pos]
        elif pos < len(src):
            buf += memoryview(src)[pos:]
        return self._state == _DONE

    def eof(self) -> bool:
        """The server closed the connection: True if that completes the response (a body
        delimited by the close), False if the response was cut short."""
        if self._state == _UNTIL_CLOSE:
            self._state = _DONE
            return True
        return self._state == _DONE

    def _parse(self, src: bytes | bytearray) -> int:
        """Parse ``src`` as far as it goes; return how many bytes of it were used."""
        pos, end = 0, len(src)
        while True:
            state = self._state
            if state == _DONE:  # the rest is the next response's
                return pos
            if state == _HEADER:
                m = _BLANK_LINE.search(src, pos + self._scan)
                if m is None:
                    if end - pos > MAX_HEADER:
                        raise ProtocolError("response header larger than 64 KiB")
                    self._scan = max(0, end - pos - 2)
                    return pos
                self._scan = 0
                self._head(src, pos, m.start())
                pos = m.end()
            elif state == _LENGTH:
                pos = self._count(pos, end)
                if self._left:
                    return pos
                self._state = _DONE
            elif state == _CHUNK_SIZE_LINE:
                eol = src.find(b"\r\n", pos)
                if eol < 0:
                    if end - pos > MAX_HEADER:
                        raise ProtocolError("chunk-size line larger than 64 KiB")
                    return pos
                m = _CHUNK_SIZE.fullmatch(src, pos, eol + 2)
                if m is None:
                    raise ProtocolError(f"illegal chunk-size line: {bytes(src[pos:eol])[:40]!r}")
                self._left = int(m.group(1), 16)
                self._state = _CHUNK_DATA if self._left else _TRAILERS
                pos = eol + 2
            elif state == _CHUNK_DATA:
                pos = self._count(pos, end)
                if self._left:
                    return pos
                self._state, self._left = _CHUNK_END, 2
            elif state == _CHUNK_END:
                # the CRLF after a chunk's data, perhaps split between two reads
                want = b"\r\n"[2 - self._left:]
                got = src[pos:pos + len(want)]
                if not want.startswith(got):
                    raise ProtocolError(f"chunk not followed by CRLF: {bytes(got)!r}")
                pos += len(got)
                self._left -= len(got)
                if self._left:
                    return pos
                self._state = _CHUNK_SIZE_LINE
            elif state == _TRAILERS:
                # Read to the end of the trailer: leaving it unread would put it in front of the
                # next response on a kept-alive connection.
                if src[pos:pos + 1] == b"\n":
                    pos += 1
                elif src[pos:pos + 2] == b"\r\n":
                    pos += 2
                else:
                    m = _BLANK_LINE.search(src, pos)
                    if m is None:
                        if end - pos > MAX_HEADER:
                            raise ProtocolError("trailer larger than 64 KiB")
                        return pos
                    t = _TRAILER.fullmatch(src, pos, m.start())
                    if t is None:
                        raise ProtocolError("malformed trailer field")
                    _framing(b"\n" + src[pos:m.start()], t.start(1) >= 0 or t.start(2) >= 0)
                    pos = m.end()
                self._state = _DONE
            else:  # _UNTIL_CLOSE
                self.body_length += end - pos
                return end

    def _count(self, pos: int, end: int) -> int:
        """Count body bytes from ``pos`` (up to what the framing has left); the new position."""
        take = min(self._left, end - pos)
        self._left -= take
        self.body_length += take
        return pos + take

    def _head(self, src: bytes | bytearray, start: int, stop: int) -> None:
        """Read a status line and its header fields, and choose how the body is framed."""
        m = _HEAD.fullmatch(src, start, stop)
        if m is None:
            line = bytes(src[start:min(stop, start + 40)]).split(b"\n")[0]
            raise ProtocolError(f"not an HTTP/1.x response head: {line!r}")
        status = int(m.group(2))
        if status < 100:
            raise ProtocolError(f"status {status} is not an HTTP status")
        length, chunked, connection = _framing(src[m.end(2):stop], m.start(3) >= 0)
        minor = m.group(1)
        self.status = status
        self.keep_alive = b"close" not in connection and (minor != b"0" or b"keep-alive" in connection)
        if status < 200:
            if status == 101:  # the connection now speaks another protocol
                self.keep_alive = False
                self._state = _DONE
            return  # other interim responses: the final one follows (_state is still _HEADER)
        if status in (204, 304) or self.method == "HEAD" or (self.method == "CONNECT" and status < 300):
            self._state = _DONE
        elif chunked:
            self._state = _CHUNK_SIZE_LINE
        elif length >= 0:
            self._left = length
            self._state = _LENGTH if length else _DONE
        else:
            self._state = _UNTIL_CLOSE


def _framing(block: bytes | bytearray, folded: bool) -> tuple[int, bool, list[bytes]]:
    """Content-Length (-1: none), whether chunked, and the Connection tokens of the header
    fields in ``block`` (validated, starting with the LF before its first field)."""
    if folded:
        block = _FOLD.sub(b" ", block)
    length, chunked, connection = -1, False, []
    seen = b""
    # lowered first: a case-sensitive findall is twice as fast as an IGNORECASE one
    for name, value in _FRAMING.findall(block.lower()):
        if name == b"content-length":
            if b"," in value:
                texts = {v.strip(b" \t") for v in value.split(b",")}
                if len(texts) != 1:
                    raise ProtocolError("conflicting Content-Length values")
                text = texts.pop()
            else:
                text = value.strip(b" \t")
            if not text.isdigit() or len(text) > 20:
                raise ProtocolError(f"bad Content-Length: {text[:40]!r}")
            if seen and text != seen:  # as h11: the digits as written, so 5 and 05 conflict
                raise ProtocolError("conflicting Content-Length headers")
            seen = text
            length = int(text)
        elif name == b"connection":
            connection += [v.strip(b" \t") for v in value.split(b",")]
        else:
            if chunked:
                raise ProtocolError("more than one Transfer-Encoding header")
            if value.strip(b" \t") != b"chunked":
                raise ProtocolError(f"unsupported Transfer-Encoding: {value.strip()[:40]!r}")
            chunked = True
    return length, chunked, connection
