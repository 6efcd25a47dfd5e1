"""The referrer search on its own (issue 15, parts 0 and 1), run as a script that prints its
answers as JSON: a store in a class attribute, and dicts that only C holds (a reference taken
through the C API and never given back, as a C extension's cache would)."""
from __future__ import annotations

import ctypes
import json
import tracemalloc

tracemalloc.start(5)

from memprobe.agent import backrefs  # noqa: E402 - traced from here on


class Store:
    """A class-level store."""

    entries: dict[int, dict[str, list[int]]] = {}


def keep(n: int) -> None:
    Store.entries[n] = {"n": [n]}  # STORE


def orphan(n: int) -> None:
    kept = {"orphan": [n]}  # ORPHAN
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(kept))


def line(mark: str) -> int:
    with open(__file__, encoding="utf-8") as source:
        return next(i for i, text in enumerate(source, 1) if text.rstrip().endswith(f"# {mark}"))


for i in range(50):
    keep(i)
    orphan(i)
print(json.dumps({"store": backrefs.backref_chain(__file__, line("STORE")),
                  "orphan": backrefs.backref_chain(__file__, line("ORPHAN"))}))
