"""Sizes as people write them and read them."""
from __future__ import annotations

import re

from memprobe.errors import UsageError

_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3,
}
_SIZE = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str | int | float) -> float:
    """Bytes from ``"64 B"``, ``"2 KiB"``, ``"1.5 MB"`` or a plain number (bytes).

    Decimal prefixes are powers of 1000 and binary ones (KiB, MiB, GiB) of 1024, as IEC says.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    match = _SIZE.match(str(text))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise UsageError(
            f"not a size: {text!r} (write e.g. '64 B', '2 KiB', '1.5 MB', '512')"
        )
    return float(match.group(1)) * _UNITS[unit]


def format_bytes(n: float | None, signed: bool = False) -> str:
    """``15.5 MiB``, ``+212 B``; ``-`` for None."""
    if n is None:
        return "-"
    sign = ("+" if n > 0 else "-" if n < 0 else "±") if signed else ("-" if n < 0 else "")
    value = abs(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            text = f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
            return sign + text
        value /= 1024
    raise AssertionError("unreachable")
