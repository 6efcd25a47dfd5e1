"""``memprobe hunt TARGET``: does the app leak, how much per request, where, and what holds it."""
from __future__ import annotations

import argparse
import sys

from memprobe.errors import ExitCode, MemprobeError
from memprobe.render import render, write


class HuntCommand:
    """Run the app with the agent inside, hammer each route, print the verdict; exit 1 on a leak."""

    name = "hunt"
    help = "find whether an app leaks, how much per request, where, and what holds it"

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        """Add hunt's arguments."""
        parser.add_argument("target", nargs="?", default=None,
                            help="the app: FILE.py:APP, MODULE:APP or MODULE:FACTORY() "
                                 "(WSGI, Tornado Application or ASGI)")
        parser.add_argument("--route", action="append", dest="routes", metavar="ROUTE",
                            help="a path to hammer (repeatable); {n} is replaced by a counter. "
                                 "Default: the app's parameterless GET routes (Flask, Bottle), else /")
        parser.add_argument("--requests", type=int, default=None, metavar="N",
                            help="requests per round: a fixed count of rounds instead of deciding "
                                 "on evidence (default: rounds sized by time, see --max-requests)")
        parser.add_argument("--rounds", type=int, default=None, metavar="R",
                            help="measured rounds after the baseline, fixed (5 with --requests)")
        parser.add_argument("--thorough", action="store_true",
                            help="the fixed protocol: 5 rounds x 2000 requests per route, whatever "
                                 "the readings show")
        parser.add_argument("--max-requests", type=int, default=10_000, metavar="N",
                            help="measured requests a route may take to decide (default 10000)")
        parser.add_argument("--max-seconds", type=float, default=40.0, metavar="S",
                            help="seconds a route may take to decide (default 40)")
        parser.add_argument("--sensitivity", type=float, default=16.0, metavar="B",
                            help="a flat route stops once it could see leaks of B bytes per request "
                                 "(traced heap; default 16)")
        parser.add_argument("--jobs", "-j", default="1", metavar="N",
                            help="children hunting the routes side by side, each starting the app "
                                 "afresh (auto: one per idle core; default 1: one child, the routes "
                                 "in turn); a TARGET hunted with the native hammer only")
        parser.add_argument("--ready-timeout", type=float, default=30.0, metavar="S",
                            help="seconds the app or server may take to answer HTTP after it "
                                 "starts (default 30)")
        parser.add_argument("--warmup", type=int, default=500, metavar="K",
                            help="requests before the baseline, for each worker of a server (default 500)")
        parser.add_argument("--concurrency", type=int, default=4, metavar="C",
                            help="connections in parallel (default 4)")
        parser.add_argument("--frames", type=int, default=25, metavar="F",
                            help="traceback depth of the allocation sites (default 25)")
        parser.add_argument("--signal", choices=("traced", "blocks"), default="traced",
                            help="what the rounds are judged on inside: the traced heap (default), or "
                                 "the allocated blocks, tracemalloc on for the attribution round only "
                                 "(~2.5x faster; blind to growth inside existing blocks)")
        parser.add_argument("--json", metavar="FILE", help="write the result as JSON (partial on failure)")
        parser.add_argument("--md", metavar="FILE", help="write the result as Markdown")
        parser.add_argument("--html", metavar="FILE",
                            help="write a self-contained HTML report with plots (needs memprobe[html])")
        parser.add_argument("--mprof", metavar="FILE",
                            help="write the memory timeline in mprof's .dat format (USS at each "
                                 "reading, one span per route, one child per worker), for "
                                 "`mprof plot FILE`")
        parser.add_argument("--cmd", metavar="COMMAND",
                            help="start this server instead, e.g. \"gunicorn -w 2 app:app -b 127.0.0.1:{port}\": "
                                 "a Python server gets the agent in every worker, any other is read "
                                 "from outside")
        parser.add_argument("--outside", action="store_true",
                            help="with --cmd: read the server from outside only (USS of its processes), "
                                 "even when it runs Python")
        parser.add_argument("--pid", type=int, metavar="PID",
                            help="hunt a server that is already running: the agent is attached to "
                                 "this process (no restart) and stopped at the end; needs --url")
        parser.add_argument("--url", metavar="URL",
                            help="with --pid: where the process serves HTTP, e.g. http://127.0.0.1:5000")
        parser.add_argument("--attach-method", default="auto",
                            choices=("auto", "sys.remote_exec", "gdb", "lldb"),
                            help="with --pid: how to run code in it (default: the first that works)")
        parser.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
        from memprobe.commands.common import add_engine_options

        add_engine_options(parser)

    def run(self, args: argparse.Namespace) -> int:
        """Hunt, print the text report, write the files; 1 when a route leaks."""
        from memprobe.errors import UsageError
        from memprobe.hunt import hunt

        if args.target is None and args.cmd is None and args.pid is None:
            raise UsageError("hunt needs a TARGET (FILE.py:APP or MODULE:APP), --cmd or --pid")
        # Progress only on a terminal: in CI logs the report says it all.
        progress = None if args.quiet or not sys.stderr.isatty() else _progress
        from memprobe.commands.common import engine_options, locust_engine

        engine_args = engine_options(args)
        engine = None
        try:
            engine = locust_engine(engine_args)
            result = hunt(args.target or "", routes=args.routes, requests=args.requests,
                          rounds=args.rounds, warmup=args.warmup, concurrency=args.concurrency,
                          thorough=args.thorough, max_requests=args.max_requests,
                          max_seconds=args.max_seconds, sensitivity=args.sensitivity,
                          frames=args.frames, cmd=args.cmd, outside=args.outside, progress=progress, pid=args.pid,
                          url=args.url, attach_method=args.attach_method, load_engine=engine,
                          signal=args.signal, ready_timeout=args.ready_timeout,
                          jobs=args.jobs)
        except (MemprobeError, KeyboardInterrupt) as err:
            # Nothing measured is lost: a failed or interrupted hunt writes what it has.
            partial = getattr(err, "partial", None)
            _clear()
            if partial is not None:
                _write_files(partial, args)
            raise
        finally:
            if engine is not None:
                engine.close()
        _clear()
        sys.stdout.write(render(result, "text"))
        _write_files(result, args)
        return int(ExitCode.FAILED if result.leaked else ExitCode.OK)


def _write_files(result: object, args: argparse.Namespace) -> None:
    if args.json:
        write(result, args.json, "json")  # type: ignore[arg-type]
    if args.md:
        write(result, args.md, "markdown")  # type: ignore[arg-type]
    if getattr(args, "html", None):
        write(result, args.html, "html")  # type: ignore[arg-type]
    if getattr(args, "mprof", None):
        write(result, args.mprof, "mprof")  # type: ignore[arg-type]


_shown = False


def _progress(message: str) -> None:
    global _shown
    sys.stderr.write(f"\r\033[Kmemprobe hunt: {message}")
    sys.stderr.flush()
    _shown = True


def _clear() -> None:
    global _shown
    if _shown:
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()
        _shown = False
