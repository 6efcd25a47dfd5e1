"""``memprobe check``: a Flask memory-hygiene checklist of an app's source (and, with ``--run``,
of its measured behaviour). Rules are listed in docs/check-rules.md.

    from memprobe.check import check
    result = check("myapp/")          # CheckResult: findings, checklist, errors

The names below are loaded on first use: importing a submodule (the flake8 plugin,
:mod:`memprobe.check.flake8`, imported when flake8 starts) costs nothing else.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memprobe.check.engine import check
    from memprobe.check.model import (
        ChecklistItem,
        CheckResult,
        Finding,
        Severity,
        SourceError,
    )

__all__ = ["check", "CheckResult", "ChecklistItem", "Finding", "Severity", "SourceError"]
_HOME = {"check": "memprobe.check.engine", **{name: "memprobe.check.model" for name in __all__[1:]}}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value
    return value
