"""HTML pages: a paged list of notes and a note."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, request
from markupsafe import escape

from notes.db import get_db
from notes.extensions import cache

bp = Blueprint("pages", __name__)


@bp.route("/")
@cache.cached(timeout=30, query_string=True)
def index() -> str:
    """One page of notes: LIMIT keeps the result set as small as the page."""
    page = max(request.args.get("page", 1, type=int), 1)
    size = current_app.config["PAGE_SIZE"]
    rows = get_db().execute(
        "SELECT id, title FROM note ORDER BY id DESC LIMIT ? OFFSET ?", (size, (page - 1) * size)
    ).fetchall()
    items = "".join(f"<li>{escape(r['title'])}</li>" for r in rows)
    return f"<ul>{items}</ul>"


@bp.route("/note/<int:note_id>")
def note(note_id: int) -> str:
    """One note."""
    row = get_db().execute("SELECT title, body FROM note WHERE id = ?", (note_id,)).fetchone()
    if row is None:
        abort(404)
    return f"<h1>{escape(row['title'])}</h1><p>{escape(row['body'])}</p>"
