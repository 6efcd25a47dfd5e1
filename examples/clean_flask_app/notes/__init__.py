"""A small, memory-clean Flask app: the shape `memprobe check` expects to find nothing in.

Blueprints, an app factory, SQLite through ``flask.g`` closed in a teardown, Flask-Caching with
a threshold and timeouts, streamed exports, and a bounded ``lru_cache``.
"""
from __future__ import annotations

import os

from flask import Flask

from notes import api, db, pages
from notes.extensions import cache


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app; nothing heavy is loaded until a request needs it."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(
        DATABASE=os.path.join(app.instance_path, "notes.sqlite"),
        CACHE_TYPE="SimpleCache",
        CACHE_DEFAULT_TIMEOUT=300,
        CACHE_THRESHOLD=500,
        PAGE_SIZE=20,
    )
    if test_config:
        app.config.update(test_config)
    os.makedirs(app.instance_path, exist_ok=True)
    cache.init_app(app)
    db.init_app(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp, url_prefix="/api")
    return app
