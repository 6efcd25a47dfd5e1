"""A server memprobe starts from a command (``--cmd "gunicorn app:app -b 127.0.0.1:{port}"``)
and reads from outside only: the USS of its process tree. No traced heap, sites or holders."""
from __future__ import annotations

import shlex
import time
from pathlib import Path

from memprobe.errors import UsageError
from memprobe.hunt.probes import AppInfo, Attribution
from memprobe.hunt.probes.server import ServerProbe
from memprobe.process.child import Child, start_on_free_port
from memprobe.process.memory import read_tree
from memprobe.results.hunt import HuntSettings, Reading


class OutsideProbe(ServerProbe):
    """Start ``cmd`` (``{port}`` in it becomes a free port); ready once ``ready_path`` answers."""

    mode = "outside"
    sees_inside = False

    def __init__(self, cmd: str, settings: HuntSettings, cwd: str | Path | None = None,
                 ready_path: str = "/") -> None:
        if "{port}" not in cmd:
            raise UsageError("--cmd must contain {port} where the server's port goes, e.g. "
                             "'gunicorn app:app -b 127.0.0.1:{port}'")
        super().__init__(settings, cwd)
        self.cmd = cmd
        self.ready_path = ready_path

    def open(self) -> AppInfo:
        """Start the command and wait until it answers HTTP."""

        def on_port(port: int) -> Child:
            self.port = port
            argv = shlex.split(self.cmd.replace("{port}", str(port)))
            self.child = Child(argv, name=Path(argv[0]).name,
                               url=self.url(self.ready_path), cwd=self.cwd,
                               ready_timeout=self.settings.ready_timeout)
            return self.child

        t0 = time.monotonic()
        start_on_free_port(on_port)
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

    def attribute(self, requests: int) -> Attribution:
        """Nothing is named from outside."""
        return Attribution()
