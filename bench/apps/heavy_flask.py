"""A Flask route that allocates 50,000 short strings per request and frees them (a report
export, a big JSON): no leak, but every request is expensive under tracemalloc.

    python -m memprobe hunt bench/apps/heavy_flask.py:app --route /export
"""
from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.get("/export")
def export() -> str:
    """Build 50,000 short strings, answer their count; all of them are freed on return."""
    rows = [f"row-{i}" for i in range(50_000)]
    return str(len(rows))
