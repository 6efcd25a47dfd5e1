"""The key paths of a JSON document, for checking that a result keeps every key it had.

Lists are entered (their items' keys merged under ``[]``); a mapping whose keys are data (HTTP
statuses, pids, error names, type names) is collapsed to ``*``.
"""
from __future__ import annotations

from typing import Any

#: Objects keyed by data, not by field names.
DATA_KEYED = {"status_counts", "errors", "processes", "memory_by_role", "timings_s"}


def key_paths(data: Any, prefix: str = "") -> set[str]:
    """Every key path of ``data``: ``routes[].sites[].file``, ``results[].requests.sent``."""
    out: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            name = key
            last = prefix.rsplit(".", 1)[-1].rstrip("[]")
            if last in DATA_KEYED or key.isdigit():
                name = "*"
            path = f"{prefix}.{name}" if prefix else name
            out.add(path)
            out |= key_paths(value, path)
    elif isinstance(data, list):
        for item in data:
            out |= key_paths(item, prefix + "[]")
    return out
