"""``memprobe check``: a Flask memory-hygiene checklist of an app's source (and, with ``--run``,
of its measured behaviour). Rules are listed in docs/check-rules.md.

    from memprobe.check import check
    result = check("myapp/")          # CheckResult: findings, checklist, errors
"""
from __future__ import annotations

from memprobe.check.engine import check
from memprobe.check.model import (
    ChecklistItem,
    CheckResult,
    Finding,
    Severity,
    SourceError,
)

__all__ = ["check", "CheckResult", "ChecklistItem", "Finding", "Severity", "SourceError"]
