"""Leaks whose holder is a library's or the interpreter's, not the user's (issue 15, parts 0
and 1), served by the agent's threaded WSGI server (long-lived worker threads).

* ``/session``: a CherryPy ``RamSession`` per request, saved: the session store is the class
  attribute ``RamSession.cache`` (and ``RamSession.locks``), sessions expire after 60 minutes.
* ``/contextvar``: a ``ContextVar`` created and set per request: the worker thread's context
  holds every one of them, and no Python object holds the context.
* ``/warn``: a library warns with a new text per request: its ``__warningregistry__`` grows.
* ``/plain``: a library keeps tuples of atomic values in a module-level dict, all of them
  untracked by the garbage collector.
* ``/orphan``: a dict per request kept by a reference taken through the C API and never given
  back, as a C extension's cache would: no Python object refers to it.
"""
from __future__ import annotations

import contextvars
import ctypes
import itertools
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

from cherrypy.lib.sessions import RamSession

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "site-packages"))
import explain_lib  # noqa: E402 - a library's stores, found from its path

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


def _orphan() -> None:
    kept = {"orphan": [next(_count)]}
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(kept))


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """``/session``, ``/contextvar``, ``/warn``, ``/plain`` and ``/orphan``; anything else
    answers ok and keeps nothing."""
    path = environ.get("PATH_INFO", "/")
    if path == "/session":
        _session()
    elif path == "/contextvar":
        _contextvar()
    elif path == "/warn":
        explain_lib.old_api(next(_count))
    elif path == "/plain":
        explain_lib.remember(next(_count))
    elif path == "/orphan":
        _orphan()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
