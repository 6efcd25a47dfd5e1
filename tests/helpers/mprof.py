"""``mprof plot`` run for real on a ``--mprof`` file: memory_profiler's own reader and plotter."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def plot(dat: Path) -> dict[str, Any]:
    """Draw ``dat`` with ``mprof plot -o`` (matplotlib's Agg backend) and answer what mprof read."""
    mprof = pytest.importorskip("mprof")
    pytest.importorskip("matplotlib")
    png = dat.with_suffix(".png")
    proc = subprocess.run([sys.executable, "-m", "mprof", "plot", "-o", str(png), str(dat)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MPLBACKEND": "Agg"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    read: dict[str, Any] = mprof.read_mprofile_file(str(dat))
    return read
