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

import psutil

from memprobe.agent import attach
from memprobe.agent.channel import Channel
from memprobe.agent.control import AgentClient, socket_base
from memprobe.agent.inject import HELPERS, socket_path
from memprobe.errors import MemprobeError, TargetError
from memprobe.http.load import LoadResult
from memprobe.http.locust_engine import LocustEngine
from memprobe.hunt.probes import AppInfo
from memprobe.hunt.probes.child import AgentCalls
from memprobe.hunt.probes.server import loopback_base, send_load
from memprobe.hunt.probes.workers import RunningServerProbe
from memprobe.process.child import pid_alive
from memprobe.results.hunt import HuntSettings, WorkerResult


class AttachedProbe(AgentCalls):
    """The agent attached to the running process ``pid``, which serves HTTP at ``url``."""

    mode = "attached"
    sees_inside = True
    memory = "uss"
    serving = 1
    #: A started Locust engine to send the load with (``--engine locust``); None: the native hammer.
    load_engine: LocustEngine | None = None

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
        if not pid_alive(self.pid):
            raise TargetError(f"pid {self.pid} exited")

    def open(self) -> AppInfo:
        """Start the agent in the process, connect, ask what the app is."""
        t0 = time.monotonic()
        self._dir = tempfile.mkdtemp(prefix="memprobe-pid-", dir=socket_base())  # 0700: the channel's only reader
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
        load = send_load(self.url(route), n, first, self.settings, self.load_engine)
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
        if not pid_alive(self.pid):
            return TargetError(f"pid {self.pid} exited {phase}")
        return err

    def close(self) -> None:
        """Stop the agent inside (the process keeps serving), remove the channel's directory."""
        try:
            if self.client is not None:
                self.client.close()
                self.client = None
            if self.injections and pid_alive(self.pid):
                self.injections.append(attach.run_in(
                    self.pid, "from memprobe.agent import attached\nattached.stop()\n",
                    timeout=self.settings.ready_timeout, method=self.method))
        finally:
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None


_START = "from memprobe.agent import attached\nattached.start({channel!r}, frames={frames!r})\n"
_STOP = "from memprobe.agent import attached\nattached.stop()\n"


def worker_pids(pid: int) -> list[int]:
    """The Python children of ``pid`` that serve (a gunicorn master's workers, uvicorn's
    spawned ones, a reloader's server), multiprocessing's helpers left out."""
    try:
        children = psutil.Process(pid).children()
    except psutil.Error:
        return []
    found = []
    for child in children:
        try:
            cmdline = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if any(helper in cmdline for helper in HELPERS):
            continue
        try:
            attach.inspect_target(child.pid)
        except MemprobeError:
            continue
        found.append(child.pid)
    return found


class AttachedServerProbe(RunningServerProbe):
    """A running server with workers (``hunt --pid MASTER``, not started under ``memprobe
    run``): the agent is attached to each worker, the server hunted worker by worker, and every
    agent stopped at the end. Workers that start during the hunt get no agent."""

    def __init__(self, pid: int, workers: list[int], url: str, settings: HuntSettings,
                 method: str = "auto") -> None:
        super().__init__(pid, "", url, settings)
        self.workers = workers
        self.method = method
        self.injections: list[attach.Injection] = []

    def open(self) -> AppInfo:
        """Attach the agent to every worker, then reach them as a channel's agents."""
        t0 = time.monotonic()
        self.channel = Channel()
        uids = {attach.inspect_target(w).uid for w in self.workers}
        if os.geteuid() == 0 and len(uids) == 1 and uids != {0}:
            os.chown(self.channel.path, uids.pop(), -1)
        code = _START.format(channel=str(self.channel.path), frames=self.settings.frames)
        for worker in self.workers:
            self.injections.append(attach.run_in(worker, code, timeout=self.settings.ready_timeout,
                                                 method=self.method))
        hellos = self._await_agents(len(self.workers), t0 + self.settings.ready_timeout)
        info = self._info(hellos, time.monotonic() - t0, f"pid {self.pid} ({self.base})")
        took = sum(i.seconds for i in self.injections)
        info.notes.insert(0, f"attached to {len(self.workers)} workers of pid {self.pid} with "
                             f"{self.injections[0].method} in {took:.2f} s")
        return info

    def close(self) -> None:
        """Every worker's agent stopped inside (the server serves on), the channel removed."""
        try:
            super().close()
        finally:
            for injection in self.injections:
                if pid_alive(injection.pid):
                    try:
                        attach.run_in(injection.pid, _STOP, timeout=self.settings.ready_timeout,
                                      method=self.method)
                    except MemprobeError:
                        pass  # it exited meanwhile, or cannot be reached again: nothing is left to stop
            if self.channel is not None:
                self.channel.close()

