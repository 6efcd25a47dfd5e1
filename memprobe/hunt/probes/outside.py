"""A server memprobe starts from a command (``--cmd "gunicorn app:app -b 127.0.0.1:{port}"``)
and reads from outside only: the USS of its process tree. No traced heap, sites or holders."""
from __future__ import annotations

import time

from memprobe.hunt.probes import AppInfo, Attribution
from memprobe.hunt.probes.server import CommandProbe
from memprobe.process.memory import read_tree
from memprobe.results.hunt import Reading


class OutsideProbe(CommandProbe):
    """Start ``cmd`` (``{port}`` in it becomes a free port); ready once ``ready_path`` answers."""

    mode = "outside"
    sees_inside = False

    def open(self) -> AppInfo:
        """Start the command and wait until it answers HTTP."""
        t0 = time.monotonic()
        self.start_command()
        return AppInfo("cmd", None, [], time.monotonic() - t0, notes=[
            "outside readings only (USS of the process tree): no traced heap, sites, types or holders"])

    def begin(self, route: str) -> None:
        """Nothing to restart outside."""

    def read(self, done: int, baseline: bool = False) -> Reading:
        """The USS of the server's whole process tree."""
        assert self.child is not None
        return Reading(done, None, read_tree(self.child.pid).total.uss)

    def growth(self, done: int) -> None:
        """Nothing is seen from outside."""

    def deepen(self) -> None:
        """Nothing is traced from outside."""

    def attribute(self, requests: int, chains: bool = True) -> Attribution:
        """Nothing is named from outside."""
        return Attribution()
