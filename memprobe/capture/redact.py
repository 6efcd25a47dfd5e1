"""Redaction of a captured request, done in the process that served it, before the record leaves
it: a redacted value is never written, sent to the parent, or kept in memory past the request.

What is redacted:

* the headers :data:`DEFAULT_HEADERS` (``authorization``, ``cookie``, ``set-cookie``,
  ``proxy-authorization``) always, and every header the user names;
* every query field, form field (``application/x-www-form-urlencoded``) and JSON field, at any
  depth, whose name the user lists (names compare case-insensitively, after percent-decoding).

The placeholder keeps the value's shape and never the value. It is always a string
``<redacted:TYPE:CLASS>``:

* a string of ``n`` characters: ``<redacted:str:8-15>``, the power-of-two class ``n`` falls in
  (``0``, ``1``, ``2-3``, ``4-7``, ``8-15``...);
* a JSON number: ``<redacted:int:4-7>`` or ``<redacted:float:1>``, the class of the digits of
  its integer part (the sign and the fraction are dropped);
* a JSON boolean: ``<redacted:bool>`` (keeping ``true``/``false`` would keep the whole value);
* ``null`` stays ``null`` (it holds nothing), and an object or array under a redacted name keeps
  its keys and length, each leaf redacted as above.

A JSON number becomes a string rather than a number of the same digit count: a number placeholder
would read as a real value, where ``<redacted:int:4-7>`` says what it stands for, and replay
(``hunt --replay``) reads the type and class back (:func:`parse_placeholder`) to make values of
the same shape. In a query string or a form body the placeholder is percent-encoded
(``%3Credacted%3Astr%3A8-15%3E``), as any field value there is.

The ``cookie`` header keeps its cookie names, each value redacted (``sid=<redacted:str:32-63>;
theme=<redacted:str:4-7>``); ``authorization`` and ``proxy-authorization`` keep the scheme
(``Bearer <redacted:str:32-63>``). A body the redactor cannot parse (not JSON, not a form, or cut
at the size limit) in which a listed name appears is replaced whole by
``<redacted:body:CLASS>`` (its byte length's class): a value there could not be found for sure.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote_plus, unquote_plus

__all__ = ["DEFAULT_HEADERS", "Redactor", "length_class", "parse_placeholder", "placeholder"]

#: Headers redacted whatever the user lists.
DEFAULT_HEADERS = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization"})

_PLACEHOLDER = re.compile(r"<redacted:(str|int|float|bool|body)(?::(\d+)(?:-(\d+))?)?>")


def length_class(n: int) -> str:
    """The power-of-two class of a length: ``0``, ``1``, ``2-3``, ``4-7``, ``8-15``..."""
    if n <= 1:
        return str(max(n, 0))
    lo = 1 << (n.bit_length() - 1)
    return f"{lo}-{2 * lo - 1}"


def placeholder(value: Any) -> Any:
    """The placeholder of one JSON value (see the module's docstring)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "<redacted:bool>"
    if isinstance(value, int):
        return f"<redacted:int:{length_class(len(str(abs(value))))}>"
    if isinstance(value, float):
        return f"<redacted:float:{length_class(len(str(int(abs(value)))) if value == value else 0)}>"
    if isinstance(value, dict):
        return {k: placeholder(v) for k, v in value.items()}
    if isinstance(value, list):
        return [placeholder(v) for v in value]
    return f"<redacted:str:{length_class(len(str(value)))}>"


def parse_placeholder(text: str) -> tuple[str, int, int] | None:
    """``(type, low, high)`` of a placeholder (``<redacted:str:8-15>`` -> ``("str", 8, 15)``;
    ``bool``: ``(bool, 0, 0)``); None when ``text`` is not one. Percent-decode it first where it
    came from a query or a form."""
    m = _PLACEHOLDER.fullmatch(text)
    if m is None:
        return None
    lo = int(m.group(2) or 0)
    return m.group(1), lo, int(m.group(3) or lo)


class Redactor:
    """Redacts the headers, query, and body of a request (see the module's docstring).

    ``names``: the header, query, form and JSON field names to redact besides
    :data:`DEFAULT_HEADERS` (any case).
    """

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.names = frozenset(n.strip().lower() for n in names if n.strip())
        self.headers_redacted = DEFAULT_HEADERS | self.names
        self._needles = tuple(n.encode("utf-8") for n in self.names)

    @property
    def redacted(self) -> tuple[str, ...]:
        """Every name redacted, sorted (the capture file's header says them)."""
        return tuple(sorted(self.headers_redacted))

    # -- headers ----------------------------------------------------------------------------

    def header(self, name: str, value: str) -> str:
        """A header's value as written (``name`` lower case)."""
        if name not in self.headers_redacted:
            return value
        if name == "cookie":
            return "; ".join(self._cookie(part) for part in value.split(";") if part.strip())
        if name in ("authorization", "proxy-authorization"):
            scheme, sep, credentials = value.strip().partition(" ")
            if sep and scheme.isalpha():
                return f"{scheme} {placeholder(credentials.strip())}"
        return str(placeholder(value))

    @staticmethod
    def _cookie(part: str) -> str:
        name, sep, value = part.strip().partition("=")
        return f"{name}={placeholder(value)}" if sep else str(placeholder(name))

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Headers as written: names lower case, redacted values as placeholders."""
        return {k.lower(): self.header(k.lower(), v) for k, v in headers.items()}

    # -- query and form ---------------------------------------------------------------------

    def urlencoded(self, text: str) -> str:
        """A query string or form body with the listed fields' values replaced (percent-encoded
        placeholders); the other fields are left byte for byte as they were."""
        if not self.names or not text:
            return text
        out = []
        for part in text.split("&"):
            name, sep, value = part.partition("=")
            if unquote_plus(name).strip().lower() in self.names:
                part = f"{name}={quote_plus(str(placeholder(unquote_plus(value))))}" if sep \
                    else quote_plus(str(placeholder(unquote_plus(name))))
            out.append(part)
        return "&".join(out)

    # -- bodies -----------------------------------------------------------------------------

    def body(self, body: bytes, content_type: str = "", truncated: bool = False) -> bytes:
        """The body as written: a JSON body with the listed fields redacted at any depth
        (re-serialized only when one was), a form body field by field; any other body, or one cut
        short, replaced whole where a listed name occurs in it (see the module's docstring)."""
        if not self.names or not body:
            return body
        kind = content_type.split(";")[0].strip().lower()
        if not truncated:
            if kind == "application/x-www-form-urlencoded":
                try:
                    return self.urlencoded(body.decode("ascii")).encode("ascii")
                except UnicodeDecodeError:
                    pass
            elif kind.endswith("json") or kind.endswith("+json") or body.lstrip()[:1] in (b"{", b"["):
                try:
                    data = json.loads(body)
                except ValueError:
                    pass
                else:
                    redacted, changed = self._json(data)
                    return json.dumps(redacted, ensure_ascii=False).encode("utf-8") if changed else body
        lower = body.lower()
        if any(n in lower for n in self._needles):
            return f"<redacted:body:{length_class(len(body))}>".encode("ascii")
        return body

    def _json(self, data: Any) -> tuple[Any, bool]:
        if isinstance(data, dict):
            changed = False
            out: dict[str, Any] = {}
            for k, v in data.items():
                if str(k).lower() in self.names:
                    out[k], changed = placeholder(v), True
                else:
                    out[k], c = self._json(v)
                    changed = changed or c
            return out, changed
        if isinstance(data, list):
            items = [self._json(v) for v in data]
            return [v for v, _ in items], any(c for _, c in items)
        return data, False
