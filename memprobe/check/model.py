"""The data ``memprobe check`` works with: its rules; the result it produces (findings,
checklist items, the result) is typed in :mod:`memprobe.results.check` and re-exported here."""
from __future__ import annotations

from dataclasses import dataclass

from memprobe.results.check import (
    STATUSES,
    ChecklistItem,
    CheckResult,
    Finding,
    Severity,
    SourceError,
)

__all__ = ["Rule", "STATUSES", "ChecklistItem", "CheckResult", "Finding", "Severity", "SourceError"]


@dataclass(frozen=True)
class Rule:
    """One checklist item: a stable id, a slug, and the words a user reads."""

    id: str
    slug: str
    title: str
    severity: Severity
    rationale: str
    fix: str
    #: only meaningful in a Flask app (otherwise the checklist shows it as n/a)
    flask_only: bool = False
    #: a tip that source code cannot prove: always shown as advice, never as passed
    advice_only: bool = False


