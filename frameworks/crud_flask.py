"""Flask CRUD app: an items API over SQLite, raw ``sqlite3`` or SQLAlchemy, on ``app.run()``.

    python frameworks/crud_flask.py --port 8080 [--variant sqlite3|sqlalchemy] [--db FILE]

Routes: ``GET /`` (hello), ``POST /echo``, ``GET /items/`` (all), ``POST /items/``,
``GET|PUT|DELETE /items/<id>``. Under gunicorn: ``crud_flask:create_app()`` with
``MEMPROBE_CRUD_DB`` (and ``MEMPROBE_CRUD_VARIANT``) set.
"""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request

import _crud
from _common import HELLO, TEXT_PLAIN, exit_on_sigterm

VARIANTS = ("sqlite3", "sqlalchemy")


def create_app() -> Flask:
    """The app over the database and variant the environment names."""
    path, variant = _crud.settings(VARIANTS[0])
    if variant == "sqlalchemy":
        from _crud_orm import OrmItemStore

        store: Any = OrmItemStore(path)
    else:
        store = _crud.ItemStore(path)
    app = Flask(__name__)

    @app.get("/")
    def hello() -> Response:
        return Response(HELLO, content_type=TEXT_PLAIN)

    @app.post("/echo")
    def echo() -> Any:
        return jsonify(request.get_json())

    @app.get("/items/")
    def list_items() -> Any:
        return jsonify(store.list())

    @app.post("/items/")
    def create_item() -> Any:
        data = request.get_json(silent=True)
        if not _crud.valid_item(data):
            return jsonify(error="an item needs a name and a price"), 422
        return jsonify(store.create(data)), 201

    @app.get("/items/<int:item_id>")
    def get_item(item_id: int) -> Any:
        item = store.get(item_id)
        return jsonify(item) if item else (jsonify(error="not found"), 404)

    @app.put("/items/<int:item_id>")
    def update_item(item_id: int) -> Any:
        data = request.get_json(silent=True)
        if not _crud.valid_item(data):
            return jsonify(error="an item needs a name and a price"), 422
        item = store.update(item_id, data)
        return jsonify(item) if item else (jsonify(error="not found"), 404)

    @app.delete("/items/<int:item_id>")
    def delete_item(item_id: int) -> Any:
        return ("", 204) if store.delete(item_id) else (jsonify(error="not found"), 404)

    return app


def main() -> None:
    """Parse the command line, seed a database unless given one, serve until SIGTERM."""
    args = _crud.parse_args("Flask", __doc__.splitlines()[0], VARIANTS)
    app = create_app()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    exit_on_sigterm()
    app.run(host=args.host, port=args.port, debug=False, use_reloader=False)


if __name__ == "__main__":
    main()
