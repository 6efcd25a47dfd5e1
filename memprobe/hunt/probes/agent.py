"""Reading one process through the agent inside it (:class:`OneAgent`).

The agent gets in one of two ways: it *is* the child memprobe starts (``python -m
memprobe.agent TARGET`` serves the app on 127.0.0.1 and answers on a Unix socket in a folder
of the hunt's own, removed at the end), or it is attached to a running process
(:mod:`memprobe.agent.attach`: no restart, no change to its code) and stopped at the end,
tracing off, its threads gone. Either way USS comes from outside, the traced heap and the
attribution from the agent.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from memprobe.agent.control import AgentClient, socket_base
from memprobe.errors import ExitCode, MemprobeError, TargetError, UsageError
from memprobe.hunt.probes import AppInfo, Attribution, Launch, Reach, RssLines
from memprobe.process.child import pid_alive
from memprobe.process.memory import read_memory
from memprobe.results.hunt import HuntSettings, Reading, WorkerResult

_ROOT = str(Path(__file__).resolve().parents[3])
#: What an attached agent runs to start, and to stop.
START = "from memprobe.agent import attached\nattached.start({channel!r}, frames={frames!r})\n"
STOP = "from memprobe.agent import attached\nattached.stop()\n"


def agent_env() -> dict[str, str]:
    """The environment of a child running the agent: this memprobe importable wherever the
    user runs from, and no tracing inherited (the agent starts it when asked)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = _ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("PYTHONTRACEMALLOC", None)
    return env


def agent_command(target: str, port: int, control: str | Path, *, frames: int = 25,
                  workers: int = 16, error_file: str | Path | None = None) -> list[str]:
    """The argv that serves ``target`` on 127.0.0.1:``port`` with the agent inside."""
    argv = [sys.executable, "-m", "memprobe.agent", target, "--port", str(port),
            "--control", str(control), "--frames", str(frames), "--workers", str(workers)]
    return argv + (["--error-file", str(error_file)] if error_file else [])


class OneAgent:
    """One process read through its agent: the child that serves ``target``
    (:meth:`serving`), or a running process the agent is attached to (:meth:`attaching`)."""

    sees_inside = True
    memory = "uss"
    connections = "keepalive"
    serving = 1

    def __init__(self, settings: HuntSettings, target: str | None) -> None:
        self.settings = settings
        self.target = target
        self.mode = "child" if target is not None else "attached"
        self.client: AgentClient | None = None
        self.folder: Path | None = None
        self.pid = 0
        #: attached: the injections made (the start, then the stop)
        self.injections: list[Any] = []

    @classmethod
    def serving_target(cls, target: str, settings: HuntSettings) -> OneAgent:
        """The agent is the child: it loads ``target`` and serves it (:meth:`argv_for`)."""
        return cls(settings, target)

    @classmethod
    def attaching(cls, settings: HuntSettings) -> OneAgent:
        """The agent is attached to the process the reach found, and stopped at the end."""
        return cls(settings, None)

    # -- getting in ---------------------------------------------------------------------------

    def _folder(self, prefix: str) -> Path:
        if self.folder is None:  # 0700: the channel's only reader
            self.folder = Path(tempfile.mkdtemp(prefix=prefix, dir=socket_base()))
        return self.folder

    def argv_for(self, port: int) -> list[str]:
        """The child's command on ``port`` (after :meth:`launch`)."""
        assert self.target is not None and self.folder is not None, "launch() first"
        for left in (self.folder / "error.json", self.folder / "control.sock"):
            left.unlink(missing_ok=True)  # by an attempt on a port taken meanwhile
        return agent_command(self.target, port, self.folder / "control.sock", frames=self.settings.frames,
                             workers=self.settings.concurrency, error_file=self.folder / "error.json")

    def launch(self) -> Launch:
        """A child serving the target: its spec checked here first (a malformed one is a
        usage error, a missing file a target error, before anything starts)."""
        if self.target is None:
            return Launch()
        from memprobe.target import parse_target, precheck

        spec = parse_target(self.target, self.settings.cwd)
        precheck(spec, self.settings.cwd)
        folder = self._folder("memprobe-hunt-")
        return Launch(agent_env(), folder / "agent.log", f"the app ({spec.module})")

    def start_failed(self, err: MemprobeError) -> MemprobeError:
        """The agent's own one-line reason for not starting, with its exit code (a malformed
        spec is a usage error there as here)."""
        if self.folder is None:
            return err
        try:
            data = json.loads((self.folder / "error.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return err
        message = data.get("message") or "the target failed to load"
        return UsageError(message) if data.get("exit_code") == ExitCode.USAGE else TargetError(message)

    def connect(self, reach: Reach) -> AppInfo:
        """Connect to the agent (attaching it first, for a running process); what the app is."""
        from memprobe.agent.inject import socket_path

        self.pid = reach.pid
        notes = []
        if self.target is not None:
            assert self.folder is not None
            path = str(self.folder / "control.sock")
        else:
            path = socket_path(self._attach(reach.pid), reach.pid)
            done = self.injections[-1]
            notes.append(f"attached to pid {reach.pid} with {done.method} in {done.seconds:.2f} s")
        self.client = AgentClient(path, alive=reach.check_alive).connect()
        hello = self.client.hello()
        return AppInfo(hello.kind, hello.framework, list(hello.routes), notes=notes,
                       routes_note=hello.routes_note)

    def _attach(self, pid: int) -> Path:
        from memprobe.agent import attach

        folder = self._folder("memprobe-pid-")
        owner = attach.inspect_target(pid)
        if os.geteuid() == 0 and owner.uid != 0:
            os.chown(folder, owner.uid, -1)
        self.injections.append(attach.run_in(pid, START.format(channel=str(folder), frames=self.settings.frames),
                                             timeout=self.settings.ready_timeout,
                                             method=self.settings.attach_method))
        return folder

    # -- the protocol's steps -----------------------------------------------------------------

    @property
    def agent(self) -> AgentClient:
        """The connected agent."""
        assert self.client is not None, "connect() first"
        return self.client

    def begin(self, route: str) -> None:
        """Tracing restarts one frame deep in the process (stops, for rounds read on the
        allocated blocks only)."""
        self.agent.begin(trace=self.settings.signal == "traced")

    def read(self, done: int, baseline: bool = False) -> Reading:
        """Traced heap from the agent; USS from outside, less tracemalloc's own tables (they
        grow with every live traced block, ~100 B each, and would make any Python leak look
        partly native)."""
        inside = self.agent.baseline() if baseline else self.agent.measure()
        uss = read_memory(self.pid).uss
        return Reading(done, inside.traced, None if uss is None else uss - inside.overhead, inside.blocks)

    def growth(self, done: int) -> None:
        """The agent notes which containers and types grew over ``done`` requests."""
        self.agent.growth(done)

    def deepen(self) -> None:
        """Deep tracebacks from now on."""
        self.agent.deepen()

    def attribute(self, requests: int, chains: bool = True) -> Attribution:
        """Sites, types and holders, in one answer."""
        return Attribution.of(self.agent.attribute(requests, chains))

    def rss_lines(self, route: str, requests: int, uss_per_request: float, first: int) -> RssLines | None:
        """A native leak's lines: the agent runs the route's view under memory_profiler's line
        profiler (at least ``requests`` calls, ``{n}`` numbered from ``first``); the lines whose
        RSS grew, and a note when the view could not be run or no line grew. None for an
        attached agent: the view is run only in an app memprobe serves itself."""
        if self.target is None:
            return None
        return self.agent.lines(route, requests, uss_per_request, first).found()

    def processes(self) -> list[WorkerResult]:
        """One process: nothing per process beyond the route's own result."""
        return []

    def close(self) -> None:
        """Close the channel; an attached agent is stopped inside (the process serves on)."""
        from memprobe.agent import attach

        if self.client is not None:
            self.client.close()
            self.client = None
        if self.injections and pid_alive(self.pid):
            self.injections.append(attach.run_in(self.pid, STOP, timeout=self.settings.ready_timeout,
                                                 method=self.settings.attach_method))
            self.injections.clear()

    def cleanup(self) -> None:
        """Remove the hunt's folder (after the child has stopped: its log is there)."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
