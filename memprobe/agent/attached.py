"""The agent started inside a process memprobe did not start (``hunt --pid``), and its stop.

:func:`start` runs in the target (injected by :mod:`memprobe.agent.attach`): it opens the
control channel (:mod:`memprobe.agent.control`, the same commands as the agent of a child) on
a Unix socket in a private directory memprobe made, and answers from a thread. The app is not
served by memprobe: it is found in the target's ``__main__`` (``app``, ``application``) only to
say what it is. :func:`stop` undoes all of it: tracing stopped, the channel's threads ended, the
socket removed; the target is as it was but for the modules imported.
"""
from __future__ import annotations

import os
import socket
import sys
import threading
from dataclasses import dataclass
from typing import Any

from memprobe.agent import control, holders

SOCKET_NAME = "control.sock"


@dataclass
class FoundApp:
    """What :class:`control.Agent` needs to know of an app it did not load."""

    app: Any
    kind: str | None
    framework: str | None


class _Running:
    def __init__(self, sock: socket.socket, path: str, agent: control.Agent,
                 thread: threading.Thread) -> None:
        self.sock, self.path, self.agent, self.thread = sock, path, agent, thread


_running: _Running | None = None


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
        top = (getattr(type(obj), "__module__", "") or "").partition(".")[0]
        return FoundApp(obj, kind, top if top not in ("", "__main__") else None)
    return FoundApp(None, None, None)


def start(channel_dir: str, frames: int = 25) -> str:
    """Open the control channel in ``channel_dir`` (a directory only this user can read) and
    answer it from a thread; return the socket's path. Starting twice stops the first."""
    global _running
    if _running is not None:
        stop()
    path = os.path.join(channel_dir, SOCKET_NAME)
    # listen() sets the umask for the socket's creation; the target's threads run meanwhile,
    # but a file they create in that instant is only made private, never public.
    sock = control.listen(path)
    holders.MAIN_IS_USER = True  # the target's __main__ is the user's script
    agent = control.Agent(find_app(), frames)
    _running = _Running(sock, path, agent, control.serve(sock, agent))
    return path


def stop(timeout: float = 10.0) -> bool:
    """Stop tracing, end the channel's threads, remove the socket; False when nothing ran."""
    global _running
    running, _running = _running, None
    if running is None:
        return False
    try:
        running.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept(): close() alone does not
    except OSError:
        pass
    running.sock.close()
    running.thread.join(timeout)
    with running.agent.lock:  # a command still running finishes first
        running.agent.attributor.tracing.stop()
    try:
        os.unlink(running.path)
    except FileNotFoundError:
        pass
    for thread in threading.enumerate():  # connections memprobe has closed end by themselves
        if thread.name == "memprobe-control" and thread is not threading.current_thread():
            thread.join(timeout)
    return True
