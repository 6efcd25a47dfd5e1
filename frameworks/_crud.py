"""What every ``crud_<name>.py`` shares: the items table, its 1,500 seeded records, the raw
``sqlite3`` queries, and the command line.

Standard library only, and never memprobe, like ``_common``. Run on its own it seeds a database
file, which is how memprobe prepares one that several production workers share:

    python frameworks/_crud.py seed /tmp/items.sqlite3 [--records 1500]

The schema is the one the published benchmark (Bednarz and Miłosz) describes: an ``items``
table with a name, a description and a price.
"""
from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sqlite3
import tempfile
from typing import Any, Sequence

#: How many records a fresh database holds.
RECORDS = 1500
#: The variants: the raw ``sqlite3`` module, or the framework's customary ORM.
VARIANTS = ("sqlite3", "sqlalchemy", "django-orm")
#: The environment variables a production server's workers read (they have no command line).
DB_ENV = "MEMPROBE_CRUD_DB"
VARIANT_ENV = "MEMPROBE_CRUD_VARIANT"

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name VARCHAR(100) NOT NULL,
    description VARCHAR(500) NOT NULL DEFAULT '',
    price REAL NOT NULL
)
"""
COLUMNS = ("id", "name", "description", "price")
#: SQLite's default busy timeout is 5 s; a write waiting longer than that is a failure.
BUSY_TIMEOUT_S = 5.0


def seed(path: str, records: int = RECORDS) -> None:
    """Create ``path`` afresh with the items table and ``records`` rows."""
    if os.path.exists(path):
        os.remove(path)
    with sqlite3.connect(path) as db:
        db.execute(SCHEMA)
        db.executemany(
            "INSERT INTO items (name, description, price) VALUES (?, ?, ?)",
            ((f"item {i}", f"description of item {i}", round(1 + (i % 100) * 0.25, 2))
             for i in range(1, records + 1)),
        )
    db.close()


def temporary_database(records: int = RECORDS) -> str:
    """A freshly seeded database in a temporary folder removed when the process exits."""
    folder = tempfile.mkdtemp(prefix="memprobe-crud-")
    atexit.register(shutil.rmtree, folder, True)
    path = os.path.join(folder, "items.sqlite3")
    seed(path, records)
    return path


def parse_args(distribution: str, description: str, variants: Sequence[str],
               argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``--port P [--host H] [--variant V] [--db FILE]``; without ``--db`` a temporary database
    is seeded. The result's ``db`` and ``variant`` are also exported for :func:`settings`."""
    import importlib.metadata

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port to listen on")
    parser.add_argument("--variant", choices=variants, default=variants[0],
                        help=f"data access: {' or '.join(variants)} (default {variants[0]})")
    parser.add_argument("--db", help="an already seeded SQLite file (default: a fresh temporary one)")
    parser.add_argument("--records", type=int, default=RECORDS,
                        help=f"records to seed a temporary database with (default {RECORDS})")
    parser.add_argument("--version", action="version",
                        version=importlib.metadata.version(distribution))
    args = parser.parse_args(argv)
    if args.port is None:
        parser.error("--port is required")
    args.db = args.db or temporary_database(args.records)
    os.environ[DB_ENV], os.environ[VARIANT_ENV] = args.db, args.variant
    return args


def settings(default_variant: str) -> tuple[str, str]:
    """``(database path, variant)`` from the environment (production workers), for a
    ``create_app()`` factory; raises when the database was not given."""
    path = os.environ.get(DB_ENV)
    if not path:
        raise RuntimeError(f"set {DB_ENV} to a seeded database (python _crud.py seed FILE)")
    return path, os.environ.get(VARIANT_ENV) or default_variant


class ItemStore:
    """The raw ``sqlite3`` variant: one connection per call, as a thread-per-request server
    needs (a sqlite3 connection belongs to the thread that opened it)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
        db.row_factory = sqlite3.Row
        return db

    def list(self) -> list[dict[str, Any]]:
        """Every item, by id."""
        db = self._connect()
        try:
            return [dict(row) for row in db.execute("SELECT id, name, description, price FROM items ORDER BY id")]
        finally:
            db.close()

    def get(self, item_id: int) -> dict[str, Any] | None:
        """One item, or ``None``."""
        db = self._connect()
        try:
            row = db.execute("SELECT id, name, description, price FROM items WHERE id = ?",
                             (item_id,)).fetchone()
            return dict(row) if row else None
        finally:
            db.close()

    def create(self, data: dict[str, Any]) -> dict[str, Any]:
        """Insert an item and return it with its id."""
        db = self._connect()
        try:
            with db:
                cur = db.execute("INSERT INTO items (name, description, price) VALUES (?, ?, ?)",
                                 (data["name"], data.get("description", ""), data["price"]))
            return {"id": cur.lastrowid, "name": data["name"],
                    "description": data.get("description", ""), "price": data["price"]}
        finally:
            db.close()

    def update(self, item_id: int, data: dict[str, Any]) -> dict[str, Any] | None:
        """Replace an item's fields; ``None`` when there is no such item."""
        db = self._connect()
        try:
            with db:
                cur = db.execute("UPDATE items SET name = ?, description = ?, price = ? WHERE id = ?",
                                 (data["name"], data.get("description", ""), data["price"], item_id))
            if not cur.rowcount:
                return None
            return {"id": item_id, "name": data["name"],
                    "description": data.get("description", ""), "price": data["price"]}
        finally:
            db.close()

    def delete(self, item_id: int) -> bool:
        """Delete an item; whether it existed."""
        db = self._connect()
        try:
            with db:
                return db.execute("DELETE FROM items WHERE id = ?", (item_id,)).rowcount > 0
        finally:
            db.close()


def valid_item(data: Any) -> bool:
    """Whether ``data`` is an item body: a name (str) and a price (number)."""
    return (isinstance(data, dict) and isinstance(data.get("name"), str)
            and isinstance(data.get("price"), (int, float)) and not isinstance(data.get("price"), bool)
            and isinstance(data.get("description", ""), str))


def main(argv: Sequence[str] | None = None) -> None:
    """``seed FILE [--records N]``."""
    parser = argparse.ArgumentParser(description="Seed a CRUD database for memprobe.")
    parser.add_argument("command", choices=["seed"])
    parser.add_argument("path")
    parser.add_argument("--records", type=int, default=RECORDS)
    args = parser.parse_args(argv)
    seed(args.path, args.records)


if __name__ == "__main__":
    main()
