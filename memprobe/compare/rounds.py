"""Repeated rounds of one measurement folded into one row: the rules live with the typed rounds
in :mod:`memprobe.results.rounds`; compare uses them from here."""
from __future__ import annotations

from memprobe.results.rounds import median_round, missing, spread

__all__ = ["median_round", "missing", "spread"]
