"""Sizes as people write them, and every figure as memprobe writes it for people.

The one formatting module: a renderer, the pytest plugin or an error message that shows a size,
a rate in bytes per request, a change or a source path calls a function here, so that the same
figure reads the same everywhere.
"""
from __future__ import annotations

import os
import re

from memprobe.errors import UsageError

_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3,
}
#: bytes in a KiB and in a MiB
KIB = 1024
MIB = 2**20
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
    """A size as people read it, in the largest binary unit below 1024 of it: ``512 B``,
    ``15.5 MiB``; with ``signed`` a change, ``+212 B``, ``-4.0 KiB``, ``±0 B``. ``-`` for None."""
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


def format_rate(value: float | None, error: float | None = None) -> str:
    """Bytes per request with its standard error, unit left to the caller: ``+36.0 ± 0.4``;
    ``-`` for None. A hunt's ``Rate`` carries its own error (``format_rate(rate)``); a fit gives
    both (``format_rate(fit.slope, fit.error)``). Without any error, the value alone: ``+36.0``."""
    if value is None:
        return "-"
    if error is None:
        error = getattr(value, "error", None)
    return f"{value:+.1f}" if error is None else f"{value:+.1f} ± {error:.1f}"


def format_mib(n: float | None, signed: bool = False) -> str:
    """A size in MiB without the unit, for a column whose header names it: ``15.5``; with
    ``signed`` a change, to two places since changes are small beside sizes: ``+0.12``. ``-``
    for None."""
    if n is None:
        return "-"
    return f"{n / MIB:+.2f}" if signed else f"{n / MIB:.1f}"


def format_kib(n: float, signed: bool = False) -> str:
    """A size in whole KiB without the unit: ``12``; with ``signed``: ``+12``, ``-3``."""
    return f"{n / KIB:+.0f}" if signed else f"{n / KIB:.0f}"


def format_change_short(n: float) -> str:
    """A change in a narrow column: ``+1.2M`` from a MiB up, else ``+12K``."""
    return f"{n / MIB:+.1f}M" if abs(n) >= MIB else f"{format_kib(n, signed=True)}K"


def format_pct(p: float | None) -> str:
    """A relative change: ``+5.0 %``; ``-`` for None."""
    return "-" if p is None else f"{p:+.1f} %"


def short_path(path: str) -> str:
    """A source path as a user reads it: from the installed package's name
    (``werkzeug/exceptions.py``), relative to the working directory, the standard library's
    last two parts (``json/decoder.py``), or the path as it is."""
    for marker in ("site-packages" + os.sep, "dist-packages" + os.sep):
        if marker in path:
            return path.split(marker, 1)[1]
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    if not rel.startswith(".." + os.sep):
        return rel
    parts = path.split(os.sep)
    return os.sep.join(parts[-2:]) if "python3" in path else path
