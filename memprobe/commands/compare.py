"""``memprobe compare [N] [TIMEOUT]``: the microframeworks side by side."""
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import sys
from pathlib import Path

from memprobe.commands.common import (
    add_engine_options,
    add_output_options,
    engine_options,
    locust_engine,
    out_dir,
    progress_display,
    write_outputs,
)
from memprobe.compare import frameworks as catalog
from memprobe.compare import scenario as scenarios
from memprobe.compare.runner import CompareResult, Settings, run
from memprobe.errors import ExitCode
from memprobe.http.hammer import MODES
from memprobe.render import render


class CompareCommand:
    """Start each framework's hello-world, hammer it with N requests, compare memory and speed."""

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        """Positional N and TIMEOUT keep the seed's meaning."""
        parser.add_argument("requests", nargs="?", type=int, default=None, metavar="N",
                            help="requests per framework (default 2000; with --scenario, the "
                            "scenario's own counts, which N scales)")
        parser.add_argument("timeout", nargs="?", type=float, default=None, metavar="TIMEOUT",
                            help="seconds each request may take (default 0.5, or the scenario's)")
        parser.add_argument("--frameworks", "-f", metavar="A,B",
                            help="which frameworks: names separated by commas, or 'all' "
                            "(default: bottle, cherrypy, flask, tornado, webpy)")
        parser.add_argument("--concurrency", "-c", type=int, default=10, metavar="C",
                            help="connections at once (default 10)")
        parser.add_argument("--mode", choices=MODES, default="keepalive",
                            help="keepalive (default): C reused connections; close: a new "
                            "connection per request; burst: all N at once, the seed's method")
        parser.add_argument("--warmup", type=int, default=0, metavar="K",
                            help="requests sent before the 'before' reading (default 0, as the seed)")
        parser.add_argument("--settle", type=float, default=2.0, metavar="SECONDS",
                            help="wait at most this long for memory to stop moving before each "
                            "reading (default 2)")
        parser.add_argument("--ready-timeout", type=float, default=30.0, metavar="S",
                            help="seconds a server may take to answer HTTP after it starts "
                            "(default 30)")
        parser.add_argument("--rounds", type=int, default=1, metavar="R",
                            help="repeat the whole run R times, a fresh process each time, and "
                            "report medians and the spread (default 1)")
        parser.add_argument("--alone", action="store_true",
                            help="start, measure and stop each framework before the next starts "
                            "(slower; by default the children run together and each settles while "
                            "the next is hammered, which lowers every USS and PSS by the pages "
                            "they share)")
        parser.add_argument("--path", default="/", help="the URL path to request (default /)")
        parser.add_argument("--scenario", metavar="NAME|FILE",
                            help="requests to send, as data: a shipped scenario "
                            f"({', '.join(scenarios.shipped())}) or a JSON file of your own; "
                            "latency and memory are reported per request kind")
        parser.add_argument("--variants", metavar="A,B",
                            help="CRUD variants to run (sqlite3, sqlalchemy, django-orm; default all)")
        parser.add_argument("--server", choices=("dev", "production"), default="dev",
                            help="dev (default): each framework's own or customary server; "
                            "production: gunicorn (gthread worker for WSGI) or uvicorn (ASGI), "
                            "memory read for the master and every worker")
        parser.add_argument("--workers", type=int, default=2, metavar="W",
                            help="production server processes (default 2)")
        parser.add_argument("--threads", type=int, default=2, metavar="T",
                            help="threads per gunicorn gthread worker (default 2)")
        add_engine_options(parser)
        add_output_options(parser, stem="compare")
        parser.add_argument("--mprof", metavar="FILE",
                            help="also write the memory timelines in mprof's .dat format (one "
                            "child per framework), for `mprof plot FILE`")

    def run(self, args: argparse.Namespace) -> int:
        """Measure, render to the terminal, write the reports; exit 3 if a framework failed."""
        chosen = scenarios.load(args.scenario) if args.scenario else None
        requests = args.requests if args.requests is not None else (chosen.total if chosen else 2000)
        timeout = args.timeout if args.timeout is not None else (
            chosen.timeout_s if chosen and chosen.timeout_s else 0.5)
        variants = tuple(v.strip() for v in args.variants.split(",") if v.strip()) if args.variants else None
        settings = Settings(
            requests=requests, timeout=timeout, concurrency=args.concurrency,
            mode=args.mode, warmup=args.warmup, settle_s=args.settle, rounds=args.rounds,
            path=args.path, scenario=chosen, server=args.server, workers=args.workers,
            threads=args.threads, variants=variants, engine=args.engine, overlap=not args.alone,
            ready_timeout=args.ready_timeout,
        )
        settings.validate()
        engine_args = engine_options(args)
        frameworks = catalog.select(args.frameworks)
        result = CompareResult(settings)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = out_dir(args)
        log_dir = Path(out) / f"compare-{stamp}-logs" if out else None
        try:
            with contextlib.ExitStack() as stack:
                engine = locust_engine(engine_args)
                if engine is not None:
                    stack.callback(engine.close)
                on_progress = stack.enter_context(progress_display(enabled=not args.quiet))
                run(frameworks, settings, log_dir=log_dir, on_progress=on_progress, result=result,
                    load_engine=engine)
        finally:
            # Written even when interrupted: nothing measured is lost.
            written = write_outputs(result, args, stem=f"compare-{stamp}")
            if result.interrupted:
                for path in written:
                    print(f"wrote partial results to {path}", file=sys.stderr)
        if not args.quiet:
            print(render(result, "text", color=sys.stdout.isatty()), end="")
            for path in written:
                print(f"wrote {path}", file=sys.stderr)
        return exit_code(result, explicit=args.frameworks is not None)


def exit_code(result: CompareResult, explicit: bool) -> int:
    """3 if a framework failed to start or crashed; 4 if one the user named explicitly is not
    installed, or if none could run at all; else 0. (Missing frameworks of the default set are
    reported, not fatal.)"""
    statuses = {r.status for r in result.results}
    if statuses & {"failed-to-start", "crashed"}:
        return ExitCode.TARGET
    if explicit and "not-installed" in statuses:
        return ExitCode.ENVIRONMENT
    if not any(r.status == "ok" for r in result.results):
        return ExitCode.ENVIRONMENT
    return ExitCode.OK
