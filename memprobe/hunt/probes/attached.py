"""A server that is already running, reached by pid (``hunt --pid PID --url URL``).

The agent is started inside it through :mod:`memprobe.agent.attach` (no restart, no change to
its code or its command), answers on a Unix socket in a private directory of the hunt, and is
stopped at the end: tracing off, its threads gone, the socket and the directory removed. The
load goes to ``url``; USS is read from outside, the traced heap and the attribution inside.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time

from memprobe.agent import attach
from memprobe.agent.control import AgentClient
from memprobe.agent.inject import socket_path
from memprobe.errors import MemprobeError, TargetError
from memprobe.http.hammer import Hammer
from memprobe.http.load import LoadResult
from memprobe.hunt.probes import AppInfo
from memprobe.hunt.probes.child import AgentCalls
from memprobe.hunt.probes.server import loopback_base
from memprobe.results.hunt import HuntSettings, WorkerResult


class AttachedProbe(AgentCalls):
    """The agent attached to the running process ``pid``, which serves HTTP at ``url``."""

    mode = "attached"
    sees_inside = True
    memory = "uss"

    def __init__(self, pid: int, url: str, settings: HuntSettings, method: str = "auto") -> None:
        self.base = loopback_base(url)
        self.pid = pid
        self.settings = settings
        self.method = method
        self.client: AgentClient | None = None
        self.injections: list[attach.Injection] = []
        self._dir: str | None = None

    def url(self, route: str) -> str:
        """The URL of ``route`` on the running server."""
        return self.base + route

    def alive(self) -> None:
        """TargetError when the process is gone."""
        if not os.path.exists(f"/proc/{self.pid}"):
            raise TargetError(f"pid {self.pid} exited")

    def open(self) -> AppInfo:
        """Start the agent in the process, connect, ask what the app is."""
        t0 = time.monotonic()
        self._dir = tempfile.mkdtemp(prefix="memprobe-pid-")  # 0700: the channel's only reader
        target = attach.inspect_target(self.pid)
        if os.geteuid() == 0 and target.uid != 0:
            os.chown(self._dir, target.uid, -1)
        code = ("from memprobe.agent import attached\n"
                f"attached.start({self._dir!r}, frames={self.settings.frames!r})\n")
        self.injections.append(attach.run_in(self.pid, code, timeout=self.settings.ready_timeout,
                                             method=self.method))
        self.client = AgentClient(socket_path(self._dir, self.pid), alive=self.alive).connect()
        hello = self.client.call("hello")
        done = self.injections[-1]
        notes = [f"attached to pid {self.pid} with {done.method} in {done.seconds:.2f} s"]
        return AppInfo(hello["kind"], hello["framework"], list(hello["routes"]),
                       time.monotonic() - t0, label=f"pid {self.pid} ({self.base})", notes=notes)

    def send(self, route: str, n: int, first: int) -> LoadResult:
        """``n`` requests over ``settings.concurrency`` keep-alive connections."""
        s = self.settings
        load = Hammer(self.url(route), n, concurrency=s.concurrency, timeout=s.timeout,
                      first=first).run()
        if load.answered < load.sent:
            self.alive()
        return load

    @property
    def measured_pid(self) -> int:
        """The running process."""
        return self.pid

    def processes(self) -> list[WorkerResult]:
        """One process: nothing per process beyond the route's own result."""
        return []

    def failure(self, err: MemprobeError, phase: str) -> MemprobeError:
        """A process that exited is named as such."""
        if not os.path.exists(f"/proc/{self.pid}"):
            return TargetError(f"pid {self.pid} exited {phase}")
        return err

    def close(self) -> None:
        """Stop the agent inside (the process keeps serving), remove the channel's directory."""
        try:
            if self.client is not None:
                self.client.close()
                self.client = None
            if self.injections and os.path.exists(f"/proc/{self.pid}"):
                self.injections.append(attach.run_in(
                    self.pid, "from memprobe.agent import attached\nattached.stop()\n",
                    timeout=self.settings.ready_timeout, method=self.method))
        finally:
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None
