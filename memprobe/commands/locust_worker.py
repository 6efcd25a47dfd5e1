"""``memprobe locust-worker --master-host HOST:PORT``: this machine as a Locust worker of a
memprobe master on another one (``--engine locust --locust-master HOST:PORT``)."""
from __future__ import annotations

import argparse
import os
import sys

from memprobe.errors import UsageError
from memprobe.http.locust_engine import parse_master, require_locust


class LocustWorkerCommand:
    """Join a memprobe Locust master and send the requests it hands out, until it quits."""

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        """The master's address."""
        parser.add_argument("--master-host", required=True, metavar="HOST:PORT",
                            help="the master's address, as given to --locust-master on its machine "
                            "(HOST alone: port 5557)")

    def run(self, args: argparse.Namespace) -> int:
        """Become the worker: Locust (and gevent) replace this process, not a child of it."""
        require_locust()
        address = args.master_host if ":" in args.master_host else f"{args.master_host}:5557"
        host, port = parse_master(address)
        if host in ("", "0.0.0.0", "*", "::"):
            raise UsageError(f"--master-host needs the master's address, not {host!r}")
        sys.stdout.flush()
        os.execv(sys.executable, [sys.executable, "-m", "memprobe.http.locust_driver", "worker",
                                  "--master-host", host, "--master-port", str(port)])
