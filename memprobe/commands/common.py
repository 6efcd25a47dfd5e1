"""Options and plumbing every measuring command shares: report files, progress, the load engine."""
from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

from memprobe.errors import UsageError
from memprobe.render import Result, write

DEFAULT_OUT = "reports"


def add_output_options(parser: argparse.ArgumentParser, stem: str) -> None:
    """``--json``, ``--md``, ``--html``, ``--out``, ``--no-save``, ``--quiet``."""
    group = parser.add_argument_group("output")
    group.add_argument("--json", metavar="FILE", help="also write the JSON report here")
    group.add_argument("--md", metavar="FILE", help="also write a Markdown report here")
    group.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report here")
    group.add_argument("--out", metavar="DIR", default=None,
                       help=f"folder for the timestamped {stem}-*.json and .md reports (default "
                       f"{DEFAULT_OUT}/, unless --json, --md or --html names a file)")
    group.add_argument("--no-save", dest="out", action="store_const", const="",
                       help="do not write the timestamped reports")
    group.add_argument("--quiet", "-q", action="store_true",
                       help="no progress bar and no table; only the reports and the exit code")


def write_outputs(result: Result, args: argparse.Namespace, stem: str) -> list[Path]:
    """Write the timestamped JSON and Markdown under ``--out`` and any file asked for."""
    targets: list[tuple[Path, str]] = []
    out = out_dir(args)
    if out:
        targets += [(Path(out) / f"{stem}.json", "json"), (Path(out) / f"{stem}.md", "markdown")]
    for option, fmt in (("json", "json"), ("md", "markdown"), ("html", "html"), ("mprof", "mprof")):
        if getattr(args, option, None):
            targets.append((Path(getattr(args, option)), fmt))
    return [write(result, path, fmt) for path, fmt in targets]


class StatusLine:
    """One line of progress on stderr, rewritten in place (a terminal only: in CI logs the
    report says it all); :meth:`clear` leaves the line empty for what comes after."""

    def __init__(self, prefix: str, enabled: bool = True) -> None:
        self.prefix = prefix
        self.enabled = enabled and sys.stderr.isatty()
        self.shown = False

    def say(self, message: str) -> None:
        """Show ``message`` in place of the last one."""
        if self.enabled:
            sys.stderr.write(f"\r\033[K{self.prefix}: {message}")
            sys.stderr.flush()
            self.shown = True

    def clear(self) -> None:
        """Erase the line, if anything was shown."""
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self.shown = False


def out_dir(args: argparse.Namespace) -> str:
    """The folder of the timestamped reports: ``--out``; by default ``reports/``, unless the
    user named the files to write (``--json``, ``--md``, ``--html``); "" for none."""
    if args.out is not None:
        return str(args.out)
    named = any(getattr(args, option, None) for option in ("json", "md", "html"))
    return "" if named else DEFAULT_OUT


@contextlib.contextmanager
def progress_display(enabled: bool = True) -> Iterator[Callable[..., None] | None]:
    """A rich progress bar on stderr, one task per (framework, phase); yields the callback
    ``on_progress(subject, phase, done, total)`` or None when disabled or not on a TTY."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    progress = Progress(TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=Console(stderr=True), transient=True)
    tasks: dict[tuple[str, str], Any] = {}

    def on_progress(subject: Any, phase: str, done: int, total: int | None) -> None:
        key = (getattr(subject, "name", str(subject)), phase)
        if key not in tasks:
            tasks[key] = progress.add_task(f"{key[0]} {phase}", total=total)
        progress.update(tasks[key], completed=done, total=total)

    with progress:
        yield on_progress


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """``--engine native|locust`` and where Locust's workers come from."""
    group = parser.add_argument_group("load engine")
    group.add_argument("--engine", choices=("native", "locust"), default="native",
                       help="what sends the requests: memprobe's own hammer (default; the fastest on "
                       "one machine) or Locust (memprobe[locust]; load from many machines)")
    group.add_argument("--locust-workers", type=int, default=None, metavar="N",
                       help="Locust workers to start on this machine (default 1, or 0 with --locust-master)")
    group.add_argument("--locust-master", metavar="HOST:PORT",
                       help="bind the Locust master here so that workers on other machines can join "
                       "(memprobe locust-worker --master-host HOST:PORT); default: 127.0.0.1, local only")
    group.add_argument("--expect-workers", type=int, default=None, metavar="N",
                       help="wait for N Locust workers in all (local and remote) before sending")


def engine_options(args: argparse.Namespace) -> dict[str, Any] | None:
    """The Locust engine's arguments for ``--engine locust`` (None for the native hammer),
    checked before anything starts: Locust options without ``--engine locust`` are a usage
    error, and a missing Locust is exit 4 with its pip command."""
    if args.engine != "locust":
        if args.locust_workers is not None or args.locust_master or args.expect_workers is not None:
            raise UsageError("--locust-workers, --locust-master and --expect-workers need --engine locust")
        return None
    from memprobe.http.locust_engine import require_locust

    require_locust()
    workers = args.locust_workers if args.locust_workers is not None else (0 if args.locust_master else 1)
    if not args.locust_master and workers == 0:
        raise UsageError("--locust-workers 0 needs --locust-master HOST:PORT for remote workers to join")
    return {"workers": workers, "master": args.locust_master, "expect_workers": args.expect_workers}


def locust_engine(options: dict[str, Any] | None) -> Any:
    """A started :class:`~memprobe.http.locust_engine.LocustEngine` for :func:`engine_options`'
    result, or None for the native hammer; the caller closes it."""
    if options is None:
        return None
    from memprobe.http.locust_engine import LocustEngine

    return LocustEngine(options["workers"], master=options["master"],
                        expect_workers=options["expect_workers"]).start()
