"""``memprobe hunt TARGET``: does the app leak, how much per request, where, and what holds it."""
from __future__ import annotations

import argparse
import datetime as _dt
import sys
from typing import Any

from memprobe.commands import common
from memprobe.errors import ExitCode, UsageError
from memprobe.results.hunt import HuntFailed, HuntInterrupted
from memprobe.results.hunt_settings import ATTACH_METHODS, SIGNALS, HuntSettings, SettingError

#: The defaults every option below shows: written once, in HuntSettings.
DEFAULT = HuntSettings()


def flag(setting: str) -> str:
    """The command-line flag of a hunt setting (``max_seconds`` is ``--max-seconds``)."""
    return {"sensitivity": "--sensitivity", "attribution_requests": "the attribution round's requests",
            "method": "-X/--method", "headers": "-H/--header"}.get(setting, "--" + setting.replace("_", "-"))


def parse_headers(given: list[str] | None) -> dict[str, str] | None:
    """``-H 'Name: value'`` options as a dict (None when none); a UsageError for one that is
    not ``Name: value``."""
    if not given:
        return None
    headers = {}
    for h in given:
        name, sep, value = h.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"a header is 'Name: value', not {h!r}")
        headers[name.strip()] = value.strip()
    return headers


class HuntCommand:
    """Run the app with the agent inside, hammer each route, print the verdict; exit 1 on a
    leak, else 6 when a route answered only errors, else 5 when one is inconclusive."""

    name = "hunt"
    help = "find whether an app leaks, how much per request, where, and what holds it"

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        """Add hunt's arguments (their defaults are HuntSettings')."""
        d = DEFAULT
        parser.add_argument("target", nargs="?", default=None,
                            help="the app: FILE.py:APP, MODULE:APP or MODULE:FACTORY() "
                                 "(WSGI, Tornado Application or ASGI)")
        parser.add_argument("--route", action="append", dest="routes", metavar="ROUTE",
                            help="a path to hammer (repeatable); {n} is replaced by a counter. "
                                 "Default: the app's parameterless GET routes (Flask, Bottle), else /")
        parser.add_argument("-X", "--method", metavar="METHOD",
                            help=f"every request's method (default {d.method}), as hammer's")
        parser.add_argument("-H", "--header", action="append", dest="headers", metavar="'NAME: VALUE'",
                            help="a header every request carries (repeatable), e.g. "
                                 "-H 'Authorization: Bearer x'")
        parser.add_argument("--body", help="every request's body (e.g. JSON; sets Content-Length)")
        parser.add_argument("--replay", metavar="FILE",
                            help="the load is the requests of this capture file (memprobe watch --capture), "
                                 "route by route, the fields that vary numbered on; --route narrows its "
                                 "routes ('POST /orders', or /orders for every method)")
        parser.add_argument("--requests", type=int, default=None, metavar="N",
                            help="requests per round: a fixed count of rounds instead of deciding "
                                 "on evidence (default: rounds sized by time, see --max-requests)")
        parser.add_argument("--rounds", type=int, default=None, metavar="R",
                            help=f"measured rounds after the baseline, fixed ({d.rounds} with --requests)")
        parser.add_argument("--thorough", action="store_true",
                            help=f"the fixed protocol: {d.rounds} rounds x {d.requests} requests per route, "
                                 "whatever the readings show")
        parser.add_argument("--max-requests", type=int, metavar="N",
                            help=f"measured requests a route may take to decide (default {d.max_requests})")
        parser.add_argument("--max-seconds", type=float, metavar="S",
                            help=f"seconds a route may take to decide (default {d.max_seconds:g})")
        parser.add_argument("--sensitivity", type=float, metavar="B",
                            help="a flat route stops once it could see leaks of B bytes per request "
                                 f"(traced heap; default {d.sensitivity:g})")
        parser.add_argument("--jobs", "-j", metavar="N",
                            help="children hunting the routes side by side, each starting the app "
                                 f"afresh (auto: one per idle core; default {d.jobs}: one child, the routes "
                                 "in turn); a TARGET hunted with the native hammer only")
        parser.add_argument("--ready-timeout", type=float, metavar="S",
                            help="seconds the app or server may take to answer HTTP after it "
                                 f"starts (default {d.ready_timeout:g})")
        parser.add_argument("--warmup", type=int, metavar="K",
                            help=f"requests before the baseline, for each worker of a server (default {d.warmup})")
        parser.add_argument("--concurrency", type=int, metavar="C",
                            help=f"connections in parallel (default {d.concurrency})")
        parser.add_argument("--frames", type=int, metavar="F",
                            help=f"traceback depth of the allocation sites (default {d.frames})")
        parser.add_argument("--signal", choices=SIGNALS,
                            help=f"what the rounds are judged on inside: the traced heap (default {d.signal}), "
                                 "or the allocated blocks, tracemalloc on for the attribution round only "
                                 "(~2.5x faster; blind to growth inside existing blocks)")
        parser.add_argument("--cmd", metavar="COMMAND",
                            help="start this server instead, e.g. \"gunicorn -w 2 app:app -b 127.0.0.1:{port}\": "
                                 "a Python server gets the agent in every worker, any other is read "
                                 "from outside")
        parser.add_argument("--outside", action="store_true",
                            help="with --cmd or --pid: read the server from outside only (USS of its "
                                 "processes), even when it runs Python")
        parser.add_argument("--pid", type=int, metavar="PID",
                            help="hunt a server that is already running: the agent is attached to "
                                 "this process (no restart) and stopped at the end; needs --url")
        parser.add_argument("--url", metavar="URL",
                            help="with --pid: where the process serves HTTP, e.g. http://127.0.0.1:5000")
        parser.add_argument("--attach-method", choices=ATTACH_METHODS,
                            help=f"with --pid: how to run code in it (default {d.attach_method}: the first that works)")
        common.add_engine_options(parser)
        common.add_output_options(parser, stem="hunt")
        parser.add_argument("--mprof", metavar="FILE",
                            help="also write the memory timeline in mprof's .dat format (USS at each "
                                 "reading, one span per route, one child per worker), for "
                                 "`mprof plot FILE`")

    def run(self, args: argparse.Namespace) -> int:
        """Hunt, print the text report, write the files (what was measured, also on a failure
        or Ctrl-C); the exit code is :attr:`HuntResult.exit_code` (1 when a route leaks)."""
        from memprobe.hunt import hunt
        from memprobe.render import render
        from memprobe.render.hunt import stderr_line

        if args.target is None and args.cmd is None and args.pid is None:
            raise UsageError("hunt needs a TARGET (FILE.py:APP or MODULE:APP), --cmd or --pid")
        settings = settings_of(args)
        engine_args = common.engine_options(args)
        if settings.replay is not None and engine_args is not None:
            raise UsageError("--replay is sent by memprobe's own hammer (each recorded request in turn): "
                             "drop --engine locust")
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        status = common.StatusLine("memprobe hunt", enabled=not args.quiet)
        engine = None
        try:
            engine = common.locust_engine(engine_args)
            result = hunt(args.target or "", settings, routes=args.routes, progress=status.say,
                          load_engine=engine)
        except SettingError as err:  # one that depends on the app (a signal its mode cannot read)
            raise UsageError(err.worded(flag)) from None
        except (HuntFailed, HuntInterrupted) as err:
            status.clear()
            # Nothing measured is lost; the failure itself stays one line on stderr.
            common.write_outputs(err.partial, args, stem=f"hunt-{stamp}")
            raise
        finally:
            status.clear()
            if engine is not None:
                engine.close()
        written = common.write_outputs(result, args, stem=f"hunt-{stamp}")
        if not args.quiet:
            sys.stdout.write(render(result, "text"))
            for path in written:
                print(f"wrote {path}", file=sys.stderr)
        code = result.exit_code
        if code in (ExitCode.INCONCLUSIVE, ExitCode.ERRORS):
            # why the exit is not 0, in one line, even with --quiet
            print(stderr_line(result), file=sys.stderr)
        return int(code)


def settings_of(args: argparse.Namespace) -> HuntSettings:
    """The HuntSettings the command line chose; a setting no hunt can use is a usage error
    that names its flag."""
    choices: dict[str, Any] = {
        "requests": args.requests, "rounds": args.rounds, "thorough": args.thorough,
        "max_requests": args.max_requests, "max_seconds": args.max_seconds, "sensitivity": args.sensitivity,
        "jobs": args.jobs, "ready_timeout": args.ready_timeout, "warmup": args.warmup,
        "concurrency": args.concurrency, "frames": args.frames, "signal": args.signal, "cmd": args.cmd,
        "outside": args.outside or None, "pid": args.pid, "url": args.url, "attach_method": args.attach_method,
        "method": args.method, "headers": parse_headers(args.headers), "body": args.body,
        "replay": args.replay,
    }
    try:
        return HuntSettings.chosen(**choices)
    except SettingError as err:
        raise UsageError(err.worded(flag)) from None
