"""SQLite, one connection per request through ``g``, closed when the app context ends."""
from __future__ import annotations

import sqlite3

from flask import Flask, current_app, g

SCHEMA = """
CREATE TABLE IF NOT EXISTS note (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    body TEXT NOT NULL
);
"""


def get_db() -> sqlite3.Connection:
    """The request's connection, opened on first use."""
    if "db" not in g:
        g.db = sqlite3.connect(current_app.config["DATABASE"])
        g.db.row_factory = sqlite3.Row
    return g.db


def close_db(exc: BaseException | None = None) -> None:
    """Close the request's connection, if one was opened."""
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()


def init_db() -> None:
    """Create the tables (idempotent)."""
    get_db().executescript(SCHEMA)


def init_app(app: Flask) -> None:
    """Register the teardown, and create the schema once at start-up."""
    app.teardown_appcontext(close_db)
    with app.app_context():
        init_db()
