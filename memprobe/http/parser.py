"""The least HTTP/1.x a load generator needs: where one response ends, its status, and whether
the server keeps the connection.

Bodies are counted, never kept. Handles Content-Length, chunked transfer encoding, and bodies
delimited by the server closing the connection (HTTP/1.0 servers such as wsgiref).
"""
from __future__ import annotations

MAX_HEADER = 65536


class ProtocolError(Exception):
    """The bytes received are not an HTTP/1.x response."""


class ResponseParser:
    """Feed it the bytes of one response as they arrive; :meth:`feed` says when it is complete."""

    __slots__ = ("status", "keep_alive", "_buf", "_header_done", "_length", "_chunk_left")

    def __init__(self) -> None:
        self._buf = bytearray()
        self.reset()

    def reset(self) -> None:
        """Forget the last response: ready for the next one on the same connection."""
        self.status = 0
        self.keep_alive = True
        self._buf.clear()
        self._header_done = False
        self._length = -1  # -1: until the connection closes; -2: chunked; -3: chunked, at its end
        self._chunk_left = 0  # bytes left of the current chunk, its CRLF included

    @property
    def started(self) -> bool:
        """Whether any byte of the response has arrived."""
        return self._header_done or bool(self._buf)

    def feed(self, data: bytes) -> bool:
        """Add received bytes; True once the whole response is in. Raises :class:`ProtocolError`."""
        self._buf += data
        try:
            return self._parse()
        except (ValueError, IndexError) as err:
            raise ProtocolError(str(err) or "malformed response") from None

    def eof(self) -> bool:
        """The server closed the connection: True if that completes the response (a body
        delimited by the close), False if the response was cut short."""
        return self._header_done and self._length == -1

    def _parse(self) -> bool:
        buf = self._buf
        if not self._header_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEADER:
                    raise ProtocolError("response header larger than 64 KiB")
                return False
            lines = bytes(buf[:end]).split(b"\r\n")
            version, status = lines[0].split(b" ", 2)[:2]
            if not version.startswith(b"HTTP/1."):
                raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:40]!r}")
            self.status = int(status)
            self.keep_alive = version == b"HTTP/1.1"
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    self._length = int(value)
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    self._length = -2
                elif name == b"connection":
                    v = value.strip().lower()
                    self.keep_alive = v == b"keep-alive" or (self.keep_alive and v != b"close")
            del buf[: end + 4]
            self._header_done = True
            if self.status in (204, 304) or 100 <= self.status < 200:
                self._length = 0
        if self._length >= 0:
            return len(buf) >= self._length
        if self._length <= -2:
            return self._parse_chunks()
        return False  # the body runs until the server closes the connection

    def _parse_chunks(self) -> bool:
        buf = self._buf
        if self._length == -3:
            # After the last chunk: the final CRLF, or trailer fields and then CRLF. Leaving it
            # unread would put it in front of the next response on a kept-alive connection.
            if buf.startswith(b"\r\n"):
                del buf[:2]
                return True
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            del buf[: end + 4]
            return True
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
                self._length = -3
                return self._parse_chunks()
            self._chunk_left = size + 2
