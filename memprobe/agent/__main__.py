"""``python -m memprobe.agent TARGET --port P --control SOCKET``: serve the app, answer the parent.

It loads the target, serves it on ``127.0.0.1:PORT`` (WSGI with memprobe's own keep-alive
server, Tornado with Tornado, ASGI with uvicorn) and answers the parent on the control socket
(:mod:`memprobe.agent.control`). Tracing starts when the parent asks (before each route's
warm-up), not at start-up: importing Flask under tracemalloc with 25 frames takes ~10 s here
instead of 0.2 s. When the target fails to load, the agent writes the one-line reason to
``--error-file`` and exits with the error's code, so the parent can say why, not just "exited".
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from memprobe.agent import control
from memprobe.errors import ExitCode, MemprobeError, MissingDependency, TargetError


def serve_app(loaded: Any, port: int, workers: int) -> None:
    """Serve ``loaded.app`` on 127.0.0.1:``port`` until the process is stopped."""
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


def _report(path: str | None, message: str, code: int, kind: str) -> None:
    if path:
        Path(path).write_text(json.dumps({"message": message, "exit_code": code, "type": kind}),
                              encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Run the agent until it is killed; return an exit code when the target fails."""
    args = _parse(argv)
    from memprobe.target import load_target

    try:
        loaded = load_target(args.target)
        sock = control.listen(args.control)
        control.serve(sock, control.Agent(loaded, args.frames))
        serve_app(loaded, args.port, args.workers)
    except MemprobeError as err:
        _report(args.error_file, str(err), int(err.exit_code), type(err).__name__)
        print(f"memprobe-agent: {err}", file=sys.stderr)
        if isinstance(err, TargetError) and err.log_tail:
            print(err.log_tail, file=sys.stderr)
        return int(err.exit_code)
    except OSError as err:
        _report(args.error_file, f"cannot serve on 127.0.0.1:{args.port}: {err.strerror or err}",
                int(ExitCode.TARGET), "TargetError")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
