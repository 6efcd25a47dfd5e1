"""``memprobe watch``: which route keeps memory in a running server, on the traffic it really gets."""
from __future__ import annotations

import argparse
import os
import sys

from memprobe.commands import common
from memprobe.errors import ExitCode, UsageError
from memprobe.results.hunt_settings import ATTACH_METHODS
from memprobe.watch.attribution import TracePolicy
from memprobe.watch.session import WatchSettings

DEFAULT = WatchSettings()


class WatchCommand:
    """Reach a server (by pid, or by starting its command), record each worker's windows,
    keep the rolling report; Ctrl-C or --duration prints it and detaches."""

    name = "watch"
    help = "watch a running server: which route keeps memory per request, at a few per cent overhead"

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        """Add watch's arguments."""
        d = DEFAULT
        parser.add_argument("--pid", type=int, metavar="PID",
                            help="a running server: a gunicorn or uvicorn master (each worker is "
                                 "attached to, and left as found), a single process, or one started "
                                 "under `memprobe run` (its agents are used)")
        parser.add_argument("--cmd", metavar="COMMAND",
                            help="start this deployment command as written, e.g. \"gunicorn -w 4 -b "
                                 "127.0.0.1:8000 app:app\", with the agent in every worker")
        parser.add_argument("--interval", type=float, default=d.interval, metavar="S",
                            help=f"seconds between the workers' windows and the report's writes (default {d.interval:g})")
        parser.add_argument("--duration", type=float, metavar="S",
                            help="stop after S seconds, as Ctrl-C would (default: until Ctrl-C)")
        parser.add_argument("--json", metavar="FILE",
                            help="the rolling report, written atomically every interval, at every new "
                                 "memory high and at the end")
        parser.add_argument("--ready-timeout", type=float, default=d.ready_timeout, metavar="S",
                            help=f"seconds the server may take to answer and its workers' agents to "
                                 f"come up (default {d.ready_timeout:g})")
        parser.add_argument("--attach-method", choices=ATTACH_METHODS, default=d.attach_method,
                            help="with --pid: how to run code in the workers (default: the first that works)")
        parser.add_argument("--windows", metavar="FILE",
                            help="no server: the report of the windows a file holds (what the in-code "
                                 "middleware, memprobe.watch.middleware, writes)")
        parser.add_argument("--budget", metavar="SIZE",
                            help="memory each worker may use (e.g. 512MiB), for the time to the limit and "
                                 "the recycling advice where no cgroup limit says")
        parser.add_argument("--metrics", metavar="[HOST:]PORT", nargs="?", const="127.0.0.1:9464",
                            help="serve the report as OpenMetrics for Prometheus (default 127.0.0.1:9464; "
                                 "memprobe[watch])")
        t = d.tracing
        parser.add_argument("--no-trace", action="store_true",
                            help="never open an attribution window (by default one worker at a time traces "
                                 "allocations for a bounded window when a route's retention shows)")
        parser.add_argument("--trace-seconds", type=float, default=t.seconds, metavar="S",
                            help=f"an attribution window's length at most (default {t.seconds:g})")
        parser.add_argument("--trace-requests", type=int, default=t.requests, metavar="N",
                            help=f"an attribution window's requests at most (default {t.requests:,})")
        parser.add_argument("--trace-sample", type=int, default=t.sample, metavar="N",
                            help=f"an attribution window traces one request in N (default {t.sample}; 1: every "
                                 f"request that runs alone)")
        parser.add_argument("--trace-share", type=float, default=t.share, metavar="F",
                            help=f"the share of a window's time its traced requests may take at most (default "
                                 f"{t.share:g}: a traced request runs about 15 times as long)")
        parser.add_argument("--trace-every", type=float, default=t.every, metavar="S",
                            help=f"seconds from one window's close to the next one's opening at least "
                                 f"(default {t.every:g})")
        parser.add_argument("--capture", metavar="FILE",
                            help="also record requests into this capture file (for hunt --replay): those of "
                                 "--capture-route, else of the routes the report flags; written each interval")
        parser.add_argument("--capture-route", action="append", default=[], metavar="ROUTE",
                            help="with --capture: capture this route, as the report names it (\"POST /orders\"; "
                                 "a bare /orders for any method); repeat for more")
        parser.add_argument("--redact", action="append", default=[], metavar="NAME",
                            help="with --capture: redact this header, query, form or JSON field (any depth) "
                                 "besides Authorization, Cookie, Set-Cookie, Proxy-Authorization; repeat for more")
        parser.add_argument("--capture-limit", metavar="N[,SIZE[,BODY]]",
                            help=f"with --capture: at most N requests, SIZE in all, BODY of a body (default "
                                 f"{d.capture_requests},{d.capture_bytes >> 20}MiB,{d.capture_body >> 10}KiB)")
        parser.add_argument("--md", metavar="FILE", help="also write the last report as Markdown")
        parser.add_argument("--html", metavar="FILE", help="also write the last report as HTML")
        parser.add_argument("--quiet", "-q", action="store_true", help="no progress line and no report")

    def run(self, args: argparse.Namespace) -> int:
        """Watch until --duration or Ctrl-C, print the report; 1 when a route leaks, 3 when the
        server exited (the report is written either way)."""
        from memprobe.render import render, write
        from memprobe.units import parse_size
        from memprobe.watch.session import watch

        budget = parse_size(args.budget) if args.budget else None
        if args.windows:
            from memprobe.watch.report import from_windows

            if args.pid is not None or args.cmd is not None:
                raise UsageError("--windows reads a file of windows: not with --pid or --cmd")
            result = from_windows(args.windows, budget)
        else:
            settings = WatchSettings(pid=args.pid, cmd=args.cmd, interval=args.interval, duration=args.duration,
                                     json=args.json, ready_timeout=args.ready_timeout,
                                     attach_method=args.attach_method, budget=budget, metrics=args.metrics,
                                     tracing=TracePolicy(not args.no_trace, args.trace_seconds, args.trace_requests,
                                                         every=args.trace_every, sample=args.trace_sample,
                                                         share=args.trace_share),
                                     capture=args.capture, capture_routes=tuple(args.capture_route),
                                     redact=tuple(args.redact))
            settings = _with_capture_limits(settings, args.capture_limit)
            status = common.StatusLine("memprobe watch", enabled=not args.quiet)
            try:
                record = watch(settings, progress=status.say)
            finally:
                status.clear()
            result = record.report()
        for option, fmt in (("md", "markdown"), ("html", "html")):
            if getattr(args, option):
                write(result, getattr(args, option), fmt)
        if args.windows and args.json:
            write(result, args.json, "json")
        if not args.quiet:
            sys.stdout.write(render(result, "text"))
            if args.json:
                print(f"wrote {args.json}", file=sys.stderr)
            if getattr(args, "capture", None) and not args.windows:
                print(f"wrote {args.capture}" if os.path.exists(args.capture)
                      else f"no request captured: {args.capture} not written", file=sys.stderr)
        return int(ExitCode.FAILED if result.verdict == "leak" else ExitCode.OK)


def _with_capture_limits(settings: WatchSettings, text: str | None) -> WatchSettings:
    """``settings`` with the bounds ``--capture-limit N[,SIZE[,BODY]]`` says."""
    from dataclasses import replace

    from memprobe.units import parse_size

    if not text:
        return settings
    parts = [p.strip() for p in text.split(",")]
    if len(parts) > 3 or not all(parts):
        raise UsageError(f"--capture-limit takes N[,SIZE[,BODY]], not {text!r}")
    try:
        out = {"capture_requests": int(parts[0])}
    except ValueError:
        raise UsageError(f"--capture-limit: {parts[0]!r} is not a number of requests") from None
    sizes = [int(parse_size(part)) for part in parts[1:]]
    return replace(settings, capture_requests=out["capture_requests"],
                   capture_bytes=sizes[0] if sizes else settings.capture_bytes,
                   capture_body=sizes[1] if len(sizes) > 1 else settings.capture_body)
