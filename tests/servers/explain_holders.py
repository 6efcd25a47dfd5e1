"""Leaks whose holder is a library's or the interpreter's, not the user's (issue 15, parts 0
and 1), served by the agent's threaded WSGI server (long-lived worker threads).

* ``/session``: a CherryPy ``RamSession`` per request, saved: the session store is the class
  attribute ``RamSession.cache`` (and ``RamSession.locks``), sessions expire after 60 minutes.
* ``/contextvar``: a ``ContextVar`` created and set per request: the worker thread's context
  holds every one of them, and no Python object holds the context.
"""
from __future__ import annotations

import contextvars
import itertools
from collections.abc import Callable, Iterable
from typing import Any

from cherrypy.lib.sessions import RamSession

_count = itertools.count()


def _session() -> None:
    session = RamSession()
    session.acquire_lock()
    session.load()
    session["visits"] = next(_count)
    session.save()


def _contextvar() -> None:
    n = next(_count)
    var: contextvars.ContextVar[dict[str, int]] = contextvars.ContextVar(f"request_{n}")
    var.set({"request": n})


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """``/session`` and ``/contextvar``; anything else answers ok and keeps nothing."""
    path = environ.get("PATH_INFO", "/")
    if path == "/session":
        _session()
    elif path == "/contextvar":
        _contextvar()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
