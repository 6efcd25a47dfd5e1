"""What to run: a target spec parsed (one parser for hunt, check and the pytest plugin), the
source it names located, and the app object loaded."""
from __future__ import annotations

from memprobe.target.loader import (
    KINDS,
    LoadedApp,
    classify,
    import_module,
    load_target,
    precheck,
    resolve,
)
from memprobe.target.spec import TargetSpec, TargetSpecError, find_module, locate, parse_target

__all__ = ["KINDS", "LoadedApp", "TargetSpec", "TargetSpecError", "classify", "find_module",
           "import_module", "load_target", "locate", "parse_target", "precheck", "resolve"]
