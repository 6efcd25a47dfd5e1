"""memprobe check's static rules as a flake8 plugin (entry point ``MP`` in ``flake8.extension``).

    flake8 --select MP myapp/

Each file flake8 gives is checked as ``memprobe check FILE`` checks it (with its package and the
deployment files beside it, by :func:`memprobe.check.engine.check_file`), and its findings come
back with the same ids, messages and lines. flake8's ``# noqa``, ``--extend-ignore`` and
``--select`` apply as to any plugin; memprobe's ``# memprobe: ignore[...]`` and ``[memprobe:check]
ignore`` in setup.cfg apply too. A setting memprobe cannot use (an unknown rule in that ignore
list) is one ``MP000`` finding on line 1 of the first file checked, once for the whole run (its
``-j`` workers too), not a crash of flake8 and not a line a file.

flake8 imports this module when it starts, for every run, whatever is selected: it imports
nothing but the standard library; the engine loads on the first file checked.
"""
from __future__ import annotations

import ast
import os
from collections.abc import Iterator

from memprobe import __version__

#: the problems this process has seen, and its claim on reporting each (a bound socket or None)
_CLAIMS: dict[str, object] = {}


class MemprobeChecker:
    """flake8's view of memprobe check: one instance per file, ``run()`` yields the findings."""

    name = "memprobe"
    version = __version__

    def __init__(self, tree: ast.AST, filename: str, lines: list[str]) -> None:
        self.filename = filename
        self.lines = lines

    def run(self) -> Iterator[tuple[int, int, str, type]]:
        """(line, column, ``"MPxxx message"``, this class) for every finding in the file."""
        from memprobe.check.engine import check_file
        from memprobe.errors import UsageError

        try:
            findings = check_file(self.filename, "".join(self.lines))
        except UsageError as err:
            if _first_to_report(str(err)):
                yield 1, 0, f"MP000 memprobe check cannot run: {err}", type(self)
            return
        for finding in findings:
            yield finding.line, finding.col, f"{finding.rule} {finding.message}", type(self)


def _first_to_report(problem: str) -> bool:
    """Whether this process is the first of its flake8 run to report ``problem``.

    flake8's ``-j`` workers are forked processes that share nothing after the fork, so the claim
    is an abstract Unix socket named after the run's main process and the problem: the first
    bind wins, and the name goes away with the process that holds it (nothing left on disk).
    """
    if problem in _CLAIMS:
        return False
    import errno
    import hashlib
    import multiprocessing
    import socket

    parent = multiprocessing.parent_process()
    run = parent.pid if parent is not None else os.getpid()
    name = f"\0memprobe-flake8-{run}-{hashlib.sha256(problem.encode()).hexdigest()[:16]}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(name)
    except OSError as err:
        sock.close()
        _CLAIMS[problem] = None
        return err.errno != errno.EADDRINUSE  # no abstract sockets here: once a process
    _CLAIMS[problem] = sock
    return True
