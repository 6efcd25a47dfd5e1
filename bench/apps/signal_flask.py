"""The Flask leak corpus (tests/leak_corpus/flask_app.py) plus one leak smaller than the
corpus's smallest: ``_none.append(None)``, 8 B/request (one list slot, no new object)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "leak_corpus"))

from flask_app import app  # noqa: E402

_none: list[None] = []


@app.get("/none_append")
def none_append() -> str:
    """One list slot per request: 8 B/request, no object (the list's buffer grows)."""
    _none.append(None)
    return "ok"
