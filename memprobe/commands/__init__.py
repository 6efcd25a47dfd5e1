"""One module per subcommand; each defines a class with ``name``, ``help``,
``prepare_parser(parser)`` and ``run(args) -> int``.

Modules are imported when their command runs, so ``memprobe check`` never pays for the
measuring stack and a missing optional package breaks only the command that needs it.
"""
from __future__ import annotations

import argparse
import importlib
from typing import Protocol

#: subcommand name -> (module, class name, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "compare": ("memprobe.commands.compare", "CompareCommand",
                "start each framework's hello-world, hammer it, compare memory and speed"),
    "hammer": ("memprobe.commands.hammer", "HammerCommand",
               "hammer a server that is already running; optionally watch its memory"),
    "hunt": ("memprobe.commands.hunt", "HuntCommand",
             "find whether an app leaks, how much per request, where, and what holds it"),
    "watch": ("memprobe.commands.watch", "WatchCommand",
              "watch a running server: which route keeps memory per request, at a few per cent overhead"),
    "run": ("memprobe.commands.run", "RunCommand",
            "start a command with memprobe's agent in each of its Python processes, and wait"),
    "locust-worker": ("memprobe.commands.locust_worker", "LocustWorkerCommand",
                      "join a memprobe Locust master from this machine (load from many machines)"),
    "check": ("memprobe.commands.check", "CheckCommand",
              "a Flask memory-hygiene checklist of an app's source"),
    "report": ("memprobe.commands.report", "ReportCommand",
               "re-render saved JSON results (HTML, Markdown, text); two runs side by side"),
    "frameworks": ("memprobe.commands.frameworks", "FrameworksCommand",
                   "list the frameworks compare knows, which are installed, and their versions"),
}


class Command(Protocol):
    """What every subcommand class provides."""

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        """Add the subcommand's arguments."""

    def run(self, args: argparse.Namespace) -> int:
        """Run; return the exit code. Expected failures raise ``MemprobeError``."""


def load(name: str) -> Command:
    """Instantiate the command class registered under ``name``."""
    module_name, class_name, _ = COMMANDS[name]
    return getattr(importlib.import_module(module_name), class_name)()
