"""Which files are the user's code: not the standard library, not an installed package or the
script that starts one, not memprobe. Allocation sites are grouped by the user's first frame,
holders searched from the user's modules."""
from __future__ import annotations

import functools
import os
import sys
import sysconfig

_MEMPROBE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_SYSTEM_DIRS = tuple(sorted(
    {os.path.abspath(p) + os.sep for p in (
        sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")) if p}
    | {os.path.abspath(p) + os.sep for p in sys.path if p.endswith("-packages")},
    key=len))


def _scripts_dirs() -> frozenset[str]:
    """Where installers put the scripts that start a package (``bin/gunicorn``): the scripts
    directory of this interpreter's environment and of the one it was made from, and the
    directory of the interpreter itself."""
    dirs = {os.path.dirname(os.path.abspath(sys.executable))} if sys.executable else set()
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix}:
        try:
            path = sysconfig.get_path("scripts", vars={"base": prefix, "platbase": prefix})
        except KeyError:
            continue
        if path:
            dirs.add(os.path.abspath(path))
    return frozenset(dirs)


_SCRIPTS_DIRS = _scripts_dirs()
#: What pip's and setuptools' console-script wrappers say (pip's
#: ``sys.argv[0] = sys.argv[0].removesuffix('.exe')``, or ``re.sub(r'(-script\\.pyw|\\.exe)?$', ...)``
#: before, setuptools' ``load_entry_point``).
_WRAPPER_MARKS = (".removesuffix('.exe')", "-script\\.pyw", "load_entry_point(", "__requires__ =")


@functools.lru_cache(maxsize=512)
def is_console_script(path: str) -> bool:
    """Whether ``path`` is a script that only starts an installed package: in a virtualenv's
    (or the interpreter's) scripts directory, or in a ``bin``/``Scripts`` directory beside a
    ``pyvenv.cfg``, or a file an installer wrote as a console-script wrapper anywhere."""
    folder = os.path.dirname(path)
    if folder in _SCRIPTS_DIRS:
        return True
    if os.path.basename(folder) in ("bin", "Scripts") \
            and os.path.exists(os.path.join(os.path.dirname(folder), "pyvenv.cfg")):
        return True
    if path.endswith(".py"):
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(1024)
    except OSError:
        return False
    return head.startswith("#!") and any(mark in head for mark in _WRAPPER_MARKS)


def is_user_file(filename: str) -> bool:
    """Whether ``filename`` is the user's code: not the standard library, not an installed
    package or a script that starts one (:func:`is_console_script`), not memprobe, not a
    frozen or generated module."""
    if not filename or filename.startswith("<"):
        return False
    path = os.path.abspath(filename)
    if path.startswith(_MEMPROBE_DIR) or f"{os.sep}site-packages{os.sep}" in path \
            or f"{os.sep}dist-packages{os.sep}" in path:
        return False
    if any(path.startswith(d) for d in _SYSTEM_DIRS):
        return False
    return not is_console_script(path)
