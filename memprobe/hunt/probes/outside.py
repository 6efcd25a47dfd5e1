"""Reading a server from outside only (:class:`Outside`): the USS of its process tree. No traced
heap, sites or holders: for a server whose Python memprobe cannot enter, or is asked not to."""
from __future__ import annotations

from memprobe.errors import MemprobeError
from memprobe.hunt.probes import AppInfo, Attribution, Launch, Reach, RssLines
from memprobe.process.memory import read_tree
from memprobe.results.hunt import Reading, WorkerResult


class Outside:
    """The USS of the whole process tree of the server the reach started or found."""

    mode = "outside"
    sees_inside = False
    memory = "uss"
    connections = "keepalive"
    serving = 1

    def __init__(self) -> None:
        self.pid = 0

    def launch(self) -> Launch:
        """Nothing to arm: the server runs as it is."""
        return Launch()

    def start_failed(self, err: MemprobeError) -> MemprobeError:
        """The server's own failure says it all."""
        return err

    def connect(self, reach: Reach) -> AppInfo:
        """Nothing to reach inside."""
        self.pid = reach.pid
        return AppInfo("cmd", None, [], notes=[
            "outside readings only (USS of the process tree): no traced heap, sites, types or holders"])

    def begin(self, route: str) -> None:
        """Nothing to restart outside."""

    def read(self, done: int, baseline: bool = False) -> Reading:
        """The USS of the server's whole process tree."""
        return Reading(done, None, read_tree(self.pid).total.uss)

    def growth(self, done: int) -> None:
        """Nothing is seen from outside."""

    def deepen(self) -> None:
        """Nothing is traced from outside."""

    def attribute(self, requests: int, chains: bool = True) -> Attribution:
        """Nothing is named from outside."""
        return Attribution()

    def rss_lines(self, route: str, requests: int, uss_per_request: float, first: int) -> RssLines | None:
        """Nothing is run from outside."""
        return None

    def processes(self) -> list[WorkerResult]:
        """The tree is read as one."""
        return []

    def close(self) -> None:
        """Nothing was started inside."""

    def cleanup(self) -> None:
        """Nothing was written."""
