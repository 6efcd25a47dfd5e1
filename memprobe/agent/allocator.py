"""Inside the measured process: what the allocators hold, in use and free (runs in the agent).

USS that grows while nothing leaks is often memory an allocator keeps after it was freed:

* **glibc's malloc** keeps freed chunks in its arenas (one per thread, up to 8 x cores) and
  gives pages back only from the top of a heap; ``mallinfo2()`` tells the bytes in use
  (``uordblks`` + ``hblkhd``, the mmapped chunks) and the bytes free in the arenas
  (``fordblks``); ``malloc_trim(0)`` returns the free pages of every arena to the system.
* **pymalloc** (objects of 512 bytes or less) takes memory in 1 MiB arenas mapped directly
  (not through malloc) and returns an arena only when every block in it is free;
  ``sys._debugmallocstats()`` is the only reading of its arenas and writes to the C stderr,
  so it is read through a temporary file put on file descriptor 2 for the call.

:func:`read` takes both readings and this process's USS; :func:`trim` calls ``malloc_trim(0)``
and measures what it gave back; :func:`compare` answers what grew between two readings, as a
JSON-ready dict the parent judges with (:func:`memprobe.hunt.model.account`).
"""
from __future__ import annotations

import ctypes
import os
import platform
import re
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass
from typing import Any

from memprobe.process.memory import read_memory

_STDERR_LOCK = threading.Lock()
_PYMALLOC_FIELDS = {
    "arenas": re.compile(r"^# arenas allocated current\s*=\s*([\d,]+)", re.M),
    "arena_bytes": re.compile(r"^\d+ arenas \* \d+ bytes/arena\s*=\s*([\d,]+)", re.M),
    "in_blocks": re.compile(r"^# bytes in allocated blocks\s*=\s*([\d,]+)", re.M),
}


_MALLINFO = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
             "fordblks", "keepcost")


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _MALLINFO]


class _Mallinfo(ctypes.Structure):  # glibc < 2.33: int fields (they wrap past 2 GiB)
    _fields_ = [(name, ctypes.c_int) for name in _MALLINFO]


@dataclass
class State:
    """One reading: glibc's bytes in use and free (None when the C library is not glibc),
    pymalloc's arenas and the bytes in their allocated blocks, this process's USS."""

    uss: int | None
    glibc_in_use: int | None = None
    glibc_free: int | None = None
    glibc_mmapped: int | None = None
    pymalloc_arenas: int | None = None
    pymalloc_arena_bytes: int | None = None
    pymalloc_in_blocks: int | None = None
    #: ``sys.getallocatedblocks()``: readable even while tracemalloc traces
    pymalloc_blocks: int = 0

    @property
    def pymalloc_free(self) -> int | None:
        """Bytes pymalloc holds in its arenas outside allocated blocks."""
        if self.pymalloc_arena_bytes is None or self.pymalloc_in_blocks is None:
            return None
        return self.pymalloc_arena_bytes - self.pymalloc_in_blocks


def libc_name() -> str:
    """``glibc 2.36``, or what ``platform.libc_ver`` says (empty on musl)."""
    name, version = platform.libc_ver()
    return f"{name} {version}".strip()


_libc: Any = None
_mallinfo: Any = None


def _glibc() -> Any:
    global _libc, _mallinfo
    if _libc is None:
        if not libc_name().startswith("glibc"):
            _libc = False
        else:
            lib = ctypes.CDLL(None)
            if hasattr(lib, "mallinfo2"):
                _mallinfo = lib.mallinfo2
                _mallinfo.restype = _Mallinfo2
            else:
                _mallinfo = lib.mallinfo
                _mallinfo.restype = _Mallinfo
            lib.malloc_trim.argtypes = [ctypes.c_size_t]
            lib.malloc_trim.restype = ctypes.c_int
            _libc = lib
    return _libc or None


def available() -> bool:
    """Whether glibc's statistics can be read here."""
    return _glibc() is not None


def _pymalloc() -> dict[str, int]:
    """pymalloc's arenas, from ``sys._debugmallocstats()`` written to a temporary file (it
    prints nothing while tracemalloc traces: its hooks replace pymalloc's entry points)."""
    debug = getattr(sys, "_debugmallocstats", None)
    if debug is None:
        return {}
    with _STDERR_LOCK, tempfile.TemporaryFile() as out:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(out.fileno(), 2)
            debug()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    found: dict[str, int] = {}
    for name, pattern in _PYMALLOC_FIELDS.items():
        match = pattern.search(text)
        if match:
            found[name] = int(match.group(1).replace(",", ""))
    if "arenas" in found and "arena_bytes" not in found:
        found["arena_bytes"] = 0  # "0 arenas * ..." is not printed
    return found


def read() -> State:
    """The allocators now, and this process's USS."""
    state = State(uss=read_memory(os.getpid()).uss, pymalloc_blocks=sys.getallocatedblocks())
    lib = _glibc()
    if lib is not None:
        info = _mallinfo()
        state.glibc_in_use = int(info.uordblks) + int(info.hblkhd)
        state.glibc_free = int(info.fordblks)
        state.glibc_mmapped = int(info.hblkhd)
    py = _pymalloc()
    state.pymalloc_arenas = py.get("arenas")
    state.pymalloc_arena_bytes = py.get("arena_bytes")
    state.pymalloc_in_blocks = py.get("in_blocks")
    return state


def pymalloc_arenas(state: State) -> None:
    """Fill ``state``'s pymalloc arena figures (call while tracemalloc is stopped)."""
    py = _pymalloc()
    state.pymalloc_arenas = py.get("arenas", state.pymalloc_arenas)
    state.pymalloc_arena_bytes = py.get("arena_bytes", state.pymalloc_arena_bytes)
    state.pymalloc_in_blocks = py.get("in_blocks", state.pymalloc_in_blocks)


def trim() -> tuple[State, State] | None:
    """``malloc_trim(0)``: the reading before and after (None where libc is not glibc)."""
    lib = _glibc()
    if lib is None:
        return None
    before = read()
    lib.malloc_trim(0)
    return before, read()


def _delta(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else b - a


def compare(base: State, end: State, trimmed: tuple[State, State] | None,
            requests: int) -> dict[str, Any]:
    """What the allocators gained from ``base`` to ``end`` over ``requests`` requests, and what
    ``malloc_trim(0)`` gave back: JSON-ready. ``in_use_growth`` is the bytes both allocators
    hand out more; ``free_growth`` the bytes they hold free more; ``trim_released`` the USS the
    trim returned."""
    glibc = base.glibc_in_use is not None and end.glibc_in_use is not None
    out: dict[str, Any] = {
        "libc": libc_name() or "unknown",
        "glibc": glibc,
        "requests": requests,
        "before": asdict(base),
        "after": asdict(end),
        "uss_growth": _delta(base.uss, end.uss),
    }
    in_use = free = 0
    for name in ("glibc_in_use", "pymalloc_in_blocks"):
        in_use += _delta(getattr(base, name), getattr(end, name)) or 0
    free += _delta(base.glibc_free, end.glibc_free) or 0
    free += _delta(base.pymalloc_free, end.pymalloc_free) or 0
    out["in_use_growth"] = in_use
    out["free_growth"] = free
    out["pymalloc_arenas_growth"] = _delta(base.pymalloc_arenas, end.pymalloc_arenas)
    out["pymalloc_blocks_growth"] = end.pymalloc_blocks - base.pymalloc_blocks
    # Resident growth the glibc arenas do not account for (pymalloc's arenas, thread stacks,
    # other mmaps): what pymalloc's free space may explain.
    glibc_growth = (_delta(base.glibc_in_use, end.glibc_in_use) or 0) + (
        _delta(base.glibc_free, end.glibc_free) or 0)
    out["outside_glibc_growth"] = None if out["uss_growth"] is None else out["uss_growth"] - glibc_growth
    out["pymalloc_free"] = end.pymalloc_free
    if trimmed is not None:
        before, after = trimmed
        out["trim_released"] = _delta(after.uss, before.uss)
        out["trim_free_after"] = after.glibc_free
    else:
        out["trim_released"] = None
        out["trim_free_after"] = None
    return out
