"""Holders with a cap (issue 15, part 2): growth that stops at the cap.

* ``/lru``: an ``lru_cache(maxsize=20000)`` keyed per request: grows for 20,000 requests;
* ``/deque``: a ``deque(maxlen=1000)`` filled per request: full in the warm-up.
"""
from __future__ import annotations

import collections
import functools
import itertools
from collections.abc import Callable, Iterable
from typing import Any

_count = itertools.count()
_recent: collections.deque[str] = collections.deque(maxlen=1000)


@functools.lru_cache(maxsize=20000)
def _profile(user_id: int) -> tuple[int, str]:
    return user_id, f"user {user_id:08d} profile"


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """``/lru`` and ``/deque``; anything else answers ok and keeps nothing."""
    path = environ.get("PATH_INFO", "/")
    n = next(_count)
    if path == "/lru":
        _profile(n)
    elif path == "/deque":
        _recent.append(f"request {n:08d} seen " + "." * 200)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
