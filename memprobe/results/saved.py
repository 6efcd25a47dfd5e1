"""Saved runs read back: a JSON report becomes a result the renderers take again.

Every renderer reads only ``result.to_dict()``, so a saved run needs no live objects: a
:class:`SavedResult` holds the JSON and hands it back. :func:`load_result` checks that the file
is a memprobe result this version can render, and says in one line what is wrong when not.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memprobe.errors import UsageError

#: The newest ``schema`` this version renders (results that carry one: compare, hammer).
SCHEMA = 1

#: kind -> keys a result of that kind must have to be rendered
REQUIRED: dict[str, tuple[str, ...]] = {
    "compare": ("settings", "results"),
    "hunt": ("target", "routes"),
    "check": ("target", "checklist", "findings", "counts"),
    "hammer": ("url", "requests", "latency_ms"),
}


@dataclass
class SavedResult:
    """A result read from its JSON: ``kind`` and ``to_dict()``, as the live one had."""

    kind: str
    data: dict[str, Any]
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON the run wrote."""
        return self.data


def check_data(data: Any, source: str) -> SavedResult:
    """Wrap ``data`` (a parsed JSON document) after checking it is a result this version
    renders; raise :class:`UsageError` naming ``source`` otherwise."""
    if not isinstance(data, dict):
        raise UsageError(f"{source}: not a memprobe result (the JSON is a {type(data).__name__}, "
                         "not an object)")
    # "result" names the result's type; reports written before it existed named it "kind"
    # (which in a hunt result is now the leak's kind: python, native or mixed).
    kind = data.get("result")
    if kind is None and data.get("kind") in REQUIRED:
        kind = data["kind"]
    if not isinstance(kind, str):
        raise UsageError(f"{source}: not a memprobe result (no \"result\" key); memprobe reports "
                         f"are the .json files compare, hunt, check and hammer write")
    if kind not in REQUIRED:
        raise UsageError(f"{source}: cannot render a {kind!r} result (known: {', '.join(REQUIRED)})")
    schema = data.get("schema")
    if isinstance(schema, int) and schema > SCHEMA:
        raise UsageError(f"{source}: written by a newer memprobe ({data.get('memprobe', '?')}, "
                         f"schema {schema}); upgrade memprobe to render it")
    missing = [k for k in REQUIRED[kind] if k not in data]
    if missing:
        version = data.get("memprobe")
        by = f"memprobe {version}" if version else "an older memprobe"
        raise UsageError(f"{source}: a {kind} result without {', '.join(missing)} (written by {by}?); "
                         f"run it again with this version to get a report")
    return SavedResult(kind, data, source)


def load_result(path: str | Path) -> SavedResult:
    """Read a JSON report written by a memprobe command."""
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
    return check_data(data, str(path))
