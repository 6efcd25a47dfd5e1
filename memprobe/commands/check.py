"""``memprobe check TARGET``: the Flask memory-hygiene checklist of an app's source.

Exit codes: 0 nothing failed (warnings allowed unless ``--strict``), 1 an item failed or a file
could not be parsed, 2 usage (a target that does not exist, an unknown rule), 3/4 from ``--run``.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from memprobe.errors import ExitCode, UsageError
from memprobe.render import render, write


class CheckCommand:
    """Check the app's source against the rules in docs/check-rules.md; optionally hunt it too."""

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        """Target, rule switches, output files, and the ``--run`` measurement's settings."""
        parser.add_argument("target", nargs="+",
                            help="a package or directory, a file, or module:app / file.py:app "
                                 "(several files with --files)")
        parser.add_argument("--files", action="store_true",
                            help="the targets are files: report only what is in them, each analysed with "
                                 "its package (what flake8 and the pre-commit hook see)")
        parser.add_argument("--ignore", action="append", default=[], metavar="ID",
                            help="switch a rule off (id or slug; repeat or comma-separate)")
        parser.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
        parser.add_argument("--include-tests", action="store_true",
                            help="also check tests/ directories and test_*.py files")
        parser.add_argument("--format", choices=("text", "lines", "markdown", "json"), default="text",
                            help="what to print on stdout (default text; lines: one a finding, as linters print)")
        parser.add_argument("--json", metavar="FILE", help="also write the JSON result here")
        parser.add_argument("--md", "--markdown", dest="md", metavar="FILE",
                            help="also write a Markdown report (a pull-request comment) here")
        parser.add_argument("--sarif", metavar="FILE",
                            help="also write SARIF 2.1.0 here (GitHub code scanning: upload-sarif)")
        parser.add_argument("--quiet", "-q", action="store_true", help="print nothing; files and exit code only")
        run = parser.add_argument_group("--run: also hunt the app and tie the checklist to the measurement")
        run.add_argument("--run", action="store_true",
                         help="start the app (target must be file.py:app or module:app), hammer it, "
                         "attach what grew to the checklist")
        run.add_argument("--route", action="append", default=None, metavar="PATH",
                         help="route to hunt (repeatable; default: the app's routes)")
        run.add_argument("-n", "--requests", type=int, default=1000, metavar="N",
                         help="requests per round (default 1000)")
        run.add_argument("--rounds", type=int, default=4, help="rounds per route (default 4)")
        run.add_argument("--warmup", type=int, default=200, help="warm-up requests per route (default 200)")

    def run(self, args: argparse.Namespace) -> int:
        """Check, optionally hunt, print, write files; the exit code gates CI."""
        from memprobe.check import check
        from memprobe.check.source import resolve_target

        if args.files:
            if args.run:
                raise UsageError("--run hunts one app: give it as file.py:app or module:app, without --files")
            not_files = [t for t in args.target if not Path(t).is_file()]
            if not_files:
                raise UsageError(f"--files takes files: {not_files[0]} is not one")
            from memprobe.check.engine import check_files

            result = check_files(args.target, ignore=args.ignore, include_tests=args.include_tests)
        elif len(args.target) > 1:
            raise UsageError(f"check takes one target, not {len(args.target)} (several files: --files)")
        else:
            result = check(args.target[0], ignore=args.ignore, include_tests=args.include_tests)
        if args.run:
            from memprobe.check.runtime import attach, run_hunt

            hunt_target = resolve_target(args.target[0]).hunt_target
            if not hunt_target:
                raise UsageError("--run needs the app: give the target as file.py:app or module:app")
            hunted = run_hunt(hunt_target, routes=args.route, requests=args.requests,
                              rounds=args.rounds, warmup=args.warmup,
                              progress=None if args.quiet or not sys.stderr.isatty() else _say)
            attach(result, hunted)
        for option, fmt in (("json", "json"), ("md", "markdown"), ("sarif", "sarif")):
            path = getattr(args, option)
            if path:
                written = write(result, Path(path), fmt)
                if not args.quiet:
                    print(f"wrote {written}", file=sys.stderr)
        if not args.quiet:
            tty = sys.stdout.isatty()
            options = {"color": tty, "width": min(shutil.get_terminal_size().columns, 120) if tty else 160} \
                if args.format == "text" else {}
            print(render(result, args.format, **options), end="")
        failed = result.failed or (args.strict and any(f.severity.value == "warn" for f in result.findings))
        return ExitCode.FAILED if failed else ExitCode.OK


def _say(message: str) -> None:
    print(f"memprobe: {message}", file=sys.stderr)
