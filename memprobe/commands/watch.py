"""``memprobe watch``: which route keeps memory in a running server, on the traffic it really gets."""
from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict

from memprobe.commands import common
from memprobe.errors import ExitCode
from memprobe.results.hunt_settings import ATTACH_METHODS
from memprobe.watch.session import WatchRecord, WatchSettings

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
        parser.add_argument("--quiet", "-q", action="store_true", help="no progress line and no summary")

    def run(self, args: argparse.Namespace) -> int:
        """Watch until --duration or Ctrl-C, print the summary; 3 when the server exited."""
        from memprobe.watch.session import watch

        settings = WatchSettings(pid=args.pid, cmd=args.cmd, interval=args.interval, duration=args.duration,
                                 json=args.json, ready_timeout=args.ready_timeout,
                                 attach_method=args.attach_method)
        status = common.StatusLine("memprobe watch", enabled=not args.quiet)
        try:
            record = watch(settings, progress=status.say)
        finally:
            status.clear()
        if not args.quiet:
            sys.stdout.write(summary(record))
            if args.json:
                print(f"wrote {args.json}", file=sys.stderr)
        return int(ExitCode.OK)


def summary(record: WatchRecord) -> str:
    """A plain summary of the windows (requests per route, the alone requests' block deltas),
    until the analysis reads them."""
    requests: dict[str, int] = defaultdict(int)
    deltas: dict[str, list[int]] = defaultdict(list)
    for window in record.windows:
        for route, n in window.requests.items():
            requests[route] += n
        for route, found in window.alone_deltas.items():
            deltas[route].extend(found)
    seconds = max((w.end for w in record.windows), default=0.0) - min((w.start for w in record.windows), default=0.0)
    lines = [f"memprobe watch: {len(record.workers)} workers ({record.how}), {len(record.windows)} windows "
             f"over {seconds:.0f} s; ended: {record.ended or 'running'}"]
    for event in record.events:
        if event["event"] != "worker joined":
            lines.append(f"  {event['t']:>8.1f} s  {event['event']} (pid {event['pid']})")
    if requests:
        lines.append(f"  {'route':<40} {'requests':>9} {'req/s':>8} {'alone':>6} {'median blocks kept':>19}")
    for route, n in sorted(requests.items(), key=lambda kv: -kv[1]):
        found = deltas.get(route) or []
        median = f"{statistics.median(found):+.1f}" if found else "-"
        rate = n / seconds if seconds > 0 else 0.0
        lines.append(f"  {route[:40]:<40} {n:>9,} {rate:>8.1f} {len(found):>6} {median:>19}")
    return "\n".join(lines) + "\n"
