"""Locust's side of the locust engine: a master and its workers, each in a process of its own.

Importing Locust monkey-patches the whole interpreter with gevent, so this module never runs
inside memprobe's process (or pytest's): :mod:`memprobe.http.locust_engine` starts it as
``python -m memprobe.http.locust_driver master ...`` in a new process group, and it starts its
local workers as ``... worker``. It is also a locustfile: on another machine, ``locust -f
<this file> --worker --master-host HOST --master-port PORT`` joins a memprobe master.

Locust has no request limit, so the count is memprobe's: the master spawns ``concurrency``
users spread over the workers, then gives each worker an exact quota (a range of request
indices, in proportion to the users it got) with a custom message; a worker's users take
indices from its range and stop when it is spent, and the worker answers with its counts and
its latency histogram. The total sent is the sum of the quotas: exactly N.

Protocol with memprobe (JSON lines): jobs come on stdin; ``ready``, ``progress``, ``result``
and ``failed`` events go to the stdout memprobe gave (Locust's own logging goes to stderr).
"""
from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import gevent
from gevent.event import Event
from locust import FastHttpUser, constant, events, task
from locust.env import Environment
from locust.runners import STATE_MISSING, STATE_RUNNING, MasterRunner, WorkerRunner

from memprobe.http.hammer import errno_name
from memprobe.http.load import LoadResult
from memprobe.process.group import spawn

# The job travels with each worker's quota, in one message: a job broadcast apart from the
# quotas was seen missing on a worker of a loaded run (its users then failed on every request).
QUOTA, STOP = "memprobe_quota", "memprobe_stop"
PROGRESS, DONE = "memprobe_progress", "memprobe_done"
#: How often a worker tells the master how many of its requests are done (seconds).
PROGRESS_S = 0.2


def error_name(exc: BaseException | None) -> str:
    """The same names the native hammer counts errors under (refused, reset, ...)."""
    if exc is None:
        return "unknown"
    known = errno_name(exc)
    if known is not None:
        return known
    name = type(exc).__name__
    if "ParseError" in name:
        return "protocol"
    if "ConnectionClosed" in name:
        return "closed"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower().replace(" ", "-")
    return name


def is_timeout(exc: BaseException | None) -> bool:
    """Whether a failed request ran out of its time (connect or read)."""
    return isinstance(exc, (TimeoutError, socket.timeout, gevent.Timeout)) or "Timeout" in type(exc).__name__


class Quota:
    """A worker's share of the current job: its request indices, and what came of them."""

    def __init__(self) -> None:
        self.job: dict[str, Any] = {}
        self.generation = 0
        self.wake = Event()
        self.reset(0, 0)

    def reset(self, start: int, count: int | None) -> None:
        """A new range of request indices, ``count`` None: until the master says stop."""
        self.next, self.end = start, (None if count is None else start + count)
        self.inflight = self.done = 0
        #: this worker's outcomes, counted as the native hammer counts them
        self.counts = LoadResult("", "locust", 0, 0.0, engine="locust")
        self.active = count is None or count > 0
        self.reported = False

    def take(self) -> int | None:
        """The next request index of this worker's range, or None when it is spent."""
        if not self.active or (self.end is not None and self.next >= self.end):
            return None
        index = self.next
        self.next += 1
        self.inflight += 1
        self.counts.sent += 1
        return index

    def url(self, index: int) -> str:
        job = self.job
        if not job["templated"]:
            return job["url"]
        cycle = job.get("cycle")
        value = job.get("first", 0) + (index % cycle if cycle else index)
        return job["url"].replace("{n}", str(value))

    def record(self, status: int, error: BaseException | None, seconds: float) -> None:
        """Count one request's outcome as the native hammer does."""
        self.inflight -= 1
        self.done += 1
        counts = self.counts
        if status:
            counts.latency.add(seconds)
            counts.answer(status)
            return
        counts.failed += 1
        # geventhttpclient wraps what failed (a timeout, a reset) in RetriesExceeded.
        while getattr(error, "original", None) is not None:
            error = error.original  # type: ignore[union-attr]
        if is_timeout(error):
            counts.timeouts += 1
        else:
            name = error_name(error)
            counts.errors[name] = counts.errors.get(name, 0) + 1

    @property
    def finished(self) -> bool:
        return not self.reported and self.inflight == 0 and (
            not self.active or (self.end is not None and self.next >= self.end))

    def figures(self) -> dict[str, Any]:
        """What the master merges (msgpack keeps only string keys of a map: buckets are pairs)."""
        c = self.counts
        h = c.latency
        return {"sent": c.sent, "ok": c.ok, "failed": c.failed, "timeouts": c.timeouts,
                "errors": c.errors, "status_counts": c.status_counts,
                "latency": {"buckets": [[k, v] for k, v in h.counts.items()], "count": h.count,
                            "total": h.total, "min": h.min if h.count else 0.0, "max": h.max}}


QUOTA_STATE = Quota()


class MemprobeUser(FastHttpUser):
    """One of the ``-c`` concurrent clients: a request at a time, no think time, no retries,
    no redirects followed, no cookies kept (each would make the count or the load differ from
    the native hammer's)."""

    wait_time = constant(0)
    host = "http://127.0.0.1"  # every request is an absolute URL from the job
    concurrency = 1
    max_retries = 0
    max_redirects = 0

    def on_start(self) -> None:
        self.client.client.cookiejar = None
        self.generation = -1

    @task
    def one(self) -> None:
        q = QUOTA_STATE
        index = q.take()
        if index is None:
            # Idle until the next quota, with no connection held open to the server.
            self.client.client.clientpool.close()
            q.wake.wait()
            return
        if self.generation != q.generation:
            self.client.client.clientpool.close()
            args = self.client.client.clientpool.client_args
            args["network_timeout"] = args["connection_timeout"] = q.job["timeout"]
            self.generation = q.generation
        job = q.job
        t0 = time.perf_counter()
        try:
            resp = self.client.request(job["method"], q.url(index), data=job.get("body"),
                                       headers=job["headers"], allow_redirects=False, name=job["name"])
        except (Exception, gevent.Timeout) as exc:  # noqa: BLE001 - every request taken is counted
            # gevent's Timeout is no Exception and FastHttpSession lets it through; uncounted, the
            # quota would never be done.
            q.record(0, exc, time.perf_counter() - t0)
        else:
            q.record(resp.status_code or 0, getattr(resp, "error", None), time.perf_counter() - t0)
        if q.finished:
            _report(self.environment)


def _report(environment: Environment) -> None:
    q = QUOTA_STATE
    q.reported = True
    q.active = False
    runner = environment.runner
    assert runner is not None  # a worker's, set before any message comes
    runner.send_message(DONE, q.figures())


def _progress(environment: Environment, generation: int) -> None:
    q = QUOTA_STATE
    runner = environment.runner
    assert runner is not None
    while q.generation == generation and not q.reported:
        runner.send_message(PROGRESS, {"done": q.done})
        gevent.sleep(PROGRESS_S)


def register_worker(environment: Environment) -> None:
    """The worker's side of memprobe's messages: the job, its quota, stop."""
    runner = environment.runner
    assert isinstance(runner, WorkerRunner)

    def on_quota(environment: Environment, msg: Any, **_: Any) -> None:
        q = QUOTA_STATE
        q.job = msg.data["job"]
        q.reset(msg.data["start"], msg.data["count"])
        q.generation += 1
        wake, q.wake = q.wake, Event()
        wake.set()
        gevent.spawn(_progress, environment, q.generation)
        if q.finished:
            _report(environment)

    def on_stop(environment: Environment, msg: Any, **_: Any) -> None:
        q = QUOTA_STATE
        q.active = False
        if q.finished:
            _report(environment)

    runner.register_message(QUOTA, on_quota)
    runner.register_message(STOP, on_stop)


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    # `locust -f this_file --worker`: the plain Locust CLI as a memprobe worker.
    if isinstance(environment.runner, WorkerRunner):
        register_worker(environment)


class Master:
    """The driver: a Locust master, its local workers, and memprobe's jobs run one at a time."""

    def __init__(self, args: argparse.Namespace, out: Any) -> None:
        self.args = args
        self.out = out
        self.env = Environment(user_classes=[MemprobeUser], events=events)
        self.runner: MasterRunner = self.env.create_master_runner(args.bind_host, args.bind_port)
        self.port = int(self.runner.server.port)
        self.workers: list[subprocess.Popen[bytes]] = []
        self.done: dict[str, dict[str, Any]] = {}
        self.progress: dict[str, int] = {}
        self.runner.register_message(DONE, self._on_done)
        self.runner.register_message(PROGRESS, self._on_progress)
        self.users = 0
        self.generation = 0

    def _on_done(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.done[msg.node_id] = msg.data

    def _on_progress(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.progress[msg.node_id] = int(msg.data["done"])

    def emit(self, event: str, **data: Any) -> None:
        self.out.write(json.dumps({"event": event, **data}) + "\n")
        self.out.flush()

    def start_workers(self) -> None:
        connect = self.args.connect_host
        log_dir = self.args.log_dir
        for i in range(self.args.workers):
            log = open(os.path.join(log_dir, f"worker-{i}.log"), "wb")
            # In the master's group, which memprobe's stop ends; dying with the master besides.
            self.workers.append(spawn(
                [sys.executable, "-m", "memprobe.http.locust_driver", "worker",
                 "--master-host", connect, "--master-port", str(self.port)],
                own_group=False, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT))
            log.close()

    def lost(self, watched: list[str]) -> str | None:
        """Why the run cannot finish: a local worker died, or a worker the job needs is gone."""
        for proc in self.workers:
            code = proc.poll()
            if code is not None:
                how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
                return f"locust worker pid {proc.pid} died ({how})"
        for client_id in watched:
            node = self.runner.clients.get(client_id)
            if node is None:
                return f"locust worker {client_id} quit"
            if node.state == STATE_MISSING:
                return f"locust worker {client_id} stopped answering the master (heartbeat lost)"
        return None

    def wait_for_workers(self) -> None:
        deadline = time.monotonic() + self.args.ready_timeout
        while len(self._active()) < self.args.expect:
            why = self.lost([])
            if why:
                raise RuntimeError(why)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(self._active())} of {self.args.expect} locust workers connected "
                                   f"within {self.args.ready_timeout:g} s (master on port {self.port})")
            gevent.sleep(0.05)
        self.emit("ready", port=self.port, workers=len(self._active()))

    def _active(self) -> list[Any]:
        return self.runner.clients.ready + self.runner.clients.running + self.runner.clients.spawning

    def _users_by_worker(self) -> dict[str, int]:
        return {c.id: sum(c.user_classes_count.values()) for c in self._active()}

    def run_job(self, job: dict[str, Any]) -> None:
        users = int(job["concurrency"])
        if users != self.users:
            self.runner.start(users, spawn_rate=max(users, 1) * 1000)
            self.users = users
        deadline = time.monotonic() + self.args.ready_timeout
        while sum(self._users_by_worker().values()) != users or self.runner.state != STATE_RUNNING:
            why = self.lost([])
            if why:
                raise RuntimeError(why)
            if time.monotonic() > deadline:
                raise RuntimeError(f"locust spawned {sum(self._users_by_worker().values())} of {users} users")
            gevent.sleep(0.02)
        shares = {cid: u for cid, u in self._users_by_worker().items() if u > 0}
        n = job.get("n")
        quotas: dict[str, tuple[int, int | None]] = {}
        start = 0
        ids = sorted(shares)
        for i, cid in enumerate(ids):
            if n is None:
                quotas[cid] = (0, None)
                continue
            count = n * shares[cid] // users if i < len(ids) - 1 else n - start
            quotas[cid] = (start, count)
            start += count
        self.done, self.progress = {}, {}
        t0 = time.perf_counter()
        for cid, (first, count) in quotas.items():
            self.runner.send_message(QUOTA, {"job": job, "start": first, "count": count}, client_id=cid)
        duration = job.get("duration")
        stop_at = None if duration is None else time.monotonic() + float(duration)
        last = 0.0
        # Every request ends within its timeout, so workers whose count stands still for this
        # long are stuck: fail rather than wait for ever.
        stall_s = max(30.0, 5 * float(job["timeout"]))
        seen, moved = -1, time.monotonic()
        while len(self.done) < len(quotas):
            why = self.lost(list(quotas))
            done_now = sum(self.progress.values()) + len(self.done)
            if done_now != seen:
                seen, moved = done_now, time.monotonic()
            elif time.monotonic() - moved > stall_s:
                why = f"the locust workers sent nothing for {stall_s:g} s ({seen} requests done)"
            if why:
                done = sum(self.progress.values())
                raise RuntimeError(f"{why} during the load; about {done} requests were answered before, "
                                   f"the rest of the quota was never sent")
            if stop_at is not None and time.monotonic() >= stop_at:
                self.runner.send_message(STOP, None)
                stop_at = None
            now = time.monotonic()
            if now - last >= PROGRESS_S:
                self.emit("progress", done=sum(self.progress.values()))
                last = now
            gevent.sleep(0.005)
        elapsed = time.perf_counter() - t0
        self.emit("result", duration_s=elapsed, workers=len(quotas), by_worker=list(self.done.values()))

    def serve(self) -> None:
        """Run jobs read from stdin until it closes."""
        buf = b""
        while True:
            select.select([0], [], [])  # gevent's: the heartbeats go on while we wait
            chunk = os.read(0, 65536)
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                try:
                    self.run_job(json.loads(line))
                except RuntimeError as err:
                    self.emit("failed", message=str(err))
                    return

    def close(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.terminate()
        try:
            self.runner.quit()
        except Exception:  # noqa: BLE001 - a master already broken still ends its workers below
            pass
        for proc in self.workers:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _master(args: argparse.Namespace) -> int:
    # The protocol keeps the stdout memprobe reads; anything Locust or a library prints goes to
    # the log on stderr instead.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    master = Master(args, out)
    signal.signal(signal.SIGTERM, lambda *_: _end_now(master))
    try:
        master.start_workers()
        try:
            master.wait_for_workers()
        except RuntimeError as err:
            master.emit("failed", message=str(err))
            return 1
        master.serve()
        return 0
    finally:
        master.close()


def _end_now(master: Master) -> None:
    # SIGTERM from memprobe (its stop, its Ctrl-C): the workers go at once, no goodbyes.
    for proc in master.workers:
        if proc.poll() is None:
            proc.kill()
    os._exit(143)


def _worker(args: argparse.Namespace) -> int:
    env = Environment(user_classes=[MemprobeUser], events=events)
    env.create_worker_runner(args.master_host, args.master_port)
    env.events.init.fire(environment=env, runner=env.runner, web_ui=None)
    assert env.runner is not None
    env.runner.greenlet.join()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``master`` (memprobe's driver) or ``worker`` (joins a master)."""
    parser = argparse.ArgumentParser(prog="python -m memprobe.http.locust_driver")
    sub = parser.add_subparsers(dest="role", required=True)
    m = sub.add_parser("master")
    m.add_argument("--bind-host", default="127.0.0.1")
    m.add_argument("--bind-port", type=int, default=0)
    m.add_argument("--connect-host", default="127.0.0.1")
    m.add_argument("--workers", type=int, default=1)
    m.add_argument("--expect", type=int, default=1)
    m.add_argument("--ready-timeout", type=float, default=60.0)
    m.add_argument("--log-dir", required=True)
    w = sub.add_parser("worker")
    w.add_argument("--master-host", default="127.0.0.1")
    w.add_argument("--master-port", type=int, default=5557)
    args = parser.parse_args(argv)
    return _master(args) if args.role == "master" else _worker(args)


if __name__ == "__main__":
    sys.exit(main())
