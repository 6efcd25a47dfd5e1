"""The leak benchmark's cases, one function per case, shared by the apps beside this file.

Grown from tests/leak_corpus/cases.py (same functions, same marks) with the cases that fool
simple tools. Each function is one request's work and returns the response body. The truth is
by construction: the line that allocates what stays is marked ``# LEAK``, ``EXPECTED`` says
the verdicts accepted and the kind, ``HOLDERS`` the names that hold what stays.
make_manifest.py reads all three; nothing here was measured by memprobe.
"""
from __future__ import annotations

import atexit
import ctypes
import functools
import itertools
import logging
import re
import threading
from collections import deque

from lxml import etree

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
    # grown for the benchmark: what fools simple tools
    "leak_8b": (("leak",), "python"),
    "exc_keep": (("leak",), "python"),
    "atexit_registry": (("leak",), "python"),
    "lxml_mixed": (("leak",), "mixed"),
    "heavy_50k": (("clean",), None),
    "warmup_table": (("bounded", "clean"), None),
    "lazy_import": (("clean", "bounded"), None),
    "per_thread": (("clean", "bounded"), None),
    "late_cycles": (("clean",), None),
    "allocator_retention": (("clean", "bounded"), None),
}

#: case -> names any of which, found in a tool's holder, names what holds the leak
HOLDERS: dict[str, tuple[str, ...]] = {
    "list_append": ("_seen",),
    "dict_keyed": ("_by_request",),
    "lru_unbounded": ("_profile", "lru_cache"),
    "handler_per_request": ("corpus.audit", "handlers"),
    "mutable_default": ("_remember", "__defaults__"),
    "class_registry": ("Registry", "instances"),
    "leak_8b": ("_none",),
    "exc_keep": ("_errors",),
    "atexit_registry": ("atexit",),
    "lxml_mixed": ("_docs",),
}
#: case -> other functions whose ``# LEAK`` lines are that case's too
HELPERS: dict[str, tuple[str, ...]] = {
    "lru_unbounded": ("_profile",), "mutable_default": ("_remember",), "class_registry": ("Registry",),
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


@functools.lru_cache(maxsize=None)  # noqa: UP033 - the planted unbounded cache
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


# -- grown for the benchmark --------------------------------------------------------------

_none: list[None] = []


def leak_8b() -> str:
    """8 B/request: one more pointer in a list, and no new object at all."""
    _none.append(None)  # LEAK
    return "ok"


_errors: list[BaseException] = []


def exc_keep() -> str:
    """Every failed request's exception kept, with its traceback and the frames' locals."""
    try:
        raise ValueError(f"bad input {next(_ids)}")  # LEAK
    except ValueError as err:
        _errors.append(err)  # LEAK
    return "ok"


def _noop(_n: int) -> None:
    return None


def atexit_registry() -> str:
    """A clean-up callback registered per request: the interpreter's atexit list (C) holds it."""
    atexit.register(functools.partial(_noop, next(_ids)))  # LEAK
    return "ok"


_docs: list[object] = []
_XML = b"<order>" + b"<item sku='a' qty='1'>widget</item>" * 20 + b"</order>"


def lxml_mixed() -> str:
    """A parsed document kept per request: a small Python proxy over libxml2's C tree."""
    _docs.append(etree.fromstring(_XML))  # LEAK
    return "ok"


def heavy_50k() -> str:
    """50,000 objects per request, none kept."""
    values = [i * 0.5 for i in range(50_000)]
    return str(len(values))


_fill: dict[int, bytes] = {}


def warmup_table() -> str:
    """A table keyed by n % 3,000: fills over the first 3,000 requests, then stops."""
    n = next(_ids) % 3000
    if n not in _fill:
        _fill[n] = bytes(64)
    return "ok"


_tables: dict[str, object] = {}


def lazy_import() -> str:
    """The first request imports a module and builds a table; later ones reuse them."""
    if "table" not in _tables:
        import xml.dom.minidom  # the lazy import

        _tables["table"] = {i: xml.dom.minidom.Text() for i in range(5_000)}
    return "ok"


_local = threading.local()


def per_thread() -> str:
    """A 64 KiB scratch buffer per thread, reused by every request on that thread."""
    buf = getattr(_local, "buf", None)
    if buf is None:
        buf = _local.buf = bytearray(65_536)
    buf[0] = (buf[0] + 1) % 256
    return "ok"


def late_cycles() -> str:
    """A 20 kB payload in a dict that refers to itself: freed only when the collector runs."""
    node: dict[str, object] = {"payload": bytes(20_000)}
    node["self"] = node
    return "ok"


_survivors: deque[tuple[int, int]] = deque(maxlen=2000)


def allocator_retention() -> str:
    """20,000 small objects per request, 1 in 1,000 kept in a ring of 2,000: pymalloc's
    arenas stay pinned (RSS stays up) while nothing grows."""
    batch = [(i, i + 1) for i in range(20_000)]
    _survivors.extend(batch[::1000])
    return "ok"


CASES = tuple(EXPECTED)
