"""Former home of saved results; :mod:`memprobe.results` reads them now (``read``, ``load``).
Kept for callers not yet moved."""
from __future__ import annotations

from memprobe.results import load as load_result
from memprobe.results import read as check_data
from memprobe.results.envelope import SCHEMA

__all__ = ["SCHEMA", "check_data", "load_result"]
