"""Which files are the user's code: not the standard library, not an installed package, not
memprobe. Allocation sites are grouped by the user's first frame, holders searched from the
user's modules."""
from __future__ import annotations

import os
import sys
import sysconfig

_MEMPROBE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_SYSTEM_DIRS = tuple(sorted(
    {os.path.abspath(p) + os.sep for p in (
        sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")) if p}
    | {os.path.abspath(p) + os.sep for p in sys.path if p.endswith("-packages")},
    key=len))


def is_user_file(filename: str) -> bool:
    """Whether ``filename`` is the user's code: not the standard library, not an installed
    package, not memprobe, not a frozen or generated module."""
    if not filename or filename.startswith("<"):
        return False
    path = os.path.abspath(filename)
    if path.startswith(_MEMPROBE_DIR) or f"{os.sep}site-packages{os.sep}" in path \
            or f"{os.sep}dist-packages{os.sep}" in path:
        return False
    return not any(path.startswith(d) for d in _SYSTEM_DIRS)
