"""The clean twin of ``examples/leaky_flask``: the same routes, nothing kept per request.

    python -m memprobe hunt examples/clean_flask/app.py:app

* ``/history``  keeps the last 100 entries (a bounded deque), so it stops growing;
* ``/session``  stores a session and drops it when the request is done;
* ``/render``   caches with ``lru_cache(maxsize=128)`` on a small key space;
* ``/audit``    logs through one handler configured once at start-up.
"""
from __future__ import annotations

import collections
import functools
import itertools
import logging

from flask import Flask, request

app = Flask(__name__)
log = logging.getLogger("clean.audit")
log.addHandler(logging.NullHandler())

_ids = itertools.count()
_history: collections.deque[dict[str, str]] = collections.deque(maxlen=100)
_sessions: dict[str, dict[str, object]] = {}


@app.get("/")
def index() -> str:
    return "ok"


@app.get("/history")
def history() -> str:
    _history.append({"path": request.path, "agent": request.headers.get("User-Agent", "")})
    return f"{len(_history)} recent requests"


@app.get("/session")
def session() -> str:
    token = f"session-{next(_ids):08d}"
    _sessions[token] = {"user": request.args.get("user", "anonymous"), "items": []}
    try:
        return token
    finally:
        del _sessions[token]


@functools.lru_cache(maxsize=128)
def render_page(page: int, user: str) -> str:
    return f"<p>page {page} for {user}</p>"


@app.get("/render")
def render() -> str:
    return render_page(next(_ids) % 50, request.args.get("user", "anonymous"))


@app.get("/audit")
def audit() -> str:
    log.info("audited %s", request.path)
    return "audited"


if __name__ == "__main__":
    app.run(port=5000)
