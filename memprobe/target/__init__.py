"""What to run: a target spec parsed, and the app object it names loaded."""
from __future__ import annotations

from memprobe.target.loader import (
    KINDS,
    LoadedApp,
    TargetSpec,
    classify,
    import_module,
    load_target,
    parse_target,
    precheck,
    resolve,
)

__all__ = ["KINDS", "LoadedApp", "TargetSpec", "classify", "import_module", "load_target",
           "parse_target", "precheck", "resolve"]
