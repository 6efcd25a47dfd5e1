"""Memory readings as results keep them: a reading's fields, read back, and changes between two."""
from __future__ import annotations

from typing import Any

from memprobe.process.memory import FIELDS, MemoryReading


def reading_dict(reading: MemoryReading | None) -> dict[str, int | None] | None:
    """A reading's memory fields (no timestamp), as compare rows hold them."""
    return None if reading is None else {k: getattr(reading, k) for k in FIELDS}


def reading_from(data: dict[str, Any] | None) -> MemoryReading | None:
    """A :class:`MemoryReading` from its JSON (None stays None)."""
    if not data:
        return None
    return MemoryReading(rss=int(data.get("rss") or 0), vms=int(data.get("vms") or 0), uss=data.get("uss"),
                         pss=data.get("pss"), swap=data.get("swap"), t=float(data.get("t") or 0.0))


def delta(a: MemoryReading | None, b: MemoryReading | None) -> dict[str, int | None] | None:
    """``b - a`` per field (None when either reading is missing)."""
    return None if a is None or b is None else a.delta(b)


def delta_pct(a: MemoryReading | None, b: MemoryReading | None) -> dict[str, float | None] | None:
    """``b - a`` per field in percent of ``a``."""
    if a is None or b is None:
        return None
    out: dict[str, float | None] = {}
    for k in FIELDS:
        x, y = getattr(a, k), getattr(b, k)
        out[k] = round((y - x) * 100.0 / x, 2) if x and y is not None else None
    return out
