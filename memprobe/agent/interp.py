"""Inside the measured process: roots that only the interpreter sees (runs in the agent).

* **each thread's contextvars context**: a ``ContextVar`` set in a long-lived worker thread is
  held by the thread's context, which the thread's C-level state holds and no Python object
  does. Python has no API to read another thread's context; the C API walks the thread states
  (``PyInterpreterState_ThreadHead``, ``PyThreadState_Next``) and the field that holds the
  context is found once, by looking in this thread's state for a context known to be current.
  The object found there is checked to be a ``contextvars.Context`` before it is used.
* **event loops** (asyncio's and uvloop's): their heaps of scheduled timers and ready callbacks,
  reached through the loop whatever thread runs it.

Every reading here is made while the other threads cannot run (a long switch interval, no call
that releases the GIL), so no thread state or context is freed under it.
"""
from __future__ import annotations

import asyncio
import contextvars
import ctypes
import gc
import itertools
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_P = ctypes.c_void_p
_WORD = ctypes.sizeof(_P)
#: how far into a thread state the context field is looked for (CPython 3.11: ~60 words in)
_SCAN_WORDS = 96


def _api() -> Any:
    api = ctypes.pythonapi
    for name, restype, argtypes in (("PyThreadState_Get", _P, []),
                                    ("PyInterpreterState_Get", _P, []),
                                    ("PyInterpreterState_ThreadHead", _P, [_P]),
                                    ("PyThreadState_Next", _P, [_P])):
        fn = getattr(api, name)
        fn.restype, fn.argtypes = restype, argtypes
    return api


_offsets: tuple[int, int] | None | bool = False


def _find(words: int, value: int, skip: int | None = None) -> int | None:
    state = _API.PyThreadState_Get()
    for i in range(words):
        offset = i * _WORD
        if offset != skip and _P.from_address(state + offset).value == value:
            return offset
    return None


def _field_offsets() -> tuple[int, int] | None:
    """Offsets of the context and the thread id in a thread state (None when not found)."""
    global _offsets
    if _offsets is False:
        found: list[int | None] = []
        for _ in range(2):  # two fresh contexts must agree on the offset
            ctx = contextvars.copy_context()
            found.append(ctx.run(_find, _SCAN_WORDS, id(ctx)))
        ident = _find(_SCAN_WORDS, threading.get_ident())
        ok = found[0] is not None and found[0] == found[1] and ident is not None
        _offsets = (found[0], ident) if ok else None  # type: ignore[assignment]
    return _offsets  # type: ignore[return-value]


try:
    _API = _api()
except (AttributeError, OSError):  # not CPython, or a build without these symbols
    _API = None


@contextmanager
def _still() -> Iterator[None]:
    """No other thread runs in the block (it makes no call that releases the GIL)."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def thread_contexts() -> list[tuple[str, contextvars.Context]]:
    """``(thread name, its current context)`` for each thread that has entered a context;
    empty where the thread states cannot be read."""
    if _API is None:
        return []
    offsets = _field_offsets()
    if offsets is None:
        return []
    context_at, ident_at = offsets
    names = {t.ident: t.name for t in threading.enumerate()}
    context_type = id(contextvars.Context)
    out: list[tuple[str, contextvars.Context]] = []
    with _still():
        state = _API.PyInterpreterState_ThreadHead(_API.PyInterpreterState_Get())
        while state:
            pointer = _P.from_address(state + context_at).value
            ident = _P.from_address(state + ident_at).value
            if pointer and _P.from_address(pointer + _WORD).value == context_type:
                ctx = ctypes.cast(pointer, ctypes.py_object).value
                out.append((names.get(ident, f"thread {ident}"), ctx))
            state = _API.PyThreadState_Next(state)
    return out


def event_loops() -> list[asyncio.AbstractEventLoop]:
    """The event loops alive in the process (asyncio's, uvloop's), not closed."""
    heap = gc.get_objects()
    # isinstance mapped in C: a Python test per object of a large heap cost a tenth of a second
    loops = itertools.compress(heap, map(isinstance, heap, itertools.repeat(asyncio.AbstractEventLoop)))
    return [loop for loop in loops if not loop.is_closed()]


def loop_thread(loop: asyncio.AbstractEventLoop) -> str:
    """The name of the thread that runs ``loop`` (``MainThread``), or ``not running``."""
    ident = getattr(loop, "_thread_id", None)
    for thread in threading.enumerate():
        if ident is not None and thread.ident == ident:
            return thread.name
    return threading.main_thread().name if loop.is_running() else "not running"


def is_timer(obj: Any) -> bool:
    """An event loop's scheduled callback (asyncio's or uvloop's ``TimerHandle``)."""
    return type(obj).__name__ == "TimerHandle" and callable(getattr(obj, "when", None))
