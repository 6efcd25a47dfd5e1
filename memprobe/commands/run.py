"""``memprobe run -- CMD ...``: start a command with memprobe's agent in every Python process of
it, say where memprobe can reach them, and wait; a hunt can then reach the workers later."""
from __future__ import annotations

import argparse
import signal
import subprocess
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
        """Run the command until it exits (or Ctrl-C / SIGTERM); its exit code."""
        from memprobe.agent.channel import Channel
        from memprobe.process.child import _pdeathsig_prefix, _resolve

        argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        if not argv:
            raise UsageError("run needs a command: memprobe run -- gunicorn -w 4 myapp:app")
        with Channel() as channel:
            env = channel.env(frames=args.frames)
            try:
                program = _resolve(argv[0], env, None)
            except OSError as err:
                raise UsageError(f"cannot start {argv[0]!r}: {err.strerror}") from None
            proc = subprocess.Popen([*_pdeathsig_prefix(), program, *argv[1:]], env=env)
            print(f"memprobe: {argv[0]} started (pid {proc.pid}); its agents listen in "
                  f"{channel.path} (one <pid>.sock per worker); hunt it with: "
                  f"memprobe hunt --pid {proc.pid} --url http://127.0.0.1:PORT",
                  file=sys.stderr, flush=True)
            try:
                return proc.wait()
            except KeyboardInterrupt:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                raise
