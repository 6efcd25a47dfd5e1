"""The agent started inside a process memprobe did not start (``hunt --pid``), and its stop.

In a gunicorn or uvicorn worker, the app the server loaded is found among the live objects and
its requests are counted (as an injected worker's are) until :func:`stop`.

:func:`start` runs in the target (injected by :mod:`memprobe.agent.attach`): it starts the same
agent an injected worker has (:func:`memprobe.agent.inject.start`: the control channel on a Unix
socket in a private directory memprobe made, answered from a thread). The app is not served by
memprobe: it is found in the target's ``__main__`` (``app``, ``application``) or among what the
process serves (CherryPy's tree, a Django handler...), only to say what it is and read its
routes. :func:`stop` undoes all of it: tracing stopped, the channel's threads ended, the socket
removed; the target is as it was but for the modules imported.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from memprobe.agent import holders, inject


@dataclass
class FoundApp:
    """The app found in ``__main__``, classified."""

    app: Any
    kind: str | None


def find_app() -> FoundApp:
    """The app in ``__main__`` (``app`` or ``application``), else the one the process serves
    (:func:`served_app`), classified; kind None when there is none or it is not one memprobe
    knows."""
    from memprobe.target.loader import classify

    main = sys.modules.get("__main__")
    found = [getattr(main, attr, None) for attr in ("app", "application")]
    obj = next((o for o in found if o is not None), None) or served_app()
    if obj is None:
        return FoundApp(None, None)
    try:
        kind: str | None = classify(obj)
    except Exception:  # not an app memprobe knows: still huntable through HTTP
        kind = None
    return FoundApp(obj, kind)


#: (module, class) of the apps a process may serve without ``__main__`` naming them
_SERVED = (("django.core.handlers.base", "BaseHandler"), ("tornado.web", "Application"),
           ("pyramid.router", "Router"), ("falcon", "App"))


def served_app() -> Any:
    """The app a process serves whose ``__main__`` names none, so that its routes can be read:
    CherryPy's tree once something is mounted on it (``cherrypy.quickstart``), else the one live
    Django handler (``manage.py runserver``), Tornado ``Application``, Pyramid router or Falcon
    app; None when there is none, or more than one."""
    import gc

    tree = getattr(sys.modules.get("cherrypy"), "tree", None)
    if tree is not None and getattr(tree, "apps", None):
        return tree
    classes = tuple(getattr(sys.modules[m], c) for m, c in _SERVED
                    if m in sys.modules and hasattr(sys.modules[m], c))
    if not classes:
        return None
    apps = [o for o in gc.get_objects() if isinstance(o, classes)]
    # runserver's StaticFilesHandler wraps the WSGIHandler: the outermost is the one served
    inner = {id(getattr(o, attr, None)) for o in apps for attr in ("application", "app")}
    outer = [o for o in apps if id(o) not in inner]
    return outer[0] if len(outer) == 1 else None


def start(channel_dir: str, frames: int = 25) -> str:
    """Start the agent in this process, answering in ``channel_dir`` (a directory only this user
    can read); return the socket's path."""
    if not inject.count_loaded():  # a worker of gunicorn or uvicorn names its app itself
        found = find_app()
        inject.adopt(found.app, found.kind)
        holders.MAIN_IS_USER = True  # the target's __main__ is the user's script
    return inject.start(channel_dir, frames)


def stop(timeout: float = 10.0) -> bool:
    """Stop tracing, end the channel's threads, remove the socket, put back the app whose
    requests were counted; False when nothing ran."""
    inject.uncount()
    return inject.stop(timeout)
