"""The leak hunt: run an app with the agent inside, hammer each route, judge the growth.

Protocol, per route, in one child: tracemalloc (re)started one frame deep -> warm-up requests
-> ``gc.collect()`` and a baseline (USS from outside; traced size, a roots scan and type counts
inside) -> ``rounds`` rounds of ``requests`` requests, each followed by ``gc.collect()``, a
traced-size reading and a USS reading -> :func:`memprobe.hunt.model.judge` gives the verdict. For a
route that grew, one short attribution round traced ``frames`` deep: its snapshot diff gives
the sites; the roots scans (or a referrer chain) give the holders, and the type counts the types.

``hunt(...)`` returns a :class:`HuntResult`; it raises :class:`~memprobe.errors.TargetError`
when the target cannot be loaded or dies, with the partial result on ``err.partial``.
"""
from __future__ import annotations

import json
import linecache
import shlex
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

from memprobe.agent.attribution import group_sites
from memprobe.agent.control import AgentClient
from memprobe.errors import MemprobeError, TargetError, UsageError
from memprobe.http.hammer import Hammer, LoadResult, merge_loads
from memprobe.hunt.model import judge
from memprobe.process.child import EXIT_GRACE_S, LOOPBACK, Child, free_port
from memprobe.process.memory import read_memory, read_tree
from memprobe.results.hunt import Holder, HuntResult, Reading, RouteResult, Site
from memprobe.target import parse_target, precheck

__all__ = ["HuntResult", "RouteResult", "Site", "Holder", "hunt"]

Progress = Callable[[str], None]
#: Requests in the attribution round (deep tracebacks), at most ``requests``.
ATTRIBUTION_REQUESTS = 300
_ORDER = {"leak": 2, "bounded": 1, "clean": 0}


def hunt(
    target: str,
    routes: list[str] | None = None,
    requests: int = 2000,
    rounds: int = 5,
    warmup: int = 500,
    concurrency: int = 4,
    frames: int = 25,
    cmd: str | None = None,
    *,
    timeout: float = 10.0,
    ready_timeout: float = 30.0,
    cwd: str | Path | None = None,
    progress: Progress | None = None,
) -> HuntResult:
    """Hunt for leaks in ``target`` (``file.py:app``, ``module:create_app()``...), or in the
    server ``cmd`` starts (``{port}`` in it is replaced by a free port; outside readings only).

    Raises UsageError for bad settings and TargetError (with ``.partial``) when the target cannot
    be loaded or dies.
    """
    if requests <= 0 or rounds < 2 or warmup < 0 or concurrency <= 0 or frames < 1:
        raise UsageError("hunt needs --requests > 0, --rounds >= 2, --warmup >= 0, "
                         "--concurrency > 0 and --frames >= 1")
    settings = {"requests": requests, "rounds": rounds, "warmup": warmup,
                "concurrency": concurrency, "frames": frames, "cmd": cmd, "timeout_s": timeout}
    result = HuntResult(target=cmd or target, settings=settings, outside_only=cmd is not None)
    say = progress or (lambda _msg: None)
    started = time.monotonic()
    try:
        if cmd is not None:
            _hunt_cmd(result, cmd, routes, requests, rounds, warmup, concurrency, timeout,
                      ready_timeout, cwd, say)
        else:
            _hunt_agent(result, target, routes, requests, rounds, warmup, concurrency, frames,
                        timeout, ready_timeout, cwd, say)
    except MemprobeError as err:
        result.error = str(err)
        result.duration_s = time.monotonic() - started
        err.partial = result  # type: ignore[attr-defined]
        raise
    result.duration_s = time.monotonic() - started
    return result


def _hunt_agent(result: HuntResult, target: str, routes: list[str] | None, requests: int,
                rounds: int, warmup: int, concurrency: int, frames: int, timeout: float,
                ready_timeout: float, cwd: str | Path | None, say: Progress) -> None:
    spec = parse_target(target, cwd)
    precheck(spec, cwd)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="memprobe-hunt-") as tmp:
        control = Path(tmp) / "control.sock"
        error_file = Path(tmp) / "error.json"
        # The agent gets the file's absolute path, so the spec means the same in the child.
        resolved = target
        if spec.path is not None:
            resolved = f"{spec.path}:{target.rpartition(':')[2]}" if ":" in target else str(spec.path)
        argv = [sys.executable, "-m", "memprobe.agent", resolved, "--port", str(port),
                "--control", str(control), "--frames", str(frames),
                "--error-file", str(error_file), "--workers", str(concurrency)]
        child = Child(argv, name=f"the app ({spec.module})", url=f"http://{LOOPBACK}:{port}/",
                      cwd=cwd, ready_timeout=ready_timeout, env=_child_env(),
                      log_path=Path(tmp) / "agent.log")
        say(f"starting {target}")
        t0 = time.monotonic()
        try:
            child.start()
        except TargetError as err:
            raise _agent_error(error_file) or err from None
        phase = ["after it started"]
        try:
            result.startup_s = time.monotonic() - t0
            client = AgentClient(control, alive=child.check_alive).connect()
            hello = client.call("hello")
            result.app_kind, result.framework = hello["kind"], hello["framework"]
            todo = routes or hello["routes"] or ["/"]
            if not routes and hello["routes"]:
                result.notes.append(f"routes discovered from the app: {', '.join(todo)}")
            for route in todo:
                phase[0] = f"while hunting {route}"
                result.routes.append(_hunt_route(
                    child, client, port, route, Path(tmp), requests, rounds, warmup,
                    concurrency, frames, timeout, say))
            client.close()
        except MemprobeError as err:
            if child.exited(grace=EXIT_GRACE_S):
                raise TargetError(f"the app died {phase[0]} (exit code {child.proc.returncode})",
                                  child.log_tail()) from None
            raise err
        finally:
            child.stop()


def _child_env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    # The agent must import this memprobe, wherever the user runs it from.
    root = str(Path(__file__).resolve().parent.parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("PYTHONTRACEMALLOC", None)
    return env


def _agent_error(error_file: Path) -> TargetError | None:
    try:
        data = json.loads(error_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return TargetError(data.get("message") or "the target failed to load")


class _Counter:
    """``{n}`` in a route: a counter that goes on across warm-up and rounds."""

    def __init__(self) -> None:
        self.next = 0

    def hammer(self, url: str, n: int, concurrency: int, timeout: float) -> LoadResult:
        h = Hammer(url, n, concurrency=concurrency, timeout=timeout, first=self.next)
        self.next += n
        return h.run()


def _hunt_route(child: Child, client: AgentClient, port: int, route: str, tmp: Path,
                requests: int, rounds: int, warmup: int, concurrency: int, frames: int,
                timeout: float, say: Progress) -> RouteResult:
    if not route.startswith("/"):
        route = "/" + route
    url = f"http://{LOOPBACK}:{port}{route}"
    counter = _Counter()
    t0 = time.monotonic()
    notes: list[str] = []
    loads: list[LoadResult] = []
    client.call("trace")
    if warmup:
        say(f"{route}: warm-up, {warmup} requests")
        _check(child, counter.hammer(url, warmup, concurrency, timeout), route, notes)
    base = client.call("baseline")
    readings = [Reading(0, base["traced"], _uss(child.pid, base))]

    def measure(done: int) -> Reading:
        inside = client.call("measure")
        return Reading(done, inside["traced"], _uss(child.pid, inside))

    readings += _rounds(child, counter, url, route, rounds, requests, concurrency, timeout,
                        notes, loads, say, measure)
    done = readings[-1].requests
    judgement = judge(readings)
    growth = client.call("growth", requests=done)
    timings = growth.get("timings_s", {})
    sites: list[Site] = []
    if judgement.verdict != "clean":
        # Deep tracebacks only for one short round: they cost ~10x per allocation.
        base_path, end_path = tmp / "base.snapshot", tmp / "end.snapshot"
        attributed = min(requests, ATTRIBUTION_REQUESTS)
        say(f"{route}: attribution round, {attributed} requests traced {frames} frames deep")
        client.call("attribute", snapshot=str(base_path))
        load = counter.hammer(url, attributed, concurrency, timeout)
        _check(child, load, route, notes)
        snapshot = client.call("snapshot", snapshot=str(end_path))
        timings["snapshot"] = round(snapshot["snapshot_s"], 3)
        t1 = time.perf_counter()
        sites = _sites(base_path, end_path, load.sent)
        timings["sites"] = round(time.perf_counter() - t1, 3)
    holders = [Holder.from_dict(h) for h in growth.get("holders", [])]
    if not holders and sites:
        holders = _chains(client, sites)
    return RouteResult(route, judgement, readings, sites, growth.get("types", []), holders,
                       _load_summary(url, loads), time.monotonic() - t0, notes, timings)


def _chains(client: AgentClient, sites: list[Site]) -> list[Holder]:
    """When no root's container grew, the referrer chain from objects made at the top user
    site back to a module (objgraph's find_backref_chain)."""
    from memprobe.agent.holders import describe

    for site in [s for s in sites if s.user][:2]:
        found = client.call("chain", file=site.file, line=site.line).get("chain")
        if found:
            chain = found["chain"]
            return [Holder(describe(chain, found["type"], found["entries"]), chain,
                           found["type"], 0, found["entries"], 0.0, "referrers")]
    return []


def _load_summary(url: str, loads: list[LoadResult]) -> dict[str, Any]:
    """A route's measured rounds in one: counts, statuses, requests per second."""
    total = merge_loads(url, loads)
    return {"sent": total.sent, "ok": total.ok, "failed": total.failed,
            "status_counts": dict(sorted(total.status_counts.items())),
            "throughput_rps": round(total.sent / total.duration_s, 1) if total.duration_s else 0.0}


def _rounds(child: Child, counter: _Counter, url: str, route: str, rounds: int, requests: int,
            concurrency: int, timeout: float, notes: list[str], loads: list[LoadResult],
            say: Progress, read: Callable[[int], Reading]) -> list[Reading]:
    """The measured rounds: hammer, check the child lived, ``read(requests done)``."""
    readings: list[Reading] = []
    done = 0
    for i in range(rounds):
        say(f"{route}: round {i + 1}/{rounds}, {requests} requests")
        load = counter.hammer(url, requests, concurrency, timeout)
        _check(child, load, route, notes)
        loads.append(load)
        done += load.sent
        readings.append(read(done))
    return readings


def _check(child: Child, load: LoadResult, route: str, notes: list[str]) -> None:
    if load.answered < load.sent:
        # Resets and refusals: the child may be on its way out.
        child.check_alive(grace=EXIT_GRACE_S if load.errors else 0.0)
    if load.answered == 0:
        raise TargetError(f"{route}: none of {load.sent} requests got an answer "
                          f"({', '.join(load.errors) or 'timeouts'})", child.log_tail())
    bad = {k: v for k, v in load.status_counts.items() if not k.startswith(("2", "3"))}
    if bad:
        note = f"{route}: answered " + ", ".join(f"{v} x {k}" for k, v in sorted(bad.items()))
        if note not in notes:
            notes.append(note)


def _uss(pid: int, inside: dict[str, Any]) -> int | None:
    """USS without tracemalloc's own tables, which grow with every live traced block (~100 B
    each) and would make any Python leak look partly native."""
    uss = read_memory(pid).uss
    return None if uss is None else uss - int(inside.get("overhead", 0))


def _sites(base_path: Path, end_path: Path, requests: int) -> list[Site]:
    from memprobe.agent import holders as agent_side

    keep_out = [tracemalloc.Filter(False, agent_side.__file__, all_frames=True),
                tracemalloc.Filter(False, tracemalloc.__file__, all_frames=True)]
    base = tracemalloc.Snapshot.load(str(base_path)).filter_traces(keep_out)
    end = tracemalloc.Snapshot.load(str(end_path)).filter_traces(keep_out)
    diffs = [([(f.filename, f.lineno) for f in stat.traceback], stat.size_diff, stat.count_diff)
             for stat in end.compare_to(base, "traceback") if stat.size_diff > 0]
    sites = group_sites(diffs, requests)
    for site in sites:
        site.code = linecache.getline(site.file, site.line).strip()
    return sites


def _hunt_cmd(result: HuntResult, cmd: str, routes: list[str] | None, requests: int,
              rounds: int, warmup: int, concurrency: int, timeout: float,
              ready_timeout: float, cwd: str | Path | None, say: Progress) -> None:
    if "{port}" not in cmd:
        raise UsageError("--cmd must contain {port} where the server's port goes, e.g. "
                         "'gunicorn app:app -b 127.0.0.1:{port}'")
    port = free_port()
    argv = shlex.split(cmd.replace("{port}", str(port)))
    result.app_kind = "cmd"
    result.notes.append("outside readings only (USS of the process tree): no traced heap, "
                        "sites, types or holders")
    todo = routes or ["/"]
    say(f"starting {argv[0]}")
    t0 = time.monotonic()
    with Child(argv, name=Path(argv[0]).name, url=f"http://{LOOPBACK}:{port}{todo[0]}", cwd=cwd,
               ready_timeout=ready_timeout) as child:
        result.startup_s = time.monotonic() - t0
        for route in todo:
            url = f"http://{LOOPBACK}:{port}{route}"
            counter, notes, loads = _Counter(), [], []
            t1 = time.monotonic()
            if warmup:
                _check(child, counter.hammer(url, warmup, concurrency, timeout), route, notes)
            readings = [Reading(0, None, read_tree(child.pid).total.uss)]
            readings += _rounds(child, counter, url, route, rounds, requests, concurrency, timeout,
                                notes, loads, say,
                                lambda done: Reading(done, None, read_tree(child.pid).total.uss))
            result.routes.append(RouteResult(route, judge(readings), readings, load=_load_summary(url, loads),
                                             duration_s=time.monotonic() - t1, notes=notes))
