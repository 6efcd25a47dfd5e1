"""The part of memprobe that runs inside the child: ``python -m memprobe.agent TARGET ...``.

It loads the target, serves it on ``127.0.0.1:PORT`` (WSGI with memprobe's own keep-alive
server, Tornado with Tornado, ASGI with uvicorn) and answers the parent on a private Unix socket
in a directory only the user can read. The protocol is one JSON object per line each way:
``{"cmd": "measure"}`` -> ``{"ok": true, ...}``.

Tracing starts when the parent asks (before each route's warm-up), not at start-up: importing
Flask under tracemalloc with 25 frames takes ~10 s here instead of 0.2 s. Commands:

* ``hello``: pid, app kind, framework, discovered routes;
* ``trace``: (re)start tracemalloc, one frame deep unless told otherwise;
* ``baseline``: collect garbage, scan the roots and count the types, answer the traced size;
* ``measure``: collect garbage, answer the traced size and tracemalloc's own overhead;
* ``growth``: collect, answer which containers and types grew since the baseline (asked right
  after the measured rounds, while tracing is still one frame deep);
* ``attribute``: trace ``--frames`` deep from now on and dump a snapshot for the parent;
* ``snapshot``: dump a snapshot now; ``chain``: a referrer chain from objects made at file:line.

:class:`AgentClient` is the parent's side. When the target fails to load, the agent writes the
one-line reason to ``--error-file`` and exits 3, so the parent can say why, not just "exited".
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

from memprobe.errors import ExitCode, MemprobeError, MissingDependency, TargetError

_TIMEOUT_S = 300.0
_SETTLE_S = 0.1


def discover_routes(app: Any) -> list[str]:
    """Parameterless GET routes of a Flask (``url_map``) or Bottle (``routes``) app, sorted."""
    routes: set[str] = set()
    url_map = getattr(app, "url_map", None)
    if url_map is not None and hasattr(url_map, "iter_rules"):
        for rule in url_map.iter_rules():
            if "GET" in (rule.methods or ()) and not rule.arguments and rule.endpoint != "static":
                routes.add(rule.rule)
    elif isinstance(getattr(app, "routes", None), list):
        for route in app.routes:
            rule, method = getattr(route, "rule", None), getattr(route, "method", None)
            if isinstance(rule, str) and method in ("GET", "ANY") and "<" not in rule and ":" not in rule:
                routes.add(rule)
    return sorted(routes)


class _State:
    """What the agent remembers between commands (one route at a time)."""

    def __init__(self, loaded: Any, frames: int) -> None:
        self.loaded = loaded
        self.frames = frames
        self.roots: dict[tuple[str, ...], Any] = {}
        self.types: dict[str, list[int]] = {}
        self.lock = threading.Lock()


def _collect() -> None:
    # Let the server threads (or event loop) finish with the connections the hammer just
    # closed; then collect twice: objects freed by the first pass's finalizers become
    # collectable only then.
    time.sleep(_SETTLE_S)
    gc.collect()
    gc.collect()


def _restart_tracing(frames: int) -> None:
    if tracemalloc.is_tracing():
        tracemalloc.stop()
    tracemalloc.start(frames)


def _traced() -> int:
    return tracemalloc.get_traced_memory()[0]


def _dump(path: str) -> float:
    t0 = time.perf_counter()
    snapshot = tracemalloc.take_snapshot()
    snapshot.dump(path)
    del snapshot
    return time.perf_counter() - t0


def handle(state: _State, request: dict[str, Any]) -> dict[str, Any]:
    """Answer one control request (runs in the control thread)."""
    from memprobe.agent import holders

    cmd = request.get("cmd")
    if cmd == "hello":
        loaded = state.loaded
        return {"pid": os.getpid(), "kind": loaded.kind, "framework": loaded.framework,
                "routes": discover_routes(loaded.app), "frames": state.frames,
                "python": sys.version.split()[0]}
    if cmd == "trace":
        # One frame while the warm-up and the rounds run: the traced total is the same at any
        # depth, and deep tracebacks cost ~10x the time per allocation. Tracing starts before
        # the warm-up so that objects the warm-up made (and later replaced) are traced too.
        _restart_tracing(int(request.get("frames", 1)))
        return {"traced": _traced()}
    if cmd == "snapshot":
        _collect()
        return {"traced": _traced(), "snapshot_s": _dump(request["snapshot"])}
    if cmd == "measure":
        _collect()
        return {"traced": _traced(), "overhead": tracemalloc.get_tracemalloc_memory()}
    if cmd == "baseline":
        if not tracemalloc.is_tracing():
            _restart_tracing(1)
        _collect()
        state.roots = holders.scan_roots()
        state.types = holders.type_stats()
        _collect()
        return {"traced": _traced(), "overhead": tracemalloc.get_tracemalloc_memory()}
    if cmd == "attribute":
        _restart_tracing(state.frames)
        _collect()
        return {"traced": _traced(), "snapshot_s": _dump(request["snapshot"])}
    if cmd == "growth":
        # Called right after the measured rounds, while tracing is one frame deep: Heapy's
        # walk of the heap allocates, and under the attribution round's deep tracebacks it
        # took 3-4 s instead of 0.3-1 s.
        _collect()
        traced = _traced()
        requests = int(request.get("requests", 0))
        t0 = time.perf_counter()
        types = holders.type_stats()
        t1 = time.perf_counter()
        roots = holders.scan_roots()
        t2 = time.perf_counter()
        grown = holders.grown(state.roots, roots, requests)
        grown_types = holders.grown_types(state.types, types, requests)
        return {"traced": traced, "holders": grown, "types": grown_types,
                "timings_s": {"types": round(t1 - t0, 3), "roots": round(t2 - t1, 3)}}
    if cmd == "chain":
        _collect()
        return {"chain": holders.backref_chain(request["file"], int(request["line"]))}
    raise ValueError(f"unknown command {cmd!r}")


def _serve_control(sock: socket.socket, state: _State) -> None:
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=_control_connection, args=(conn, state), daemon=True,
                         name="memprobe-control").start()


def _control_connection(conn: socket.socket, state: _State) -> None:
    with conn, conn.makefile("rwb") as stream:
        for line in stream:
            try:
                with state.lock:
                    answer = {"ok": True, **handle(state, json.loads(line))}
            except Exception as err:  # the parent shows it; the app keeps serving
                answer = {"ok": False, "error": f"{type(err).__name__}: {err}"}
            stream.write(json.dumps(answer).encode() + b"\n")
            stream.flush()


class AgentClient:
    """The parent's end of the control channel."""

    def __init__(self, path: str | Path, timeout: float = _TIMEOUT_S,
                 alive: Callable[[], None] | None = None) -> None:
        self.path = str(path)
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
                    raise TargetError("the agent in the child did not open its control channel")
                time.sleep(0.05)
        self._sock = sock
        self._stream = sock.makefile("rwb")
        return self

    def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        """Send one command, return the answer; TargetError when the child is gone."""
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
        answer = json.loads(line)
        if not answer.get("ok"):
            raise MemprobeError(f"the agent failed on {cmd}: {answer.get('error')}")
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


def _serve_app(loaded: Any, port: int, workers: int) -> None:
    if loaded.kind == "wsgi":
        from memprobe.agent.wsgi_server import make_server

        make_server(loaded.app, port, workers=workers).serve_forever(poll_interval=0.5)
    elif loaded.kind == "tornado":
        import asyncio

        async def main() -> None:
            loaded.app.listen(port, address="127.0.0.1")
            await asyncio.Event().wait()

        asyncio.run(main())
    elif loaded.kind == "asgi":
        try:
            import uvicorn
        except ImportError:
            raise MissingDependency("uvicorn (to serve an ASGI app)", "uvicorn") from None
        uvicorn.Config  # noqa: B018 - fail here, not in a thread, when uvicorn is broken
        config = uvicorn.Config(loaded.app, host="127.0.0.1", port=port, log_level="warning",
                                access_log=False, lifespan="auto")
        uvicorn.Server(config).run()


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m memprobe.agent",
                                     description="memprobe's agent: serve TARGET and answer the parent.")
    parser.add_argument("target")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control", required=True, help="Unix socket path for the parent")
    parser.add_argument("--frames", type=int, default=25, help="tracemalloc frames per traceback")
    parser.add_argument("--error-file", help="where to write the one-line reason of a failure")
    parser.add_argument("--workers", type=int, default=16,
                        help="WSGI connections served at once (more than the client's concurrency)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the agent until it is killed; return an exit code when the target fails."""
    args = _parse(argv)
    from memprobe.target import load_target

    try:
        loaded = load_target(args.target)
        control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        control.bind(args.control)
        os.chmod(args.control, 0o600)
        control.listen(4)
        state = _State(loaded, args.frames)
        threading.Thread(target=_serve_control, args=(control, state), daemon=True,
                         name="memprobe-control").start()
        _serve_app(loaded, args.port, args.workers)
    except MemprobeError as err:
        if args.error_file:
            Path(args.error_file).write_text(json.dumps(
                {"message": str(err), "exit_code": int(err.exit_code),
                 "type": type(err).__name__}), encoding="utf-8")
        print(f"memprobe-agent: {err}", file=sys.stderr)
        if isinstance(err, TargetError) and err.log_tail:
            print(err.log_tail, file=sys.stderr)
        return int(err.exit_code)
    except OSError as err:
        if args.error_file:
            Path(args.error_file).write_text(json.dumps(
                {"message": f"cannot serve on 127.0.0.1:{args.port}: {err.strerror or err}",
                 "exit_code": int(ExitCode.TARGET), "type": "TargetError"}), encoding="utf-8")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
