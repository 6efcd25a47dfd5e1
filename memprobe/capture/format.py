"""The capture file: requests recorded in production, replayed by ``hunt --replay`` and the
pytest plugin.

JSON Lines (one JSON object a line, UTF-8): people can read it, ``grep`` it, edit a line and
commit it, and a file cut short by a crash loses only its last line. HAR was the other
candidate; it is one JSON document (a truncated file is unreadable), it keeps what replay never
needs (timings, cookies twice, the response's body) and its bodies are text only. The first
line is the header::

    {"memprobe_capture": 1, "created": "2026-12-07T17:20:00Z", "source": "watch --pid 4242",
     "redacted": ["authorization", "cookie", "proxy-authorization", "set-cookie"],
     "limits": {"requests": 2000, "bytes": 8388608, "body": 65536}}

then one line per request::

    {"route": "POST /orders", "method": "POST", "path": "/orders", "query": "gift=1",
     "headers": {"content-type": "application/x-www-form-urlencoded"}, "body": "note=hi&gift=1",
     "status": 200, "t": 12.304}

``route`` is the route as the framework named it (what ``watch`` reports); ``body`` is text when
the bytes are UTF-8, else ``body_b64`` holds them in base64; ``body_truncated`` is true when the
body was longer than the limit (replay refuses such a request rather than send half a body);
``status`` is the response's; ``t`` the seconds since the capture began. A redacted value is
written as a placeholder of the same shape (:mod:`memprobe.capture.redact`), never in clear.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memprobe.errors import UsageError

__all__ = ["VERSION", "CaptureFileError", "CaptureHeader", "CapturedRequest", "Capture", "read_capture",
           "write_capture"]

#: The format's version, the header's ``memprobe_capture``.
VERSION = 1


class CaptureFileError(UsageError):
    """A capture file that cannot be replayed: missing, malformed, truncated, of another
    version (exit 2: the input is wrong, nothing was sent)."""


@dataclass(frozen=True)
class CaptureHeader:
    """The capture file's first line."""

    version: int = VERSION
    created: str = ""
    #: what recorded it (``watch --pid 4242``, ``middleware``)
    source: str = ""
    #: names of the headers, query fields and JSON or form fields redacted, lower case
    redacted: tuple[str, ...] = ()
    #: the bounds it was recorded under: ``requests``, ``bytes``, ``body``
    limits: dict[str, int] = field(default_factory=dict)

    def to_line(self) -> str:
        """The header as its line (no newline)."""
        return json.dumps({"memprobe_capture": self.version, "created": self.created, "source": self.source,
                           "redacted": list(self.redacted), "limits": self.limits}, ensure_ascii=False)

    @classmethod
    def from_line(cls, line: str, where: str) -> CaptureHeader:
        """The header read from the file's first line; CaptureFileError when it is not one."""
        data = _json(line, where)
        version = data.get("memprobe_capture")
        if version is None:
            raise CaptureFileError(f"{where}: not a memprobe capture file (its first line has no "
                                   "'memprobe_capture' version)")
        if version != VERSION:
            raise CaptureFileError(f"{where}: a capture file of version {version!r}; this memprobe reads "
                                   f"version {VERSION}")
        return cls(version, str(data.get("created") or ""), str(data.get("source") or ""),
                   tuple(str(x) for x in data.get("redacted") or ()),
                   {str(k): int(v) for k, v in (data.get("limits") or {}).items()})


@dataclass(frozen=True)
class CapturedRequest:
    """One recorded request."""

    #: ``METHOD route`` as the framework named it (``POST /orders``, ``GET /items/<int:id>``)
    route: str
    method: str
    path: str
    #: the raw query string, without ``?``
    query: str = ""
    #: the headers kept (lower-case names), redacted ones as placeholders
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    body_truncated: bool = False
    status: int | None = None
    #: seconds since the capture began
    t: float | None = None

    @property
    def target(self) -> str:
        """The request target as sent: the path and its query."""
        return f"{self.path}?{self.query}" if self.query else self.path

    def to_dict(self) -> dict[str, Any]:
        """As its line's object."""
        out: dict[str, Any] = {"route": self.route, "method": self.method, "path": self.path}
        if self.query:
            out["query"] = self.query
        if self.headers:
            out["headers"] = dict(self.headers)
        if self.body is not None:
            try:
                out["body"] = self.body.decode("utf-8")
            except UnicodeDecodeError:
                out["body_b64"] = base64.b64encode(self.body).decode("ascii")
        if self.body_truncated:
            out["body_truncated"] = True
        if self.status is not None:
            out["status"] = self.status
        if self.t is not None:
            out["t"] = round(self.t, 3)
        return out

    def to_line(self) -> str:
        """The request as its line (no newline)."""
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_line(cls, line: str, where: str) -> CapturedRequest:
        """A request read from its line; CaptureFileError when it is not one."""
        return cls.from_dict(_json(line, where), where)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> CapturedRequest:
        """A request read from its line's object (as :meth:`to_dict` makes it); CaptureFileError
        when it is not one."""
        for key in ("route", "method", "path"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise CaptureFileError(f"{where}: a request without its {key!r}")
        if not data["path"].startswith("/"):
            raise CaptureFileError(f"{where}: the path {data['path']!r} does not start with '/'")
        headers = data.get("headers") or {}
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise CaptureFileError(f"{where}: 'headers' must map names to strings")
        body: bytes | None = None
        if isinstance(data.get("body"), str):
            body = data["body"].encode("utf-8")
        elif isinstance(data.get("body_b64"), str):
            try:
                body = base64.b64decode(data["body_b64"], validate=True)
            except binascii.Error as err:
                raise CaptureFileError(f"{where}: 'body_b64' is not base64 ({err})") from None
        status = data.get("status")
        t = data.get("t")
        return cls(data["route"], data["method"].upper(), data["path"], str(data.get("query") or ""),
                   {str(k).lower(): v for k, v in headers.items()}, body, bool(data.get("body_truncated")),
                   int(status) if isinstance(status, int) else None,
                   float(t) if isinstance(t, (int, float)) else None)


@dataclass
class Capture:
    """A capture file's header and requests, in the order recorded."""

    header: CaptureHeader
    requests: list[CapturedRequest]
    path: str = ""

    def routes(self) -> dict[str, list[CapturedRequest]]:
        """The requests of each route, routes in the order first seen."""
        out: dict[str, list[CapturedRequest]] = {}
        for r in self.requests:
            out.setdefault(r.route, []).append(r)
        return out


def _json(line: str, where: str) -> dict[str, Any]:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as err:
        raise CaptureFileError(f"{where}: not JSON ({err.msg} at column {err.colno}); a capture file has "
                               "one JSON object a line") from None
    if not isinstance(data, dict):
        raise CaptureFileError(f"{where}: a line must be a JSON object, not {type(data).__name__}")
    return data


def read_capture(path: str | os.PathLike[str]) -> Capture:
    """The capture file at ``path``; CaptureFileError (exit 2) when it is missing, empty,
    malformed, cut short inside a line, of another version, or has no request."""
    name = os.fspath(path)
    try:
        raw = Path(name).read_bytes()
    except OSError as err:
        raise CaptureFileError(f"cannot read the capture file {name}: {err.strerror or err}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CaptureFileError(f"{name}: not UTF-8 (byte {err.start})") from None
    if text and not text.endswith("\n"):
        raise CaptureFileError(f"{name}: truncated (its last line has no end); the recorder may have been "
                               "killed while writing it: remove the last line to replay the rest")
    lines = [(i, line) for i, line in enumerate(text.split("\n"), 1) if line.strip()]
    if not lines:
        raise CaptureFileError(f"{name}: empty, not a capture file")
    header = CaptureHeader.from_line(lines[0][1], f"{name}:{lines[0][0]}")
    requests = [CapturedRequest.from_line(line, f"{name}:{i}") for i, line in lines[1:]]
    if not requests:
        raise CaptureFileError(f"{name}: no request recorded")
    return Capture(header, requests, name)


def write_capture(path: str | os.PathLike[str], header: CaptureHeader, requests: Iterable[CapturedRequest]) -> Path:
    """Write a capture file atomically (a temporary file beside it, renamed over it)."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(header.to_line() + "\n")
            for r in requests:
                f.write(r.to_line() + "\n")
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return target
