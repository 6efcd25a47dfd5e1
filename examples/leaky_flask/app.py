"""A Flask app with four typical leaks, one per route (and a clean route to compare).

    python -m memprobe hunt examples/leaky_flask/app.py:app

Each leaky route keeps something per request that nothing ever removes:

* ``/history``  appends to a module-level list;
* ``/session``  stores an entry per request in a module-level dict;
* ``/render``   calls an ``lru_cache(maxsize=None)`` function with the request's data;
* ``/audit``    adds a logging handler per request.
"""
from __future__ import annotations

import functools
import itertools
import logging

from flask import Flask, request

app = Flask(__name__)
log = logging.getLogger("leaky.audit")

_ids = itertools.count()
_history: list[dict[str, str]] = []
_sessions: dict[str, dict[str, object]] = {}


@app.get("/")
def index() -> str:
    return "ok"


@app.get("/history")
def history() -> str:
    _history.append({"path": request.path, "agent": request.headers.get("User-Agent", "")})
    return f"{len(_history)} requests seen"


@app.get("/session")
def session() -> str:
    token = f"session-{next(_ids):08d}"
    _sessions[token] = {"user": request.args.get("user", "anonymous"), "items": []}
    return token


@functools.lru_cache(maxsize=None)
def render_page(request_id: int, user: str) -> str:
    return f"<p>page {request_id} for {user}</p>"


@app.get("/render")
def render() -> str:
    return render_page(next(_ids), request.args.get("user", "anonymous"))


@app.get("/audit")
def audit() -> str:
    handler = logging.StreamHandler()
    handler.setLevel(logging.CRITICAL)
    log.addHandler(handler)
    return "audited"


if __name__ == "__main__":
    app.run(port=5000)
