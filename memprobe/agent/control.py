"""The agent's control channel: one JSON object per line each way, on a private Unix socket.

The socket is created with mode 0600 (the umask is set before it exists, not chmod'ed after) in a
directory only the user can read, and every connection's peer is checked with ``SO_PEERCRED``:
another user's process is turned away. ``{"cmd": "measure"}`` -> ``{"ok": true, ...}``. Commands,
one route at a time (see :class:`memprobe.agent.attribution.Attributor`):

* ``hello``: pid, app kind, framework, discovered routes;

Where the process counts the requests it served (an injected agent, :mod:`memprobe.agent.inject`),
``hello``, ``baseline`` and ``measure`` also answer ``served``, read before the garbage is
collected.
* ``begin``: a new route; tracemalloc (re)started one frame deep (``"trace": false``: stopped,
  the rounds run untraced);
* ``baseline``: collect garbage, scan the roots and count the types, answer the traced size;
* ``measure``: collect garbage, answer the traced size and tracemalloc's own overhead (when
  tracing) and the allocated blocks (and the collector's object count, when ``begin`` asked
  with ``"objects": true``);
* ``growth``: what grew since the baseline (asked right after the measured rounds);
* ``deepen``: trace ``--frames`` deep from now on, remembering the heap as it is;
* ``attribute``: the sites (when deepened), types and holders, together;
* ``lines``: for a native leak, the route's view run under memory_profiler's line profiler
  (:mod:`memprobe.agent.rsslines`; tracing stops first: its tables are RSS too).

Nothing is written to disk. :class:`AgentClient` is the parent's end.
"""
from __future__ import annotations

import json
import os
import socket
import struct
import sys
import tempfile
import threading
import time
from typing import Any, Callable

from memprobe.agent.attribution import Attributor
from memprobe.errors import AgentError, TargetError

_TIMEOUT_S = 300.0
#: Let the server threads (or event loop) finish with the connections the load just closed
#: before garbage is collected: the whole time at a route's baseline, then at most this long,
#: until the server has no more sockets open than then (Attributor.settle: the five
#: hello-worlds' readings scatter as much, and a reading of Flask or Tornado takes 0.02-0.07 s
#: instead of 0.12 s).
SETTLE_S = 0.1
_PEERCRED = struct.Struct("3i")  # pid, uid, gid


class Agent:
    """What the agent answers, for one loaded app."""

    def __init__(self, loaded: Any, frames: int, served: Callable[[], int | None] | None = None) -> None:
        self.loaded = loaded
        self.attributor = Attributor(frames, settle_s=SETTLE_S)
        self.lock = threading.Lock()
        #: requests the process served so far, where it counts them
        self.served = served

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Answer one control request (runs in a control thread, one request at a time)."""
        cmd = request.get("cmd")
        if self.served is not None and cmd in ("hello", "baseline", "measure"):
            return {"served": self.served(), **self._handle(cmd, request)}
        return self._handle(cmd, request)

    def _handle(self, cmd: Any, request: dict[str, Any]) -> dict[str, Any]:
        from memprobe.target.routes import discover_routes

        att = self.attributor
        if cmd == "hello":
            return {"pid": os.getpid(), "ppid": os.getppid(), "kind": self.loaded.kind,
                    "framework": self.loaded.framework,
                    "routes": discover_routes(self.loaded.app), "frames": att.frames,
                    "python": sys.version.split()[0]}
        if cmd == "begin":
            return att.begin(bool(request.get("trace", True)), bool(request.get("objects", False)))
        if cmd == "baseline":
            return att.baseline()
        if cmd == "measure":
            return att.measure()
        if cmd == "growth":
            return att.growth(int(request.get("requests", 0)))
        if cmd == "deepen":
            return att.deepen()
        if cmd == "attribute":
            return att.attribute(int(request.get("requests", 0)), bool(request.get("chains", True)))
        if cmd == "lines":
            from memprobe.agent.rsslines import rss_lines

            att.tracing.stop()
            return rss_lines(self.loaded.app, self.loaded.kind, str(request.get("route") or "/"),
                             int(request.get("requests", 0)),
                             float(request.get("uss_per_request", 0.0)), int(request.get("first", 0)))
        if cmd == "end":
            return att.end()
        raise ValueError(f"unknown command {cmd!r}")


#: Linux keeps a Unix socket's path in 108 bytes; memprobe's folder and socket names take ~40 of them
_MAX_BASE = 64


def socket_base() -> str:
    """Where memprobe makes the private folders of its sockets: the temporary directory, or /tmp
    when that one's path would leave a socket's path too long to bind."""
    base = tempfile.gettempdir()
    return base if len(os.fsencode(base)) <= _MAX_BASE else "/tmp"


def listen(path: str) -> socket.socket:
    """A Unix socket at ``path`` that only this user can connect to (created 0600)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # The umask is process-wide: this runs before the agent starts any thread.
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    sock.listen(4)
    return sock


def same_user(conn: socket.socket) -> bool:
    """Whether the peer of ``conn`` runs as this process's user."""
    try:
        _pid, uid, _gid = _PEERCRED.unpack(
            conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    except (OSError, AttributeError):  # no SO_PEERCRED: the 0600 socket is the only guard
        return True
    return uid == os.getuid()


def serve(sock: socket.socket, agent: Agent) -> threading.Thread:
    """Answer control connections in daemon threads; returns the accepting thread."""

    def accept() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:  # the socket was closed: the agent is stopping
                return
            if not same_user(conn):
                conn.close()
                continue
            threading.Thread(target=_connection, args=(conn, agent), daemon=True,
                             name="memprobe-control").start()

    thread = threading.Thread(target=accept, daemon=True, name="memprobe-control")
    thread.start()
    return thread


def _connection(conn: socket.socket, agent: Agent) -> None:
    with conn, conn.makefile("rwb") as stream:
        for line in stream:
            try:
                with agent.lock:
                    answer = {"ok": True, **agent.handle(json.loads(line))}
            except Exception as err:  # the parent shows it; the app keeps serving
                answer = {"ok": False, "error": f"{type(err).__name__}: {err}"}
            stream.write(json.dumps(answer).encode() + b"\n")
            stream.flush()


class AgentClient:
    """The parent's end of the control channel."""

    def __init__(self, path: str | os.PathLike[str], timeout: float = _TIMEOUT_S,
                 alive: Callable[[], None] | None = None) -> None:
        self.path = os.fspath(path)
        self.timeout = timeout
        self.alive = alive
        self._sock: socket.socket | None = None
        self._stream: Any = None

    def connect(self, deadline_s: float = 10.0) -> AgentClient:
        """Connect, retrying until the agent listens (it does before it serves HTTP)."""
        end = time.monotonic() + deadline_s
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.path)
                break
            except OSError:
                sock.close()
                if self.alive is not None:
                    self.alive()
                if time.monotonic() > end:
                    raise TargetError("the agent in the child did not open its control channel") from None
                time.sleep(0.05)
        self._sock = sock
        self._stream = sock.makefile("rwb")
        return self

    def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        """Send one command, return the answer; TargetError when the child is gone,
        AgentError when the agent failed on it."""
        if self._stream is None:
            self.connect()
        try:
            self._stream.write(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
            self._stream.flush()
            line = self._stream.readline()
        except OSError as err:
            line = b""
            reason = str(err)
        else:
            reason = "connection closed"
        if not line:
            if self.alive is not None:
                self.alive()
            raise TargetError(f"the agent stopped answering ({cmd}: {reason})")
        answer: dict[str, Any] = json.loads(line)
        if not answer.get("ok"):
            raise AgentError(f"the agent failed on {cmd}: {answer.get('error')}")
        return answer

    def close(self) -> None:
        """Close the channel (the agent keeps running)."""
        for closable in (self._stream, self._sock):
            if closable is not None:
                try:
                    closable.close()
                except OSError:
                    pass
        self._stream = self._sock = None
