"""The default probe: the app in a child process memprobe starts, with the agent inside.

``python -m memprobe.agent TARGET`` serves the app on 127.0.0.1 and answers on a Unix socket in
a directory of the hunt's own (removed at the end); readings of USS come from outside, the
traced heap and the attribution from the agent.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from memprobe.agent.control import AgentClient, socket_base
from memprobe.errors import ExitCode, MemprobeError, TargetError, UsageError
from memprobe.hunt.probes import AppInfo, Attribution
from memprobe.hunt.probes.server import ServerProbe
from memprobe.process.child import Child, start_on_free_port
from memprobe.process.memory import read_memory
from memprobe.results.hunt import HuntSettings, Reading
from memprobe.target import parse_target, precheck

_ROOT = str(Path(__file__).resolve().parents[3])


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


class AgentCalls:
    """The hunt's side of an agent's control channel: what every probe with an agent inside the
    measured process (a child memprobe started, a process it attached to) asks it."""

    client: AgentClient | None

    @property
    def measured_pid(self) -> int:
        """The process whose USS is read."""
        raise NotImplementedError

    def _call(self, cmd: str, **args: Any) -> dict[str, Any]:
        assert self.client is not None, "open() first"
        return self.client.call(cmd, **args)

    def begin(self, route: str) -> None:
        """Tracing restarts one frame deep in the process (stops, for rounds read on the
        allocated blocks only)."""
        settings = getattr(self, "settings", None)
        if settings is not None and settings.signal != "traced":
            self._call("begin", trace=False)
        else:
            self._call("begin")

    def read(self, done: int, baseline: bool = False) -> Reading:
        """Traced heap from the agent; USS from outside, less tracemalloc's own tables (they
        grow with every live traced block, ~100 B each, and would make any Python leak look
        partly native)."""
        inside = self._call("baseline" if baseline else "measure")
        uss = read_memory(self.measured_pid).uss
        overhead = int(inside.get("overhead", 0))
        traced = int(inside["traced"]) if "traced" in inside else None
        blocks = int(inside["blocks"]) if "blocks" in inside else None
        return Reading(done, traced, None if uss is None else uss - overhead, blocks)

    def growth(self, done: int) -> None:
        """The agent notes which containers and types grew over ``done`` requests."""
        self._call("growth", requests=done)

    def deepen(self) -> None:
        """Deep tracebacks from now on."""
        self._call("deepen")

    def attribute(self, requests: int, chains: bool = True) -> Attribution:
        """Sites, types and holders, in one answer."""
        return Attribution.from_dict(self._call("attribute", requests=requests, chains=chains))


class AgentProbe(AgentCalls, ServerProbe):
    """Reach ``target`` (``file.py:app``...) in a child with the agent inside."""

    mode = "child"
    sees_inside = True

    def __init__(self, target: str, settings: HuntSettings, cwd: str | Path | None = None) -> None:
        super().__init__(settings, cwd)
        self.target = target
        self.client: AgentClient | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def open(self) -> AppInfo:
        """Start the child, wait for HTTP, connect to the agent, ask what the app is."""
        spec = parse_target(self.target, self.cwd)
        precheck(spec, self.cwd)
        self._tmp = tempfile.TemporaryDirectory(prefix="memprobe-hunt-", dir=socket_base())
        folder = Path(self._tmp.name)
        error_file, control = folder / "error.json", folder / "control.sock"

        def on_port(port: int) -> Child:
            # The child runs in ``cwd``, so a relative spec means there what it means here.
            self.port = port
            for left in (error_file, control):  # by an attempt on a port taken meanwhile
                left.unlink(missing_ok=True)
            argv = agent_command(self.target, port, control,
                                 frames=self.settings.frames, workers=self.settings.concurrency,
                                 error_file=error_file)
            self.child = Child(argv, name=f"the app ({spec.module})", url=self.url("/"),
                               cwd=self.cwd, ready_timeout=self.settings.ready_timeout, env=agent_env(),
                               log_path=folder / "agent.log")
            return self.child

        t0 = time.monotonic()
        try:
            self.child = start_on_free_port(on_port)
        except TargetError as err:
            raise _agent_error(error_file) or err from None
        startup = time.monotonic() - t0
        self.client = AgentClient(control, alive=self.child.check_alive).connect()
        hello = self.client.call("hello")
        return AppInfo(hello["kind"], hello["framework"], list(hello["routes"]), startup)

    def rss_lines(self, route: str, requests: int, uss_per_request: float,
                  first: int) -> tuple[list[dict[str, Any]], str | None]:
        """A native leak's lines: the agent runs the route's view under memory_profiler's line
        profiler (at least ``requests`` calls, ``{n}`` numbered from ``first``); the lines whose
        RSS grew, and a note when the view could not be run or no line grew."""
        answer = self._call("lines", route=route, requests=requests,
                            uss_per_request=uss_per_request, first=first)
        if answer.get("note"):
            return [], str(answer["note"])
        lines = [dict(line, view=answer.get("view", ""), filled=int(answer.get("filled") or 0))
                 for line in answer.get("lines") or []]
        if not lines:
            return [], (f"the native leak's line was not found: {answer.get('view', 'the view')} ran "
                        f"{answer.get('calls', 0):,} times under memory_profiler's line profiler and "
                        "no line of it, or of the functions it calls in your code, grew RSS by a page "
                        "(4 KiB): the memory grows elsewhere (another thread, the framework)")
        return lines, None

    @property
    def measured_pid(self) -> int:
        """The child's pid."""
        assert self.child is not None, "open() first"
        return self.child.pid

    def close(self) -> None:
        """Close the channel, stop the child, remove the hunt's folder."""
        if self.client is not None:
            self.client.close()
        super().close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _agent_error(error_file: Path) -> MemprobeError | None:
    """The agent's own one-line reason for not starting, with its exit code (a malformed spec
    is a usage error there as here)."""
    try:
        data = json.loads(error_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    message = data.get("message") or "the target failed to load"
    return UsageError(message) if data.get("exit_code") == ExitCode.USAGE else TargetError(message)
