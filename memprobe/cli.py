"""The ``memprobe`` command line: ``main(argv) -> int``."""
from __future__ import annotations

import argparse
import importlib.util
import signal
import sys
import threading
from collections.abc import Sequence

from memprobe import __version__
from memprobe.commands import COMMANDS, load
from memprobe.errors import ExitCode, MemprobeError


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit 2, like every memprobe usage error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(ExitCode.USAGE, f"memprobe: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full parser; subcommand arguments are added by each command class."""
    parser = _Parser(
        prog="memprobe",
        description="Measure the memory a Python web app costs per request, and find its leaks.",
        epilog="exit codes: 0 ok; 1 a leak, limit or check failed; 2 usage; "
        "3 the target failed to start or died; 4 environment (a missing optional package)",
    )
    parser.add_argument("--version", action="version", version=f"memprobe {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, _cls, help_) in COMMANDS.items():
        if importlib.util.find_spec(module) is None:
            continue
        p = sub.add_parser(name, help=help_, description=help_)
        load(name).prepare_parser(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the subcommand, map expected failures to one line and an exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help(sys.stderr)
        return ExitCode.USAGE
    if threading.current_thread() is threading.main_thread():
        # SIGTERM takes Ctrl-C's path (asyncio cancels its tasks cleanly on KeyboardInterrupt;
        # a SystemExit raised inside a task is logged as a stray traceback): every `finally`
        # runs, children are stopped and partial reports written.
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        return int(load(args.command).run(args))
    except MemprobeError as err:
        print(f"memprobe: {err}", file=sys.stderr)
        if err.log_tail:
            print(_indent(err.log_tail), file=sys.stderr)
        return int(err.exit_code)
    except KeyboardInterrupt:
        signum = _received[-1] if _received else signal.SIGINT
        print(f"memprobe: interrupted ({signal.Signals(signum).name})", file=sys.stderr)
        return 128 + signum
    except BrokenPipeError:
        return 0


_received: list[int] = []


def _interrupt(signum: int, _frame: object) -> None:
    _received.append(signum)
    raise KeyboardInterrupt


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip().splitlines())
