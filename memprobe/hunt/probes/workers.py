"""A Python server started from a command (``gunicorn -w 2 ...``, ``uvicorn --workers 2 ...``),
with the agent injected into every worker: one set of readings per process, one verdict for
the whole server.

The command runs with memprobe's bootstrap first on ``PYTHONPATH``
(:mod:`memprobe.agent.channel`): each worker opens ``<pid>.sock`` in the hunt's channel
directory when it loads the app, and counts the requests it serves. At every round boundary
each worker collects its garbage and reads its traced heap (in parallel), and USS and PSS of
every process of the server are read from outside. The protocol sees the server as one: the
traced heap summed over the workers and the PSS summed over all its processes (a master's pages
its forked workers share counted once), per request any worker served. :meth:`processes` gives
each process's own judgement, on the requests *it* served.

A worker that dies during a route (a crash, ``--max-requests``, SIGKILL) keeps the readings it
had; the one the server starts in its place joins at its first reading, with a baseline of its
own. Each is named as the other's ``respawned``; their rounds are never mixed, and the server's
sums add what each process grew while it lived.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from memprobe.agent.channel import Channel
from memprobe.agent.control import AgentClient
from memprobe.agent.inject import ENV_CHANNEL
from memprobe.errors import TargetError
from memprobe.http.load import LoadResult
from memprobe.hunt.model import judge
from memprobe.hunt.probes import AppInfo, Attribution
from memprobe.hunt.probes.merge import merge
from memprobe.hunt.probes.server import CommandProbe, loopback_base, send_load
from memprobe.process.child import EXIT_GRACE_S, Child, pid_alive
from memprobe.process.memory import read_memory, read_tree
from memprobe.results.hunt import HuntSettings, Judgement, Reading, WorkerResult

_PYTHON = re.compile(r"^python(\d+(\.\d+)*)?$")
#: How long the set of agents must stay the same before the hunt starts without all the
#: workers the command asked for.
_STABLE_S = 1.0


def is_python_command(cmd: str, cwd: str | Path | None = None) -> bool:
    """Whether ``cmd`` runs Python: an interpreter, or a script whose ``#!`` line names one
    (gunicorn's and uvicorn's console scripts)."""
    try:
        argv = shlex.split(cmd)
    except ValueError:
        return False
    if not argv:
        return False
    name = os.path.basename(argv[0])
    if _PYTHON.match(name):
        return True
    path = argv[0] if os.sep in argv[0] else shutil.which(argv[0])
    if path is None:
        return False
    try:
        with open(Path(cwd or ".", path), "rb") as fh:
            first = fh.readline(256)
    except OSError:
        return False
    return first.startswith(b"#!") and b"python" in first


def expected_workers(argv: list[str]) -> int:
    """The workers the command asks for (gunicorn ``-w``/``--workers``, uvicorn ``--workers``)."""
    for i, arg in enumerate(argv):
        value = None
        if arg in ("-w", "--workers") and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--workers="):
            value = arg.split("=", 1)[1]
        elif arg.startswith("-w") and arg[2:].isdigit():
            value = arg[2:]
        if value is not None and value.isdigit():
            return max(1, int(value))
    return 1


@dataclass
class _Proc:
    """One process of the server during a route, as the parent follows it."""

    pid: int
    role: str
    client: AgentClient | None = None
    readings: list[Reading] = field(default_factory=list)
    #: requests it had served at its first reading of the route, and at its latest
    served0: int | None = None
    served: int | None = None
    #: first and latest traced heap and PSS (for the server's sums)
    first: tuple[int | None, int | None] = (None, None)
    last: tuple[int | None, int | None] = (None, None)
    dead: bool = False
    respawned: dict[str, Any] | None = None
    deepened_at: int | None = None
    attribution: Attribution | None = None
    attributed: int = 0

    @property
    def done(self) -> int:
        """Requests it served since its first reading."""
        if self.served is None or self.served0 is None:
            return 0
        return self.served - self.served0


class WorkersProbe(CommandProbe):
    """Start ``cmd`` (``{port}`` in it becomes a free port) with the agent in every worker."""

    mode = "workers"
    sees_inside = True
    memory = "pss"

    def __init__(self, cmd: str, settings: HuntSettings, cwd: str | Path | None = None,
                 ready_path: str = "/") -> None:
        super().__init__(cmd, settings, cwd, ready_path)
        self.channel: Channel | None = None
        self.procs: dict[int, _Proc] = {}
        self.route_procs: list[_Proc] = []
        self.counted = True
        self._base: tuple[int, int] | None = None
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="memprobe-workers")
        #: a server started before the hunt (the pytest fixture's ``serve(cmd=...)``): its agents
        #: are found, and it is left running with its channel at the end
        self.adopted = False

    @classmethod
    def running(cls, cmd: str, child: Child, channel: Channel, port: int, settings: HuntSettings,
                ready_path: str = "/") -> WorkersProbe:
        """The server ``cmd`` started as ``child`` with ``channel``'s environment, answering on
        ``port``: :meth:`open` finds its agents, :meth:`close` leaves it running."""
        probe = cls(cmd, settings, child.cwd, ready_path)
        probe.child, probe.channel, probe.port, probe.adopted = child, channel, port, True
        return probe

    # -- the server's life --------------------------------------------------------------------

    def open(self) -> AppInfo:
        """Start the command (unless it runs already), wait until it answers HTTP and its
        workers' agents are up."""
        t0 = time.monotonic()
        if self.adopted:
            assert self.child is not None
            argv = list(self.child.argv)
        else:
            self.channel = Channel()
            argv = self.start_command(env=self.channel.env(frames=self.settings.frames),
                                      log_path=self.channel.path / "server.log")
        hellos = self._await_agents(expected_workers(argv), t0 + self.settings.ready_timeout)
        return self._info(hellos, time.monotonic() - t0, self.cmd)

    def _info(self, hellos: list[dict[str, Any]], startup: float, label: str) -> AppInfo:
        first = hellos[0]
        self.counted = all(h.get("served") is not None for h in hellos)
        workers = sorted(h["pid"] for h in hellos)
        notes = [f"{len(workers)} worker{'s' if len(workers) != 1 else ''} with the agent inside "
                 f"(pids {', '.join(map(str, workers))})"
                 + ("" if self.master in workers else f", master pid {self.master} read from outside")]
        if not self.counted:
            notes.append("the server's requests are not counted inside it (not a gunicorn or "
                         "uvicorn app): bytes per request are per request sent")
        return AppInfo(first.get("kind"), first.get("framework"), list(first.get("routes") or []),
                       startup, label=label, notes=notes)

    @property
    def master(self) -> int:
        """The server's first process (gunicorn's arbiter, uvicorn's supervisor, the app)."""
        assert self.child is not None, "open() first"
        return self.child.pid

    def check_alive(self, grace: float = 0.0) -> None:
        """TargetError (with the log's tail) when the server has died."""
        if self.child is not None:
            self.child.check_alive(grace)

    def _await_agents(self, expected: int, deadline: float) -> list[dict[str, Any]]:
        assert self.channel is not None
        seen: dict[int, dict[str, Any]] = {}
        stable_since = time.monotonic()
        while True:
            for pid, path in self.channel.agents().items():
                if pid not in seen:
                    client = AgentClient(path).connect()
                    seen[pid] = client.call("hello")
                    self.procs[pid] = _Proc(pid, "worker", client)
                    stable_since = time.monotonic()
            now = time.monotonic()
            if len(seen) >= expected or (seen and now - stable_since >= _STABLE_S and now > deadline):
                break
            if now > deadline + _STABLE_S:
                raise TargetError(f"pid {self.master}: no memprobe agent came up in its processes "
                                  "within the start timeout (does it run Python with -I, -E or -S, "
                                  "or a server memprobe does not hook?)",
                                  self.child.log_tail() if self.child is not None else "")
            self.check_alive()
            time.sleep(0.05)
        if self.master not in seen:
            self.procs[self.master] = _Proc(self.master, "master")
        return list(seen.values())

    def close(self) -> None:
        """Close the channels; stop the server's process group and remove the channel directory,
        unless the server was running before the hunt: then every agent stops tracing and the
        server serves on, as it did before."""
        try:
            if self.adopted:
                self._each("end", [p for p in self.procs.values() if not p.dead and p.client is not None])
        finally:
            for proc in self.procs.values():
                if proc.client is not None:
                    proc.client.close()
            self._pool.shutdown(wait=True)
            if not self.adopted:
                try:
                    super().close()
                finally:
                    if self.channel is not None:
                        self.channel.close()

    def send(self, route: str, n: int, first: int) -> LoadResult:
        """``n`` requests, a new connection each: the kernel hands connections to whichever
        worker accepts first, and a few keep-alive connections would leave a worker with none
        for whole rounds (measured with uvicorn --workers 2: a worker served 0 of 500)."""
        load = send_load(self.url(route), n, first, self.settings, self.load_engine, mode="close")
        if load.answered < load.sent:
            self.check_alive(grace=EXIT_GRACE_S if load.errors else 0.0)
        return load

    # -- following the workers ----------------------------------------------------------------

    def _refresh(self) -> None:
        """New agents joined, dead workers noted; a newcomer after a death is its successor."""
        assert self.channel is not None
        for proc in list(self.procs.values()):
            if proc.role == "worker" and not proc.dead and not pid_alive(proc.pid):
                self._died(proc)
        for pid, path in self.channel.agents().items():
            if pid in self.procs:
                continue
            try:
                client = AgentClient(path).connect(deadline_s=2.0)
            except TargetError:
                continue  # it went away as fast as it came
            proc = _Proc(pid, "worker", client)
            self.procs[pid] = proc
            self.route_procs.append(proc)
            orphan = next((p for p in self.route_procs if p.dead and p.respawned is not None
                           and p.respawned.get("successor") is None), None)
            if orphan is not None:
                orphan.respawned = {**orphan.respawned, "successor": pid}  # type: ignore[dict-item]
                proc.respawned = {"replaces": orphan.pid}

    def _died(self, proc: _Proc) -> None:
        proc.dead = True
        if proc.client is not None:
            proc.client.close()
            proc.client = None
        proc.respawned = {"died_after_requests": proc.done, "readings": len(proc.readings),
                          "successor": None}

    @property
    def serving(self) -> int:
        """The live workers (each serves a share of the requests and warms up on its own)."""
        return max(1, len(self._live()))

    def _live(self) -> list[_Proc]:
        return [p for p in self.route_procs if p.role == "worker" and not p.dead and p.client is not None]

    def _each(self, cmd: str, procs: list[_Proc],
              per: Callable[[_Proc], dict[str, Any]] | None = None) -> dict[int, dict[str, Any]]:
        """``cmd`` to every agent in ``procs`` at once (``per(proc)``: its arguments); a worker
        that died meanwhile is noted, not an error."""
        def call(proc: _Proc) -> dict[str, Any] | None:
            assert proc.client is not None
            try:
                return proc.client.call(cmd, **(per(proc) if per else {}))
            except TargetError:
                if pid_alive(proc.pid):
                    raise
                return None

        out = {}
        for proc, answer in zip(procs, list(self._pool.map(call, procs))):
            if answer is None:
                self._died(proc)
            else:
                out[proc.pid] = answer
        return out

    # -- the protocol's steps -----------------------------------------------------------------

    def begin(self, route: str) -> None:
        """A new route: every live worker restarts tracing; each process's series starts anew."""
        self._refresh()
        for pid in [pid for pid, p in self.procs.items() if p.dead]:
            del self.procs[pid]
        for proc in self.procs.values():
            proc.readings, proc.served0, proc.served = [], None, None
            proc.first = proc.last = (None, None)
            proc.respawned, proc.deepened_at, proc.attribution, proc.attributed = None, None, None, 0
        self.route_procs = list(self.procs.values())
        self._base = None
        self._each("begin", self._live())

    def read(self, done: int, baseline: bool = False) -> Reading:
        """Every worker collects its garbage and reads its heap; every process's USS and PSS
        from outside; the server's reading is the sums, at the requests all workers served."""
        self._refresh()
        live = self._live()
        fresh = [p for p in live if baseline or not p.readings]
        answers = self._each("baseline", fresh)
        answers.update(self._each("measure", [p for p in live if p not in fresh]))
        tree = read_tree(self.master).processes
        for proc in self.route_procs:
            if proc.dead or (proc.role == "worker" and proc.pid not in answers):
                continue
            memory = tree.get(proc.pid) or _memory(proc.pid)
            if memory is None:
                continue
            inside = answers.get(proc.pid, {})
            overhead = int(inside.get("overhead", 0))
            uss = None if memory.uss is None else memory.uss - overhead
            pss = None if memory.pss is None else memory.pss - overhead
            traced = int(inside["traced"]) if "traced" in inside else None
            if proc.role == "worker":
                served = inside.get("served")
                proc.served = done if served is None else int(served)
                if proc.served0 is None:
                    proc.served0 = proc.served
            if not proc.readings:
                proc.first = (traced, pss)
            proc.last = (traced, pss)
            proc.readings.append(Reading(proc.done if proc.role == "worker" else -1, traced, uss))
        served_all = self._served_all(done)
        for proc in self.route_procs:  # the master's series is on the server's requests
            if proc.role == "master" and proc.readings and proc.readings[-1].requests == -1:
                proc.readings[-1] = Reading(served_all, None, proc.readings[-1].uss)
        # Helpers (multiprocessing's resource tracker) serve nothing: their PSS counts as is.
        helpers = sum(r.pss or 0 for pid, r in tree.items() if pid not in self.procs)
        traced_sum = sum(p.last[0] - p.first[0] for p in self.route_procs
                         if p.first[0] is not None and p.last[0] is not None)
        pss_sum = sum(p.last[1] - p.first[1] for p in self.route_procs
                      if p.first[1] is not None and p.last[1] is not None)
        if self._base is None:
            self._base = (sum(p.first[0] or 0 for p in self.route_procs),
                          sum(p.first[1] or 0 for p in self.route_procs) + helpers)
        return Reading(served_all, self._base[0] + traced_sum, self._base[1] + pss_sum)

    def _served_all(self, done: int) -> int:
        if not self.counted:
            return done
        return sum(p.done for p in self.route_procs if p.role == "worker")

    def growth(self, done: int) -> None:
        """Each worker notes what grew over the requests it served."""
        self._each("growth", self._live(), lambda p: {"requests": p.done})

    def deepen(self) -> None:
        """Deep tracebacks in every worker; each one's count noted for its attribution round."""
        live = self._live()
        self._each("deepen", live)
        for pid, answer in self._each("hello", live).items():
            served = answer.get("served")
            self.procs[pid].deepened_at = None if served is None else int(served)

    def attribute(self, requests: int, chains: bool = True) -> Attribution:
        """Each worker's sites, types and holders over the requests it served in the round;
        the server's are their sums (:mod:`memprobe.hunt.probes.merge`)."""
        live = [p for p in self._live() if p.readings]
        counts = self._each("hello", live)
        share = max(1, requests // max(1, len(live)))
        for proc in live:
            served = counts.get(proc.pid, {}).get("served")
            proc.attributed = (int(served) - proc.deepened_at
                               if served is not None and proc.deepened_at is not None else share)
        answers = self._each("attribute", live, lambda p: {"requests": max(1, p.attributed), "chains": chains})
        parts = []
        for proc in live:
            if proc.pid in answers:
                proc.attribution = Attribution.from_dict(answers[proc.pid])
                parts.append((proc.attribution, proc.attributed))
        return merge(parts, self._served_all(0) or requests)

    def processes(self) -> list[WorkerResult]:
        """Each process of the route, judged on its own series (master first, then by pid)."""
        out = []
        for proc in sorted(self.route_procs, key=lambda p: (p.role != "master", p.pid)):
            if not proc.readings:
                continue
            judgement = _judge(proc.readings)
            att = proc.attribution if judgement.verdict != "clean" else None
            out.append(WorkerResult(
                judgement=judgement, readings=list(proc.readings), sites=att.sites if att else [],
                types=att.types if att else [], holders=att.holders if att else [], pid=proc.pid, role=proc.role,
                requests=proc.done if proc.role == "worker" else 0, respawned=proc.respawned))
        return out


def _judge(readings: list[Reading]) -> Judgement:
    # A round in which this process served nothing says nothing of its growth per request,
    # and would look like growth that stopped.
    readings = [r for i, r in enumerate(readings) if i == 0 or r.requests > readings[i - 1].requests]
    if len(readings) < 3:
        return Judgement("clean", None, None, None,
                         f"only {len(readings)} reading{'s' if len(readings) != 1 else ''}: too few "
                         "rounds to judge")
    return judge(readings)


def _memory(pid: int) -> Any:
    try:
        return read_memory(pid)
    except TargetError:
        return None


class RunningServerProbe(WorkersProbe):
    """A server started earlier under ``memprobe run`` (its agents already listen in the
    channel named in its environment), reached by the pid of its first process: hunted worker
    by worker like a server memprobe starts, and left running."""

    def __init__(self, pid: int, channel: str, url: str, settings: HuntSettings) -> None:
        super().__init__("{port}", settings)
        self.base = loopback_base(url)
        self.pid = pid
        self.channel_path = channel
        self.adopted = True  # memprobe run's: left serving, its channel kept

    def url(self, route: str) -> str:
        """The URL of ``route`` on the running server."""
        return self.base + route

    @property
    def master(self) -> int:
        """The pid the hunt was given."""
        return self.pid

    def check_alive(self, grace: float = 0.0) -> None:
        """TargetError when the server's first process is gone."""
        deadline = time.monotonic() + grace
        while not pid_alive(self.pid):
            if time.monotonic() >= deadline:
                raise TargetError(f"pid {self.pid} exited")
            time.sleep(0.01)

    def open(self) -> AppInfo:
        """Reach the agents already listening in the server's channel."""
        self.channel = Channel(self.channel_path)
        t0 = time.monotonic()
        hellos = self._await_agents(1, t0 + self.settings.ready_timeout)
        return self._info(hellos, time.monotonic() - t0, f"pid {self.pid} ({self.base})")


def run_channel(pid: int) -> str | None:
    """The channel of a process started under ``memprobe run`` (``$MEMPROBE_CHANNEL`` in its
    environment), None for any other process or one whose environment cannot be read."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            entries = fh.read().split(b"\0")
    except OSError:
        return None
    key = ENV_CHANNEL.encode() + b"="
    found = next((e[len(key):].decode(errors="replace") for e in entries if e.startswith(key)), None)
    return found if found and os.path.isdir(found) else None

