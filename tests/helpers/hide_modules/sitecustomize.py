"""Makes the modules named in MEMPROBE_TEST_HIDE (comma separated) unimportable, as if they
were not installed, for every Python process started with this folder on PYTHONPATH."""
from __future__ import annotations

import os
import sys
from importlib.abc import MetaPathFinder

_HIDDEN = {name for name in os.environ.get("MEMPROBE_TEST_HIDE", "").split(",") if name}


class _Hide(MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):  # type: ignore[no-untyped-def]
        if fullname.split(".")[0] in _HIDDEN:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


if _HIDDEN:
    sys.meta_path.insert(0, _Hide())
