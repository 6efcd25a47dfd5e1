"""The agent started inside a process memprobe did not start (``hunt --pid``), and its stop.

In a gunicorn or uvicorn worker, the app the server loaded is found among the live objects and
its requests are counted (as an injected worker's are) until :func:`stop`.

:func:`start` runs in the target (injected by :mod:`memprobe.agent.attach`): it starts the same
agent an injected worker has (:func:`memprobe.agent.inject.start`: the control channel on a Unix
socket in a private directory memprobe made, answered from a thread). The app is not served by
memprobe: it is found in the target's ``__main__`` (``app``, ``application``) only to say what it
is. :func:`stop` undoes all of it: tracing stopped, the channel's threads ended, the socket
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
    """The app in ``__main__`` (``app`` or ``application``), classified; kind None when there is
    none or it is not one memprobe knows."""
    from memprobe.target.loader import classify

    main = sys.modules.get("__main__")
    for attr in ("app", "application"):
        obj = getattr(main, attr, None)
        if obj is None:
            continue
        try:
            kind: str | None = classify(obj)
        except Exception:  # not an app memprobe knows: still huntable through HTTP
            kind = None
        return FoundApp(obj, kind)
    return FoundApp(None, None)


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
