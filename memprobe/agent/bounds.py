"""Inside the measured process: what bounds a container that grows (runs in the agent).

A cache with a cap stops growing at its cap; objects held by timers are released when the
timers fire. :func:`bounds` reads either off the container (``lru_cache``'s ``maxsize``, a
``deque``'s ``maxlen``, a cachetools cache's ``maxsize``, the ``re`` module's cache, a heap of
event-loop timers); :func:`owner_cap` reads a cap that the object owning a plain dict keeps
(cachelib's and Flask-Caching's ``SimpleCache`` threshold, Django's ``LocMemCache``
``MAX_ENTRIES``). The parent turns a cap into a ceiling in bytes and the requests left to it.
"""
from __future__ import annotations

import collections
import itertools
import re
import sys
import time
from typing import Any

#: attributes of a cache object that hold its cap on a dict it owns
_OWNER_CAPS = ("_threshold", "_max_entries", "maxsize", "max_size", "MAX_ENTRIES")
_SAMPLE = 32


def bounds(obj: Any) -> dict[str, Any] | None:
    """The cap or the timers of ``obj``, as a JSON-ready dict (None when nothing bounds it)."""
    info = getattr(obj, "cache_info", None)
    if callable(info) and hasattr(obj, "cache_clear"):
        try:
            maxsize = info().maxsize
        except Exception:  # a foreign cache_info that needs arguments
            return None
        return {"cap": int(maxsize), "by": "lru_cache maxsize"} if maxsize else None
    if isinstance(obj, collections.deque):
        return None if obj.maxlen is None else {"cap": obj.maxlen, "by": "deque maxlen",
                                                "bytes_per_entry": _per_entry(list(obj))}
    if obj is getattr(re, "_cache", None):
        return {"cap": int(getattr(re, "_MAXCACHE", 512)), "by": "re module cache (_MAXCACHE)"}
    maxsize = getattr(obj, "maxsize", None)
    if isinstance(maxsize, int) and hasattr(obj, "currsize"):  # cachetools
        return {"cap": maxsize, "by": f"{type(obj).__name__} maxsize"}
    if isinstance(obj, (list, set, collections.deque, dict)):
        return timers(obj.values() if isinstance(obj, dict) else obj)
    return None


def owner_cap(owner: Any) -> dict[str, Any] | None:
    """A cap the object ``owner`` keeps on the dicts it owns (None when it keeps none)."""
    for name in _OWNER_CAPS:
        cap = getattr(owner, name, None)
        if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0:
            return {"cap": cap, "by": f"{type(owner).__name__}.{name}"}
    return None


def timers(items: Any) -> dict[str, Any] | None:
    """How many event-loop timers ``items`` holds, and when the first and the last fire."""
    try:
        if not any(type(h).__name__ == "TimerHandle" for h in itertools.islice(iter(items), 8)):
            return None
        sample = list(items)
    except (TypeError, RuntimeError):  # not iterable, or changed size meanwhile
        return None
    handles = [h for h in sample if type(h).__name__ == "TimerHandle"
               and callable(getattr(h, "when", None))]
    if not handles or len(handles) < len(sample) // 2:
        return None
    # asyncio's and uvloop's loop.time() both count time.monotonic()'s clock.
    now = time.monotonic()
    live = [h for h in handles if not h.cancelled()]
    due = sorted(h.when() - now for h in live) or [0.0]
    return {"timers": len(live), "due_first_s": round(due[0], 1),
            "due_median_s": round(due[len(due) // 2], 1), "due_last_s": round(due[-1], 1)}


def _per_entry(entries: list[Any]) -> float | None:
    """The mean size of the last entries, one level deep (a container and what it holds)."""
    sample = entries[-_SAMPLE:]
    if not sample:
        return None
    total = 0
    for entry in sample:
        total += sys.getsizeof(entry)
        if isinstance(entry, (tuple, list)):
            total += sum(sys.getsizeof(x) for x in entry)
        elif isinstance(entry, dict):
            total += sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in entry.items())
    return total / len(sample)


def dict_per_entry(obj: dict[Any, Any]) -> float | None:
    """The mean size of a dict's last entries (key, value and what the value holds)."""
    items = list(obj.items())[-_SAMPLE:]
    if not items:
        return None
    per = _per_entry([v for _, v in items]) or 0.0
    return per + sum(sys.getsizeof(k) for k, _ in items) / len(items) + sys.getsizeof(obj) / max(len(obj), 1)
