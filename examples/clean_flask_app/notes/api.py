"""JSON API: create notes, stream an export, a bounded cache for a pure function."""
from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Iterator

from flask import Blueprint, Response, request, stream_with_context

from notes.db import get_db
from notes.extensions import cache

bp = Blueprint("api", __name__)


@lru_cache(maxsize=256)
def slug(title: str) -> str:
    """A URL slug; pure, so a bounded cache of recent titles is safe."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


@bp.post("/notes")
def create() -> tuple[dict, int]:
    """Store a note."""
    data = request.get_json(force=True)
    title, body = str(data.get("title", ""))[:200], str(data.get("body", ""))[:10_000]
    conn = get_db()
    cur = conn.execute("INSERT INTO note (title, body) VALUES (?, ?)", (title, body))
    conn.commit()
    cache.delete_memoized(count)
    return {"id": cur.lastrowid, "slug": slug(title)}, 201


@cache.memoize(timeout=60)
def count() -> int:
    """How many notes there are (cached for a minute)."""
    return get_db().execute("SELECT count(*) FROM note").fetchone()[0]


@bp.get("/notes/count")
def notes_count() -> dict:
    """The number of notes."""
    return {"count": count()}


@bp.get("/notes/export")
def export() -> Response:
    """Every note as JSON lines, streamed: one row in memory at a time."""

    def generate() -> Iterator[str]:
        for row in get_db().execute("SELECT id, title, body FROM note ORDER BY id"):
            yield json.dumps(dict(row)) + "\n"

    return Response(stream_with_context(generate()), mimetype="application/x-ndjson")
