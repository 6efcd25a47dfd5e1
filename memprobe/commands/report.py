"""``memprobe report A.json [B.json] [-o OUT]``: re-render saved runs, or two side by side.

The output format follows ``-o``'s suffix (.html, .md, .txt, .json; .sarif for check); without ``-o`` the text
report goes to stdout. Two files of one kind give what changed from the first to the second, and that
side-by-side view, written as JSON, is itself a file ``report`` reads back. Every JSON memprobe writes
is one: the pytest plugin's session file and its baseline too.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from memprobe.errors import ExitCode


class ReportCommand:
    """Render one saved JSON result, or the differences between two."""

    name = "report"
    help = "re-render saved JSON results (HTML, Markdown, text); two runs side by side"

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        """Add report's arguments."""
        parser.add_argument("runs", nargs="+", metavar="RUN.json",
                            help="a JSON report written by compare, hunt, check, hammer, report (two runs side by "
                                 "side) or the pytest plugin (--memprobe-json, --memprobe-baseline); give two "
                                 "of one kind to see what changed from the first to the second")
        parser.add_argument("-o", "--output", metavar="FILE",
                            help="write here; the format follows the suffix: .html, .md, .txt, .json, .sarif (check) "
                                 "(default: text on stdout)")
        parser.add_argument("--format", choices=("text", "markdown", "html", "json", "sarif"),
                            help="the format, when the file name does not say it (or for stdout)")

    def run(self, args: argparse.Namespace) -> int:
        """Load, maybe diff, render, write or print."""
        from memprobe.errors import UsageError
        from memprobe.render import format_for, render
        from memprobe.results import load

        if len(args.runs) > 2:
            raise UsageError(f"report takes one run, or two to compare, not {len(args.runs)}")
        runs = [load(path) for path in args.runs]
        if len(runs) == 2:
            from memprobe.render.diff import diff_runs

            result = diff_runs(runs[0], runs[1], labels=_labels(args.runs))
        else:
            result = runs[0]
        fmt = args.format or (format_for(args.output) if args.output else "text")
        if fmt == "html":
            from memprobe.render.html import require

            if _draws_plots(result):
                require()
        # Every file was read through its result's from_dict: what a renderer raises now is a
        # bug of memprobe's, and surfaces as one.
        if args.output is None and fmt == "text":
            tty = sys.stdout.isatty()
            text = render(result, fmt, color=tty,
                          width=min(shutil.get_terminal_size().columns, 160) if tty else 140)
        else:
            text = render(result, fmt)
        if args.output is None:
            sys.stdout.write(text)
        else:
            path = Path(args.output)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}", file=sys.stderr)
        return int(ExitCode.OK)


def _draws_plots(result: Any) -> bool:
    """Whether the HTML page of ``result`` has plots (the checklist and the plugin's tables have none)."""
    if result.kind == "diff":
        return _draws_plots(result.a)
    return result.kind not in ("check", "pytest", "pytest-baseline")


def _labels(paths: list[str]) -> tuple[str, str]:
    a, b = Path(paths[0]), Path(paths[1])
    if a.name != b.name:
        return a.name, b.name
    return str(a), str(b)
