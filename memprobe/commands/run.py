"""``memprobe run -- CMD ...``: start a command with memprobe's agent in every Python process of
it, say where memprobe can reach them, and wait; a hunt can then reach the workers later."""
from __future__ import annotations

import argparse
import sys

from memprobe.errors import UsageError


class RunCommand:
    """Start CMD instrumented (the bootstrap first on its PYTHONPATH), print the channel, wait."""

    name = "run"
    help = "start a command with memprobe's agent in each of its Python processes, and wait"

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        """``--frames``, then the command after ``--``."""
        parser.add_argument("--frames", type=int, default=25, metavar="F",
                            help="traceback depth of a later hunt's attribution round (default 25)")
        parser.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ...",
                            help="the command, e.g. -- gunicorn -w 4 myapp:app")

    def run(self, args: argparse.Namespace) -> int:
        """Run the command until it exits (or Ctrl-C / SIGTERM); its exit code. Its whole
        process group ends with it (workers that outlived their master too)."""
        from memprobe.agent.channel import Channel
        from memprobe.process.group import spawn, stop_group, wait_exit

        argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        if not argv:
            raise UsageError("run needs a command: memprobe run -- gunicorn -w 4 myapp:app")
        with Channel() as channel:
            try:
                proc = spawn(argv, env=channel.env(frames=args.frames))
            except OSError as err:
                raise UsageError(f"cannot start {argv[0]!r}: {err.strerror}") from None
            print(f"memprobe: {argv[0]} started (pid {proc.pid}); its agents listen in "
                  f"{channel.path} (one <pid>.sock per worker); hunt it with: "
                  f"memprobe hunt --pid {proc.pid} --url http://127.0.0.1:PORT",
                  file=sys.stderr, flush=True)
            try:
                wait_exit(proc, None)
            finally:
                code = stop_group(proc, timeout=10)
            return code if code is not None else 1
