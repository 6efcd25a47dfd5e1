"""Planted leaks and non-leaks, one function per case, shared by the corpus apps.

Each function is one request's work and returns the response body. The line that leaks is
marked ``# LEAK``; the corpus tests read those marks to know which line ``hunt`` must put in
its top sites. ``EXPECTED`` says which verdict (and kind) each case must get.
"""
from __future__ import annotations

import ctypes
import functools
import itertools
import logging
import re

_ids = itertools.count(1000)

#: case -> (verdicts accepted, kind when it leaks)
EXPECTED: dict[str, tuple[tuple[str, ...], str | None]] = {
    "ok": (("clean",), None),
    "list_append": (("leak",), "python"),
    "dict_keyed": (("leak",), "python"),
    "lru_unbounded": (("leak",), "python"),
    "handler_per_request": (("leak",), "python"),
    "mutable_default": (("leak",), "python"),
    "class_registry": (("leak",), "python"),
    "native_malloc": (("leak",), "native"),
    "regex_cache": (("bounded", "clean"), None),
    "bounded_cache": (("bounded", "clean"), None),
    "cycles": (("clean",), None),
    "big_alloc": (("clean",), None),
}

# -- leaks ---------------------------------------------------------------------------------

_seen: list[int] = []


def list_append() -> str:
    """One small int per request: ~36 B/request, the sensitivity bar."""
    _seen.append(next(_ids))  # LEAK
    return "ok"


_by_request: dict[str, float] = {}


def dict_keyed() -> str:
    _by_request[f"req-{next(_ids)}"] = 1.5  # LEAK
    return "ok"


@functools.lru_cache(maxsize=None)
def _profile(user_id: int) -> tuple[int, str]:
    return user_id, f"user {user_id}"  # LEAK (what the cache keeps)


def lru_unbounded() -> str:
    return _profile(next(_ids))[1]  # LEAK


_audit = logging.getLogger("corpus.audit")


def handler_per_request() -> str:
    handler = logging.NullHandler()  # LEAK
    _audit.addHandler(handler)  # LEAK
    return "ok"


def _remember(item: str, seen: list[str] = []) -> int:  # noqa: B006 - the planted bug
    seen.append(item)  # LEAK
    return len(seen)


def mutable_default() -> str:
    return str(_remember(f"item-{next(_ids)}"))  # LEAK


class Registry:
    """A class attribute that every request adds to."""

    instances: list[Registry] = []

    def __init__(self, name: str) -> None:
        self.name = name
        Registry.instances.append(self)  # LEAK


def class_registry() -> str:
    Registry(f"r{next(_ids)}")  # LEAK
    return "ok"


_libc = ctypes.CDLL(None)
_libc.malloc.restype = ctypes.c_void_p
_libc.malloc.argtypes = [ctypes.c_size_t]


def native_malloc() -> str:
    """1 KiB of C memory per request, never freed: invisible to tracemalloc."""
    block = _libc.malloc(1024)  # LEAK
    ctypes.memset(block, 1, 1024)
    return "ok"


# -- not leaks -----------------------------------------------------------------------------


def ok() -> str:
    return "ok"


def regex_cache() -> str:
    """re caches compiled patterns, up to 512 of them: bounded."""
    n = next(_ids)
    return "yes" if re.match(f"^item-{n % 2000}$", f"item-{n % 2000}") else "no"


_recent: dict[int, str] = {}


def bounded_cache() -> str:
    """A hand-made cache capped at 1,000 entries (full during the first round)."""
    n = next(_ids)
    _recent[n] = f"value {n}"
    if len(_recent) > 1000:
        del _recent[next(iter(_recent))]
    return "ok"


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None
        self.payload = "x" * 200


def cycles() -> str:
    """Reference cycles the collector frees."""
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return "ok"


def big_alloc() -> str:
    """A large per-request buffer, freed when the request ends."""
    data = bytearray(2_000_000)
    data[::4096] = b"x" * len(data[::4096])
    return str(len(data))


CASES = tuple(EXPECTED)
