"""A request template: the method, target, headers and body of one request, numbered by ``{n}``.

The hammer sends one request over and over, or, given a sequence of templates, request number
``n`` from template ``n % len(templates)`` with ``{n}`` in its target and body replaced by ``n``
(``hunt --replay``: the recorded requests of a route, their ids numbered on). ``{n:06d}`` and
``{n:012x}`` format the number (a width, zero-padded, decimal or hex), so that a value keeps the
shape of the recorded one: ``1078{n:04d}`` is the id 10780000 + n, ``...-8000-{n:012x}`` a uuid.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["RequestTemplate", "render"]

#: ``{n}``, ``{n:6d}``, ``{n:012x}``
_MARK = re.compile(r"\{n(?::(0?\d{0,2}[dx]))?\}")

#: a text cut at its marks: literal, format spec, literal, format spec... literal
Parts = tuple[str, ...]


def _parts(text: str) -> Parts:
    out: list[str] = []
    last = 0
    for m in _MARK.finditer(text):
        out += [text[last:m.start()], m.group(1) or ""]
        last = m.end()
    out.append(text[last:])
    return tuple(out)


def render(parts: Parts, n: int) -> str:
    """``parts`` (from a template's text) with every mark replaced by ``n``, formatted."""
    if len(parts) == 1:
        return parts[0]
    out = [parts[0]]
    for i in range(1, len(parts), 2):
        out += [format(n, parts[i]), parts[i + 1]]
    return "".join(out)


@dataclass(frozen=True)
class RequestTemplate:
    """One request's shape; ``{n}`` (or ``{n:FORMAT}``) in ``target`` and ``body`` is the
    request's number."""

    method: str = "GET"
    #: the path and query, from ``/``
    target: str = "/"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    _target: Parts = field(init=False, repr=False, compare=False)
    _body: Parts | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_target", _parts(self.target))
        # a body is text with marks only when it decodes; other bytes go as they are
        body: Parts | None = None
        if self.body is not None:
            try:
                body = _parts(self.body.decode("utf-8"))
            except UnicodeDecodeError:
                body = None
        object.__setattr__(self, "_body", body)

    @property
    def numbered(self) -> bool:
        """Whether ``{n}`` appears in it (else every request is the same bytes)."""
        return len(self._target) > 1 or (self._body is not None and len(self._body) > 1)

    def target_for(self, n: int) -> str:
        """The target of request number ``n``."""
        return render(self._target, n)

    def body_for(self, n: int) -> bytes | None:
        """The body of request number ``n``."""
        if self._body is None or len(self._body) == 1:
            return self.body
        return render(self._body, n).encode("utf-8")
