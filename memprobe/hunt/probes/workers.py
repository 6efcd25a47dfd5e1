"""Reading a server worker by worker (:class:`AgentPerWorker`): an agent in every worker, one
set of readings per process, one verdict for the whole server.

The agents get in three ways: injected at start (a command memprobe starts runs with its
bootstrap armed, :mod:`memprobe.agent.channel`), already listening (a server started under
``memprobe run`` or by the pytest fixture's ``serve(cmd=...)``), or attached to each worker of
a running server (:mod:`memprobe.agent.attach`). Each worker opens ``<pid>.sock`` in the
channel directory when it loads the app, and counts the requests it serves. At every round boundary
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
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

import psutil

from memprobe.agent.channel import Channel
from memprobe.agent.control import AgentClient
from memprobe.agent.inject import ENV_CHANNEL, HELPERS
from memprobe.agent.messages import HeapReading, Hello
from memprobe.errors import AgentLost, MemprobeError, TargetError
from memprobe.hunt.model import judge
from memprobe.hunt.probes import AppInfo, Attribution, Launch, Reach, RssLines
from memprobe.hunt.probes.agent import START, STOP
from memprobe.hunt.probes.merge import merge
from memprobe.process.child import pid_alive
from memprobe.process.memory import read_memory, read_tree
from memprobe.results.hunt import HuntSettings, Judgement, Reading, WorkerResult

_T = TypeVar("_T")
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


class AgentPerWorker:
    """A server read through an agent in each of its workers; see the module's docstring."""

    mode = "workers"
    sees_inside = True
    memory = "pss"
    #: a new connection a request: the kernel hands connections to whichever worker accepts
    #: first, and a few keep-alive connections would leave a worker with none for whole rounds
    #: (measured with uvicorn --workers 2: a worker served 0 of 500)
    connections = "close"

    def __init__(self, settings: HuntSettings, channel: Channel | None, how: str) -> None:
        self.settings = settings
        self.channel = channel
        #: ``injected``, ``listening`` or ``attached``
        self.how = how
        self.master = 0
        self.procs: dict[int, _Proc] = {}
        self.route_procs: list[_Proc] = []
        self.counted = True
        self._base: tuple[int, int] | None = None
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="memprobe-workers")
        #: attached: the workers the agent went into, and how
        self.injected: list[int] = []
        self._injections: list[Any] = []
        #: attached: a process with no worker is attached to itself (a single-process server)
        self.itself = False

    @classmethod
    def injecting(cls, settings: HuntSettings) -> AgentPerWorker:
        """The agent armed in the environment of the command the reach starts: a channel of
        the hunt's own (made at :meth:`launch`), removed at the end."""
        return cls(settings, None, "injected")

    @classmethod
    def listening(cls, settings: HuntSettings, channel: Channel) -> AgentPerWorker:
        """Agents already listening in ``channel`` (a server started under ``memprobe run`` or
        by the pytest fixture): found, told to stop tracing at the end, the channel kept."""
        return cls(settings, channel, "listening")

    @classmethod
    def attaching(cls, settings: HuntSettings, itself: bool = False) -> AgentPerWorker:
        """The agent attached to each worker of the running server, and stopped at the end.
        Workers that start during the hunt get no agent. ``itself``: a process that has no
        worker is attached to as its own only worker (a single-process server)."""
        reader = cls(settings, None, "attached")
        reader.itself = itself
        return reader

    # -- getting in ---------------------------------------------------------------------------

    def launch(self) -> Launch:
        """A command started for these agents carries the channel in its environment."""
        if self.how != "injected":
            return Launch()
        self.channel = Channel()
        return Launch(self.channel.env(frames=self.settings.frames), self.channel.path / "server.log")

    def start_failed(self, err: MemprobeError) -> MemprobeError:
        """The server's own failure says it all."""
        return err

    def connect(self, reach: Reach) -> AppInfo:
        """Wait until every worker's agent is up (attaching them first, to a running server)."""
        self.master = reach.pid
        deadline = time.monotonic() + self.settings.ready_timeout
        notes = []
        if self.how == "attached":
            workers = worker_pids(reach.pid) or ([reach.pid] if self.itself else [])
            if not workers:
                raise TargetError(f"pid {reach.pid} has no Python worker to attach to now")
            self._attach(workers)
            took = sum(i.seconds for i in self._injections)
            notes.append(f"attached to {len(workers)} workers of pid {reach.pid} with "
                         f"{self._injections[0].method} in {took:.2f} s")
            expected = len(workers)
        else:
            expected = expected_workers(reach.argv)
        hellos = self._await_agents(expected, deadline, reach)
        first = hellos[0]
        self.counted = all(h.served is not None for h in hellos)
        workers = sorted(h.pid for h in hellos)
        notes.append(f"{len(workers)} worker{'s' if len(workers) != 1 else ''} with the agent inside "
                     f"(pids {', '.join(map(str, workers))})"
                     + ("" if self.master in workers else f", master pid {self.master} read from outside"))
        if not self.counted:
            notes.append("the server's requests are not counted inside it (not a gunicorn or "
                         "uvicorn app): bytes per request are per request sent")
        return AppInfo(first.kind, first.framework, list(first.routes), notes=notes,
                       routes_note=first.routes_note)

    def _attach(self, workers: list[int]) -> None:
        from memprobe.agent import attach

        self.channel = Channel()
        uids = {attach.inspect_target(w).uid for w in workers}
        if os.geteuid() == 0 and len(uids) == 1 and uids != {0}:
            os.chown(self.channel.path, uids.pop(), -1)
        code = START.format(channel=str(self.channel.path), frames=self.settings.frames)
        for worker in workers:
            self._injections.append(attach.run_in(worker, code, timeout=self.settings.ready_timeout,
                                                  method=self.settings.attach_method))
            self.injected.append(worker)

    def _await_agents(self, expected: int, deadline: float, reach: Reach) -> list[Hello]:
        assert self.channel is not None
        seen: dict[int, Hello] = {}
        stable_since = time.monotonic()
        while True:
            for pid, path in self.channel.agents().items():
                if pid not in seen:
                    client = AgentClient(path).connect()
                    seen[pid] = client.hello()
                    self.procs[pid] = _Proc(pid, "worker", client)
                    stable_since = time.monotonic()
            now = time.monotonic()
            if len(seen) >= expected or (seen and now - stable_since >= _STABLE_S and now > deadline):
                break
            if now > deadline + _STABLE_S:
                raise TargetError(f"pid {self.master}: no memprobe agent came up in its processes "
                                  "within the start timeout (does it run Python with -S, or drop its "
                                  "environment, or is it a server memprobe does not hook?)", reach.log_tail())
            reach.check_alive()
            time.sleep(0.05)
        if self.master not in seen:
            self.procs[self.master] = _Proc(self.master, "master")
        return list(seen.values())

    def rss_lines(self, route: str, requests: int, uss_per_request: float, first: int) -> RssLines | None:
        """Not here: the view is run only in an app memprobe serves itself."""
        return None

    def close(self) -> None:
        """Every agent stops tracing (one already listening) or is stopped inside (one attached):
        the server serves on as it did; the channels are closed."""
        try:
            if self.how == "listening":
                serving = [p for p in self.procs.values() if not p.dead and p.client is not None]
                self._each(lambda client, _p: client.end(), serving)
        finally:
            for proc in self.procs.values():
                if proc.client is not None:
                    proc.client.close()
                    proc.client = None
            self._pool.shutdown(wait=True)
            self._stop_attached()

    def _stop_attached(self) -> None:
        from memprobe.agent import attach

        for worker in self.injected:
            if pid_alive(worker):
                try:
                    attach.run_in(worker, STOP, timeout=self.settings.ready_timeout,
                                  method=self.settings.attach_method)
                except MemprobeError:
                    pass  # it exited meanwhile, or cannot be reached again: nothing is left to stop
        self.injected.clear()

    def cleanup(self) -> None:
        """Remove the channel directory the hunt made (after the server stopped); one whose
        agents were listening before the hunt stays with whoever made it."""
        if self.channel is not None and self.how != "listening":
            self.channel.close()

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

    def _died(self, proc: _Proc, lost_after_s: float | None = None) -> None:
        proc.dead = True
        if proc.client is not None:
            proc.client.close()
            proc.client = None
        proc.respawned = {"died_after_requests": proc.done, "readings": len(proc.readings),
                          "successor": None}
        if lost_after_s is not None:  # alive but silent: wedged, or stopped
            proc.respawned["lost_after_s"] = round(lost_after_s, 1)

    def follow(self) -> list[int]:
        """The live workers now, outside any route (``memprobe watch`` between its windows):
        new agents joined (a respawned worker's successor among them), dead ones noted."""
        if not self.route_procs:
            self.route_procs = list(self.procs.values())
        self._refresh()
        return [p.pid for p in self._live()]

    def ask_each(self, ask: Callable[[AgentClient, int], _T], pids: Collection[int] | None = None) -> dict[int, _T]:
        """``ask(client, pid)`` of every live worker (of ``pids``) at once; a worker that died
        or went silent meanwhile is noted, as between a hunt's rounds."""
        live = [p for p in self._live() if pids is None or p.pid in pids]
        return self._each(lambda client, proc: ask(client, proc.pid), live)

    @property
    def serving(self) -> int:
        """The live workers (each serves a share of the requests and warms up on its own)."""
        return max(1, len(self._live()))

    def _live(self) -> list[_Proc]:
        return [p for p in self.route_procs if p.role == "worker" and not p.dead and p.client is not None]

    def _each(self, ask: Callable[[AgentClient, _Proc], _T], procs: list[_Proc]) -> dict[int, _T]:
        """``ask(client, proc)`` of every agent in ``procs`` at once. A
        worker that died meanwhile is noted, not an error; so is one whose agent went silent
        (:class:`~memprobe.errors.AgentLost`, a few seconds): its readings so far are kept, and
        the hunt goes on with the others."""
        def call(proc: _Proc) -> _T | AgentLost | None:
            assert proc.client is not None
            try:
                return ask(proc.client, proc)
            except AgentLost as lost:
                return lost
            except TargetError:
                if pid_alive(proc.pid):
                    raise
                return None

        out: dict[int, _T] = {}
        for proc, answer in zip(procs, list(self._pool.map(call, procs))):
            if answer is None:
                self._died(proc)
            elif isinstance(answer, AgentLost):
                self._died(proc, lost_after_s=answer.silent_s)
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
        self._each(lambda client, _p: client.begin(), self._live())

    def read(self, done: int, baseline: bool = False) -> Reading:
        """Every worker collects its garbage and reads its heap; every process's USS and PSS
        from outside; the server's reading is the sums, at the requests all workers served."""
        self._refresh()
        live = self._live()
        fresh = [p for p in live if baseline or not p.readings]
        answers = self._each(lambda client, _p: client.baseline(), fresh)
        answers.update(self._each(lambda client, _p: client.measure(), [p for p in live if p not in fresh]))
        tree = read_tree(self.master).processes
        for proc in self.route_procs:
            if proc.dead or (proc.role == "worker" and proc.pid not in answers):
                continue
            memory = tree.get(proc.pid) or _memory(proc.pid)
            if memory is None:
                continue
            inside = answers.get(proc.pid, HeapReading())
            overhead = inside.overhead
            uss = None if memory.uss is None else memory.uss - overhead
            pss = None if memory.pss is None else memory.pss - overhead
            traced = inside.traced
            if proc.role == "worker":
                served = inside.served
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
        self._each(lambda client, p: client.growth(p.done), self._live())

    def deepen(self) -> None:
        """Deep tracebacks in every worker; each one's count noted for its attribution round."""
        live = self._live()
        self._each(lambda client, _p: client.deepen(), live)
        for pid, answer in self._each(lambda client, _p: client.hello(), live).items():
            served = answer.served
            self.procs[pid].deepened_at = None if served is None else int(served)

    def attribute(self, requests: int, chains: bool = True) -> Attribution:
        """Each worker's sites, types and holders over the requests it served in the round;
        the server's are their sums (:mod:`memprobe.hunt.probes.merge`)."""
        live = [p for p in self._live() if p.readings]
        counts = self._each(lambda client, _p: client.hello(), live)
        share = max(1, requests // max(1, len(live)))
        for proc in live:
            served = counts[proc.pid].served if proc.pid in counts else None
            proc.attributed = (int(served) - proc.deepened_at
                               if served is not None and proc.deepened_at is not None else share)
        answers = self._each(lambda client, p: client.attribute(max(1, p.attributed), chains), live)
        parts = []
        for proc in live:
            if proc.pid in answers:
                proc.attribution = Attribution.of(answers[proc.pid])
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


def worker_pids(pid: int) -> list[int]:
    """The Python children of ``pid`` that serve (a gunicorn master's workers, uvicorn's
    spawned ones, a reloader's server), multiprocessing's helpers left out."""
    from memprobe.agent import attach

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

