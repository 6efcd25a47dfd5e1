"""``memprobe hammer URL``: the hammer alone, against a server that is already running."""
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import socket
import sys
from typing import Any

import psutil

from memprobe.commands import common
from memprobe.compare.watch import hammer_and_watch
from memprobe.errors import ExitCode, TargetError, UsageError
from memprobe.http.engine import sender
from memprobe.http.hammer import MODES, Hammer
from memprobe.render import render


class HammerCommand:
    """Send N requests (or run for a duration) and report; with --pid, that process tree's memory."""

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        """URL, count or duration, concurrency, timeout, mode, request shape, pid."""
        parser.add_argument("url", help="http://HOST:PORT/PATH; {n} in the path becomes the request's index")
        parser.add_argument("-n", "--requests", type=int, default=None, metavar="N",
                            help="requests to send (default 2000 unless --duration)")
        parser.add_argument("-d", "--duration", type=float, metavar="SECONDS",
                            help="run for this long instead of a count")
        parser.add_argument("-c", "--concurrency", type=int, default=10, metavar="C")
        parser.add_argument("--timeout", type=float, default=5.0, metavar="T",
                            help="seconds per request (default 5)")
        parser.add_argument("--mode", choices=MODES, default="keepalive")
        parser.add_argument("-X", "--method", default="GET")
        parser.add_argument("--body", help="request body (e.g. JSON); sets Content-Length")
        parser.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'")
        parser.add_argument("--pid", type=int, help="also read this process's memory (and its "
                            "children's, e.g. gunicorn workers) before, during and after")
        common.add_engine_options(parser)
        common.add_output_options(parser, stem="hammer")

    def run(self, args: argparse.Namespace) -> int:
        """Hammer, print, write reports. Exit 1 if any request failed."""
        headers = {}
        for h in args.header:
            name, sep, value = h.partition(":")
            if not sep:
                raise UsageError(f"a header is 'Name: value', not {h!r}")
            headers[name.strip()] = value.strip()
        if args.pid is not None and not psutil.pid_exists(args.pid):
            raise UsageError(f"no process with pid {args.pid}")
        engine_args = common.engine_options(args)
        n = args.requests if args.requests is not None or args.duration else 2000
        options: dict[str, Any] = dict(
            concurrency=args.concurrency, timeout=args.timeout, mode=args.mode, duration=args.duration,
            method=args.method, body=args.body.encode() if args.body is not None else None, headers=headers)
        # Built first: it refuses a bad URL, port or header before anything is sent.
        spec = Hammer(args.url, n, **options)
        if not listening(spec.host, spec.port):
            raise TargetError(f"nothing listens at {spec.host}:{spec.port} ({args.url})")
        with contextlib.ExitStack() as stack:
            engine = common.locust_engine(engine_args)
            if engine is not None:
                stack.callback(engine.close)
            hammer: Any = sender(args.url, n, engine=engine, **options)
            with common.progress_display(enabled=not args.quiet) as on_progress:
                if on_progress:
                    hammer.progress = lambda done, total: on_progress("hammer", "", done, total)
                result = hammer_and_watch(hammer, args.pid)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        written = common.write_outputs(result, args, stem=f"hammer-{stamp}")
        if not args.quiet:
            print(render(result, "text", color=sys.stdout.isatty()), end="")
            for path in written:
                print(f"wrote {path}", file=sys.stderr)
        return ExitCode.FAILED if result.load.failed else ExitCode.OK


def listening(host: str, port: int, timeout: float = 2.0) -> bool:
    """Whether a TCP connect to ``host:port`` succeeds within ``timeout`` seconds.

    A connect and no request: an HTTP readiness check would be one more request to the
    user's endpoint (N + 1 for a server counting them, a GET to a POST endpoint).
    """
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
