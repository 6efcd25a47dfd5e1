"""The agent's control channel: one JSON object per line each way, on a private Unix socket.

The socket is created with mode 0600 (the umask is set before it exists, not chmod'ed after) in a
directory only the user can read, and every connection's peer is checked with ``SO_PEERCRED``:
another user's process is turned away. ``{"cmd": "measure"}`` -> ``{"ok": true, ...}``. Commands,
one route at a time (see :class:`memprobe.agent.attribution.Attributor`):

* ``hello``: pid, app kind, framework, discovered routes and where they came from
  (``routes_note``);

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

``memprobe watch`` (:mod:`memprobe.agent.watching`; nothing traced, no garbage collected):

* ``watch_start``: record windows (``"interval"`` seconds each at most; ``"max_windows"`` kept
  until asked, the oldest dropped beyond); ``recording`` false, with ``why``, where the app's
  requests are not seen;
* ``watch``: the windows closed since the last call (the open one closed now), ``dropped``;
* ``watch_stop``: the last windows, and the recorder removed;
* ``capture_routes``: the routes whose requests are captured from now on (``watch --capture``:
  ``watch_start``'s ``capture`` starts the capture, :func:`memprobe.agent.watching.capture_buffer`;
  ``watch`` and ``watch_stop`` then also answer the requests recorded, ``captured``).

While a command runs, the agent sends ``{"busy": true}`` every :data:`HEARTBEAT_S` from a thread
of the connection's own, and never once the answer is sent: a parent that hears nothing at all for
:data:`LOST_AFTER_S` declares the agent lost (:class:`~memprobe.errors.AgentLost`), as Locust's
master does a worker whose heartbeats stop, while a long command that is alive (the referrer
chains, memory_profiler's line profiler) still completes. A heartbeat the agent sends is cheaper
to get right than a ping the parent sends: a ping would need a second reader on the agent's side
of the connection while the command runs, and the answer to it would say no more than a beat
does (that the process runs Python).

Nothing is written to disk. :class:`AgentClient` is the parent's end; the answers are read by
:mod:`memprobe.agent.messages`, each in one place.
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
from dataclasses import dataclass
from typing import Any, Callable

from memprobe.agent.attribution import Attributor
from memprobe.agent.messages import AttributeAnswer, Growth, HeapReading, Hello, LinesAnswer, malformed
from memprobe.capture.format import CapturedRequest
from memprobe.errors import AgentError, AgentLost, TargetError, UsageError
from memprobe.results.watch import TracedWindow, Window

#: The longest a command may take even while its heartbeats arrive (one wedged in Python while
#: the heartbeat's thread runs on).
_TIMEOUT_S = 300.0
#: While a command runs, the agent sends ``{"busy": true}`` this often.
HEARTBEAT_S = 0.5
#: Nothing at all for this long, not even a heartbeat, and the agent is lost. A C call that
#: holds the GIL stops the heartbeat's thread too; measured here (Python 3.11, 2 cores), the
#: longest silences of a 10 ms ticking thread were 0.6 s across ``gc.collect()`` of a heap of
#: 5 million tracked objects (1.3 s at 10 million) and 1.35 s across Heapy's count of it (15
#: million objects, 8.7 s in all); ``tracemalloc.take_snapshot()`` holds it ~0.8 s per million
#: traces, but the hunt restarts tracing for each route and each attribution round, so its
#: snapshots hold one round's allocations. 5 s is ~4x the longest of those.
LOST_AFTER_S = 5.0
#: Commands that walk the whole heap in C (``gc.collect()``, the roots scan, Heapy's count,
#: tracemalloc restarted or snapshotted) may hold the GIL far longer on a large heap of a loaded
#: machine: a CherryPy route keeping 10,000 exceptions with their tracebacks held it over 5 s in
#: ``growth`` under ``nice -n 19`` beside a test suite, and the hunt failed. Their silence is
#: allowed :data:`HEAVY_LOST_AFTER_S`; a wedged agent is still lost within a minute, not 300 s.
HEAVY_COMMANDS = frozenset({"begin", "baseline", "measure", "growth", "deepen", "attribute", "lines"})
HEAVY_LOST_AFTER_S = 60.0
_BUSY = b'{"busy": true}\n'
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
        from memprobe.target.routes import find_routes

        att = self.attributor
        if cmd == "hello":
            found = find_routes(self.loaded.app)
            return {"pid": os.getpid(), "ppid": os.getppid(), "kind": self.loaded.kind,
                    "framework": self.loaded.framework,
                    "routes": found.routes, "routes_note": found.note, "frames": att.frames,
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
        if cmd in ("watch_start", "watch", "watch_stop", "watch_trace", "capture_routes"):
            from memprobe.agent import watching

            if cmd == "watch_start":
                return watching.start(self.loaded, request)
            if cmd == "watch_trace":
                return watching.trace(self.loaded, request)
            if cmd == "capture_routes":
                return watching.capture_routes(self.loaded, request)
            return watching.take(self.loaded, stop=cmd == "watch_stop")
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


def serve(sock: socket.socket, agent: Agent, beat_s: float = HEARTBEAT_S) -> threading.Thread:
    """Answer control connections in daemon threads, each beating every ``beat_s`` while a
    command runs; returns the accepting thread."""

    def accept() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:  # the socket was closed: the agent is stopping
                return
            if not same_user(conn):
                conn.close()
                continue
            threading.Thread(target=_connection, args=(conn, agent, beat_s), daemon=True,
                             name="memprobe-control").start()

    thread = threading.Thread(target=accept, daemon=True, name="memprobe-control")
    thread.start()
    return thread


class _Heartbeat:
    """While a command runs on a connection, the line ``{"busy": true}`` every ``every_s``, from a
    thread of the connection's own; never after the command's answer."""

    def __init__(self, conn: socket.socket, every_s: float) -> None:
        self._conn = conn
        self._every = every_s
        # One lock for the state and the socket's writes: a beat is never sent once idle() has
        # run, so no beat follows an answer.
        self._cond = threading.Condition()
        self._busy = self._closed = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="memprobe-heartbeat")
        self._thread.start()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if not self._busy:
                    self._cond.wait()
                elif not self._cond.wait(self._every) and self._busy and not self._closed:
                    try:
                        self._conn.sendall(_BUSY)
                    except OSError:  # the parent went away; the connection's thread ends too
                        return

    def busy(self) -> None:
        """A command starts."""
        with self._cond:
            self._busy = True
            self._cond.notify()

    def answer(self, data: bytes) -> None:
        """The command is over: no more beats, then its answer."""
        with self._cond:
            self._busy = False
            self._cond.notify()
            self._conn.sendall(data)

    def stop(self) -> None:
        """The connection is over: end the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()


def _connection(conn: socket.socket, agent: Agent, beat_s: float) -> None:
    beat = _Heartbeat(conn, beat_s)
    try:
        with conn, conn.makefile("rb") as stream:
            for line in stream:
                beat.busy()
                try:
                    with agent.lock:
                        answer = {"ok": True, **agent.handle(json.loads(line))}
                except Exception as err:  # the parent shows it; the app keeps serving
                    answer = {"ok": False, "error": f"{type(err).__name__}: {err}"}
                beat.answer(json.dumps(answer).encode() + b"\n")
    except OSError:  # the parent went away mid-answer
        pass
    finally:
        beat.stop()


class AgentClient:
    """The parent's end of the control channel: one typed method per command.

    An answer may take long (the attribution round's referrer chains 2-5 s, Heapy's first count
    ~1.6 s, memory_profiler's line profiler 10 s and more): its only deadline is ``timeout``
    (300 s, for a command wedged while the agent's other threads run on). But the agent beats
    every :data:`HEARTBEAT_S` while it works, and when nothing at all arrives for
    ``lost_after_s`` the agent is declared lost (:class:`~memprobe.errors.AgentLost`): its
    process is stopped, or holds the GIL in C code that long (see :data:`LOST_AFTER_S`). A lost
    client answers nothing more; ``alive`` is called first, so that a process that died is named
    as such (it raises TargetError).
    """

    def __init__(self, path: str | os.PathLike[str], timeout: float = _TIMEOUT_S,
                 alive: Callable[[], None] | None = None, *, lost_after_s: float = LOST_AFTER_S,
                 pid: int | None = None) -> None:
        self.path = os.fspath(path)
        self.timeout = timeout
        self.alive = alive
        self.lost_after_s = lost_after_s
        #: the agent's process, known from the start or from its hello
        self.pid = pid
        self.lost: AgentLost | None = None
        self._sock: socket.socket | None = None
        self._buffer = bytearray()

    def connect(self, deadline_s: float = 10.0) -> AgentClient:
        """Connect, retrying until the agent listens (it does before it serves HTTP)."""
        end = time.monotonic() + deadline_s
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.lost_after_s)
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
        self._buffer.clear()
        return self

    # -- the commands -----------------------------------------------------------------------

    def hello(self) -> Hello:
        """Which process, what app, its routes (the client keeps the pid)."""
        return Hello.from_wire(self.call("hello"))

    def begin(self, trace: bool = True, objects: bool = False) -> HeapReading:
        """A new route: tracing restarts one frame deep (``trace`` False: stops, the rounds run
        untraced); ``objects``: readings also count the collector's objects."""
        args: dict[str, Any] = {}
        if not trace:
            args["trace"] = False
        if objects:
            args["objects"] = True
        return HeapReading.from_wire(self.call("begin", **args), "begin")

    def baseline(self) -> HeapReading:
        """After the warm-up: garbage collected, the roots scanned, the heap read."""
        return HeapReading.from_wire(self.call("baseline"), "baseline")

    def measure(self) -> HeapReading:
        """After a round: garbage collected, the heap read."""
        return HeapReading.from_wire(self.call("measure"))

    def growth(self, requests: int) -> Growth:
        """Right after the measured rounds: what grew over ``requests`` requests is noted."""
        return Growth.from_wire(self.call("growth", requests=requests))

    def deepen(self) -> HeapReading:
        """The attribution round starts: deep tracebacks from now on."""
        return HeapReading.from_wire(self.call("deepen"), "deepen")

    def attribute(self, requests: int, chains: bool = True) -> AttributeAnswer:
        """The attribution round (``requests`` of it) is over: sites, types and holders."""
        return AttributeAnswer.from_wire(self.call("attribute", requests=requests, chains=chains))

    def lines(self, route: str, requests: int, uss_per_request: float, first: int) -> LinesAnswer:
        """A native leak's lines: ``route``'s view run under memory_profiler's line profiler."""
        return LinesAnswer.from_wire(self.call("lines", route=route, requests=requests,
                                               uss_per_request=uss_per_request, first=first))

    def end(self) -> None:
        """The hunt is over, the process serves on: tracing stops, what was kept is dropped."""
        self.call("end")

    def watch_start(self, interval: float, max_windows: int | None = None,
                    capture: dict[str, Any] | None = None) -> tuple[bool, str]:
        """Start recording windows of ``interval`` seconds at most (``capture``: and requests,
        see :func:`memprobe.agent.watching.capture_buffer`): whether it records, and why not."""
        args: dict[str, Any] = {"interval": interval}
        if max_windows:
            args["max_windows"] = max_windows
        if capture is not None:
            args["capture"] = capture
        answer = self.call("watch_start", **args)
        return bool(answer.get("recording")), str(answer.get("why") or "")

    def watch_trace(self, seconds: float, requests: int, frames: int, sample: int,
                    share: float) -> tuple[bool, str]:
        """Open an attribution window in this worker (one request in ``sample`` traced, for
        ``share`` of its time at most): whether it opened, and why not."""
        answer = self.call("watch_trace", seconds=seconds, requests=requests, frames=frames, sample=sample,
                           share=share)
        return bool(answer.get("tracing")), str(answer.get("why") or "")

    def capture_routes(self, routes: list[str]) -> bool:
        """Capture the requests of these routes from now on; whether the worker captures."""
        return bool(self.call("capture_routes", routes=routes).get("capturing"))

    def watch(self, stop: bool = False) -> WatchAnswer:
        """The windows since the last call (``stop``: the last ones, and recording stops)."""
        cmd = "watch_stop" if stop else "watch"
        return WatchAnswer.from_wire(self.call(cmd), cmd)

    # -- the wire ---------------------------------------------------------------------------

    def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        """Send one command, return the answer as sent; TargetError when the agent's process is
        gone, AgentLost when it went silent, AgentError when the agent failed on the command or
        answered something that is not a JSON object."""
        if self.lost is not None:
            raise AgentLost(str(self.lost), self.lost.pid, self.lost.silent_s)
        if self._sock is None:
            self.connect()
        assert self._sock is not None
        silence = self.silence_allowed(cmd)
        try:
            self._sock.settimeout(silence)
            self._sock.sendall(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
            deadline = time.monotonic() + self.timeout
            while True:
                line = self._line(cmd, deadline, silence)
                try:
                    answer = json.loads(line)
                except ValueError:
                    raise malformed(cmd, f"not JSON: {line[:60]!r}") from None
                if not isinstance(answer, dict):
                    raise malformed(cmd, f"a JSON object was expected, not {type(answer).__name__}")
                if "ok" in answer or not answer.get("busy"):
                    break
        except TimeoutError:
            raise self._lose(cmd, f"sent nothing for {silence:g} s", silence,
                             "the process is stopped, or holds the GIL in C code") from None
        except (_Closed, OSError) as closed:
            if self.alive is not None:
                self.alive()
            raise TargetError(f"the agent stopped answering ({cmd}: {closed})") from None
        if not answer.get("ok"):
            raise AgentError(f"the agent failed on {cmd}: {answer.get('error')}")
        if cmd == "hello" and isinstance(answer.get("pid"), int):
            self.pid = answer["pid"]
        return answer

    def silence_allowed(self, cmd: str) -> float:
        """How long ``cmd`` may send nothing at all: ``lost_after_s``, or for a command that walks
        the heap in C at least :data:`HEAVY_LOST_AFTER_S`."""
        return max(self.lost_after_s, HEAVY_LOST_AFTER_S) if cmd in HEAVY_COMMANDS else self.lost_after_s

    def _line(self, cmd: str, deadline: float, silence: float) -> bytes:
        """The next line the agent sent (heartbeats included); TimeoutError after ``silence``
        seconds of silence, AgentLost once the ``deadline`` (monotonic) is past."""
        assert self._sock is not None
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[:end + 1]
                return line
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._lose(cmd, f"sent only heartbeats for {self.timeout:g} s", self.timeout,
                                 "its command is wedged")
            self._sock.settimeout(min(silence, left))
            try:
                chunk = self._sock.recv(1 << 16)
            except TimeoutError:
                if time.monotonic() >= deadline:
                    continue
                raise
            except OSError as err:
                raise _Closed(str(err)) from None
            if not chunk:
                raise _Closed("connection closed")
            self._buffer += chunk

    def _lose(self, cmd: str, what: str, silent_s: float, why: str) -> AgentLost:
        self.close()
        if self.alive is not None:
            self.alive()
        who = f"pid {self.pid}" if self.pid is not None else "the process"
        self.lost = AgentLost(f"the agent in {who} {what} while it ran {cmd}: declared lost ({why})",
                              self.pid, silent_s)
        return self.lost

    def close(self) -> None:
        """Close the channel (the agent keeps running)."""
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None
        self._buffer.clear()


@dataclass(frozen=True)
class WatchAnswer:
    """The answer to ``watch`` and ``watch_stop``."""

    windows: tuple[Window, ...] = ()
    #: windows the agent dropped since the last call (its buffer was full)
    dropped: int = 0
    recording: bool = False
    #: the per-request readings' time over the requests' own, so far
    reading_share: float = 0.0
    #: the requests captured since the last call (``watch --capture``), redacted in the worker
    captured: tuple[CapturedRequest, ...] = ()
    #: the attribution windows closed since the last call (:mod:`memprobe.agent.watch_trace`)
    traced: tuple[TracedWindow, ...] = ()
    #: whether an attribution window is open
    tracing: bool = False

    @classmethod
    def from_wire(cls, data: dict[str, Any], cmd: str = "watch") -> WatchAnswer:
        """Read the agent's answer; AgentError when it is malformed."""
        try:
            windows = tuple(Window.from_dict(w) for w in data.get("windows") or [])
            captured = tuple(CapturedRequest.from_dict(r, cmd) for r in data.get("captured") or [])
            traced = tuple(TracedWindow.from_dict(t) for t in data.get("traced") or [])
            return cls(windows, int(data.get("dropped") or 0), bool(data.get("recording")),
                       float(data.get("reading_share") or 0.0), captured, traced, bool(data.get("tracing")))
        except (KeyError, TypeError, ValueError, AttributeError, UsageError) as err:
            raise malformed(cmd, f"a window or a request could not be read ({type(err).__name__}: {err})") from None


class _Closed(Exception):
    """The connection ended or failed before the answer."""
