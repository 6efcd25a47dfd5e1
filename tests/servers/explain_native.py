"""Native growth two ways (issue 15, part 3): C memory never freed, and memory freed but kept.

* ``/malloc``: 1 KiB of C memory per request through ctypes, never freed: a native leak, the
  bytes in use grow.
* ``/retention``: each request builds a working set of 1 KB buffers that grows with the
  request count, pins the top of its thread's glibc arena with one small buffer (kept until
  that thread's next request) and frees the rest: nothing leaks, every buffer is freed, but
  each thread's arena keeps the freed chunks below the pin and USS steps up with them.
"""
from __future__ import annotations

import ctypes
import itertools
import threading
from collections.abc import Callable, Iterable
from typing import Any

_libc = ctypes.CDLL(None)
_libc.malloc.restype = ctypes.c_void_p
_libc.malloc.argtypes = [ctypes.c_size_t]
_count = itertools.count()
_local = threading.local()
_CHUNK, _PIN = 1000, 65536  # names, not literals: the compiler folds b"x" * 1000 to one constant


def _malloc() -> None:
    block = _libc.malloc(1024)  # never freed
    ctypes.memset(block, 1, 1024)


def _retention() -> None:
    n = next(_count)
    chunks: list[bytes | None] = [None] * (64 + n // 4)  # one array, not one realloc per item
    for i in range(len(chunks)):
        chunks[i] = b"x" * _CHUNK
    # Bigger than any hole below: it comes from the top of the arena, so the chunks freed
    # below it stay in the arena.
    _local.pin = b"p" * _PIN
    del chunks


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """``/malloc`` and ``/retention``; anything else answers ok and keeps nothing."""
    path = environ.get("PATH_INFO", "/")
    if path == "/malloc":
        _malloc()
    elif path == "/retention":
        _retention()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
