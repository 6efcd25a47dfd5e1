"""lxml documents kept in a list (issue 15, part 3): the tree lives in libxml2's C memory, the
list and the element proxies in Python's: a mixed leak, which the allocator check must not
turn into retention."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from lxml import etree

_DOC = b"<order><item sku='a' qty='1'>first</item><item sku='b' qty='2'>second</item></order>"
_kept: list[Any] = []


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Every request parses one small document and keeps it."""
    _kept.append(etree.fromstring(_DOC))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
