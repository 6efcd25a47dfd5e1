"""Typed results, one per kind, each with ``to_dict()`` and ``from_dict(data)``, behind one
envelope (:mod:`memprobe.results.envelope`).

:func:`read` turns a parsed JSON document back into its typed result through the registry
:data:`KINDS`; :func:`load` reads a file. Whatever is not a memprobe result this version can
read fails there, as a :class:`~memprobe.errors.UsageError` naming the file (exit 2), so that a
renderer only ever sees a real result, and an exception inside one is a bug.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from memprobe.errors import UsageError
from memprobe.results.check import CheckResult
from memprobe.results.compare import CompareResult
from memprobe.results.diff import COMPARABLE, RunDiff
from memprobe.results.envelope import SCHEMA
from memprobe.results.hammer import HammerResult
from memprobe.results.hunt import HuntResult
from memprobe.results.plugin import BaselineResult, PytestResult
from memprobe.results.watch import WatchResult

#: result kind -> its ``from_dict``: every JSON memprobe writes (the measuring commands', the
#: side-by-side view ``report A.json B.json -o diff.json`` writes, the pytest plugin's session
#: file and its baseline)
KINDS: dict[str, Callable[[dict[str, Any]], Any]] = {
    **COMPARABLE,
    "diff": RunDiff.from_dict,
    "pytest": PytestResult.from_dict,
    "pytest-baseline": BaselineResult.from_dict,
    "watch": WatchResult.from_dict,
}

__all__ = ["KINDS", "SCHEMA", "BaselineResult", "CheckResult", "CompareResult", "HammerResult", "HuntResult",
           "PytestResult", "RunDiff", "WatchResult", "load", "read"]


def kind_of(data: Any, source: str) -> str:
    """The kind of result ``data`` is; :class:`UsageError` naming ``source`` when it is not
    one this version reads."""
    if not isinstance(data, dict):
        raise UsageError(f"{source}: not a memprobe result (the JSON is a {type(data).__name__}, "
                         "not an object)")
    # "result" names the result's type; reports written before it existed named it "kind"
    # (which in a hunt result is now the leak's kind: python, native or mixed).
    kind = data.get("result")
    if kind is None and data.get("kind") in KINDS:
        kind = data["kind"]
    if not isinstance(kind, str):
        raise UsageError(f"{source}: not a memprobe result (no \"result\" key); memprobe reports "
                         f"are the .json files compare, hunt, check, hammer, watch, report and the pytest plugin write")
    if kind not in KINDS:
        raise UsageError(f"{source}: cannot render a {kind!r} result (known: {', '.join(KINDS)})")
    schema = data.get("schema")
    if isinstance(schema, int) and schema > SCHEMA:
        raise UsageError(f"{source}: written by a newer memprobe ({data.get('memprobe', '?')}, "
                         f"schema {schema}); upgrade memprobe to render it")
    return kind


def read(data: Any, source: str) -> Any:
    """The typed result of a parsed JSON document (``source`` names it in errors)."""
    kind = kind_of(data, source)
    try:
        return KINDS[kind](data)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        version = data.get("memprobe")
        by = f"memprobe {version}" if version else "an older memprobe"
        what = f"no {err}" if isinstance(err, KeyError) else str(err)
        raise UsageError(f"{source}: not a {kind} result this memprobe can read ({what}; written by {by}?); "
                         f"run it again with this version to get a report") from None


def load(path: str | Path) -> Any:
    """Read a JSON report written by a memprobe command as its typed result."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"{path}: cannot read it ({err})") from None
    try:
        data = json.loads(text)
    except ValueError as err:
        raise UsageError(f"{path}: not JSON ({err}); give a .json report that memprobe wrote") from None
    return read(data, str(path))
