"""``memprobe watch``: real gunicorn servers (sync and gthread, 2 workers) under real load from
memprobe's hammer, the recorder inside each worker, the windows collected by the parent.

The app is tests/servers/watch/shop.py: five routes, of which POST /orders keeps ~200 B a
request only when the form says ``gift=1``.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import pytest

from memprobe.http.hammer import Hammer
from memprobe.process.child import free_port
from memprobe.watch.session import WatchRecord, WatchSettings, watch
from tests.conftest import REPO, ctrl_c_reaches_it, wait_until

APP = REPO / "tests" / "servers" / "watch"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

pytestmark = pytest.mark.slow




class Watching:
    """``watch()`` run in a thread (it blocks until its duration ends), its record kept."""

    def __init__(self, settings: WatchSettings) -> None:
        self.settings = settings
        self.record: WatchRecord | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.record = watch(self.settings)
        except BaseException as err:  # shown by result()
            self.error = err

    def recording(self, workers: int) -> dict[str, Any]:
        """Wait until the rolling report says ``workers`` workers record; the report."""
        assert self.settings.json is not None
        path = Path(self.settings.json)

        def ready() -> dict[str, Any] | None:
            if self.error is not None:
                raise self.error
            if not path.exists():
                return None
            data = json.loads(path.read_text(encoding="utf-8"))
            recording = [w for w in data["settings"]["workers"].values() if w["recording"]]
            return data if len(recording) >= workers else None

        return wait_until(ready, 20, f"{workers} workers recording")  # type: ignore[return-value]

    def result(self) -> WatchRecord:
        self.thread.join(60)
        assert not self.thread.is_alive(), "watch did not end at its duration"
        if self.error is not None:
            raise self.error
        assert self.record is not None
        return self.record


def _settings(tmp_path: Path, worker: str, duration: float, extra: str = "") -> tuple[WatchSettings, int]:
    port = free_port()
    cmd = f"gunicorn -w 2 {worker} -b 127.0.0.1:{port} --chdir {APP} {extra} shop:app"
    return WatchSettings(cmd=cmd, interval=1.0, duration=duration, json=str(tmp_path / "watch.json")), port


def _load(port: int) -> dict[str, int]:
    """A mix of five routes; what each got."""
    base = f"http://127.0.0.1:{port}"
    sent = {"POST /orders": 0, "GET /items/<int:item_id>": 0, "GET /search": 0, "GET /": 0}
    for body, n in ((b"gift=1", 600), (b"gift=0", 400)):
        Hammer(base + "/orders", n, concurrency=4, mode="close", method="POST", body=body, headers=FORM).run()
        sent["POST /orders"] += n
    for route, path, n in (("GET /items/<int:item_id>", "/items/{n}", 500), ("GET /search", "/search", 300),
                           ("GET /", "/", 200)):
        Hammer(base + path, n, concurrency=4, mode="close").run()
        sent[route] += n
    return sent


def _counts(record: WatchRecord) -> Counter[str]:
    total: Counter[str] = Counter()
    for window in record.windows:
        total.update(window.requests)
    return total


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker", ["-k sync", "-k gthread --threads 4"], ids=["sync", "gthread"])
def test_watch_cmd_records_each_route_as_the_framework_names_it_in_every_worker(
        worker: str, tmp_path: Path, no_leftovers: None) -> None:
    settings, port = _settings(tmp_path, worker, duration=12)
    watching = Watching(settings)
    watching.recording(2)
    sent = _load(port)
    record = watching.result()
    counts = _counts(record)
    for route, n in sent.items():
        assert counts[route] == n, (route, counts)
    assert counts["GET /health"] == 0
    assert record.ended == "duration" and record.how == "injected"
    pids = {w.pid for w in record.windows if w.requests}
    assert len(pids) == 2, "both workers served and were recorded"
    assert all(w.blocks and w.rss and w.heap_bytes for w in record.windows if w is record.windows[-1])
    # requests that ran alone were sampled, with their heap deltas, under each route's own name
    alone = Counter[str]()
    for window in record.windows:
        alone.update({route: len(d) for route, d in window.alone_deltas.items()})
    assert alone["POST /orders"] > 0, alone
    if worker == "-k sync":  # one request at a time in a sync worker
        assert all(w.max_in_flight <= 1 for w in record.windows)
    written = json.loads(Path(settings.json or "").read_text(encoding="utf-8"))
    assert written["result"] == "watch" and written["settings"]["ended"] == "duration"
    assert written["windows"] == len(record.windows)  # every window went through the analysis
    assert {r["route"] for r in written["routes"]} >= {"GET /", "POST /orders"}


@pytest.mark.timeout(60)
def test_a_worker_killed_mid_watch_is_followed_by_its_successor(tmp_path: Path, no_leftovers: None) -> None:
    settings, port = _settings(tmp_path, "-k sync", duration=14)
    watching = Watching(settings)
    report = watching.recording(2)
    victim = int(next(iter(report["settings"]["workers"])))
    os.kill(victim, signal.SIGKILL)
    master = report["settings"]["master"]

    def replaced() -> bool:
        children = psutil.Process(master).children()
        return len(children) == 2 and victim not in {c.pid for c in children}

    wait_until(replaced, 20, "gunicorn started a worker in place of the one killed")
    successor = next(c.pid for c in psutil.Process(master).children() if c.pid != victim
                     and str(c.pid) not in report["settings"]["workers"])
    watching.recording(3)  # the successor records too
    Hammer(f"http://127.0.0.1:{port}/search", 600, concurrency=4, mode="close").run()
    record = watching.result()
    assert record.workers[successor]["recording"]
    assert record.workers[successor]["respawned"] == {"replaces": victim}
    assert record.workers[victim]["respawned"]["successor"] == successor
    assert any(e["event"] == "worker exited" and e["pid"] == victim for e in record.events)
    served = Counter[int]()
    for window in record.windows:
        served[window.pid] += window.requests.get("GET /search", 0)
    assert served[successor] > 0 and sum(served.values()) == 600


@pytest.mark.timeout(90)
@pytest.mark.skipif(not any(shutil.which(d) for d in ("gdb", "lldb")), reason="no debugger (apt-get install -y gdb lldb)")
def test_watch_pid_attaches_to_each_worker_and_detaching_leaves_no_agent_thread(
        tmp_path: Path, no_leftovers: None) -> None:
    from memprobe.process.child import Child, start_on_free_port

    def gunicorn(port: int) -> Child:
        argv = shlex.split(f"gunicorn -w 2 -k sync -b 127.0.0.1:{port} shop:app")
        return Child(argv, name="gunicorn", url=f"http://127.0.0.1:{port}/health", cwd=APP)

    with start_on_free_port(gunicorn) as server:
        workers = wait_until(lambda: len(psutil.Process(server.pid).children()) == 2
                             and psutil.Process(server.pid).children(), 20, "two workers")
        threads = {w.pid: w.num_threads() for w in workers}  # type: ignore[union-attr]
        base = server.url.rsplit("/", 1)[0]
        watching = Watching(WatchSettings(pid=server.pid, interval=1.0, duration=10,
                                          json=str(tmp_path / "watch.json")))
        watching.recording(2)
        Hammer(base + "/orders", 400, concurrency=4, mode="close", method="POST", body=b"gift=1",
               headers=FORM).run()
        record = watching.result()
        assert record.how == "attached"
        assert _counts(record)["POST /orders"] == 400
        # the same workers serve on, with the threads they had: no agent, no recorder left
        assert {w.pid: psutil.Process(w.pid).num_threads() for w in workers} == threads  # type: ignore[union-attr]
        with urllib.request.urlopen(server.url, timeout=10) as response:
            assert response.status == 200


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memprobe", "watch", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.timeout(60)
def test_watch_cmd_records_a_tornado_server_under_its_handlers_url_patterns(
        tmp_path: Path, no_leftovers: None) -> None:
    # Tornado serves its own HTTP: no WSGI or ASGI app to wrap, its handlers' runs are counted
    port = free_port()
    settings = WatchSettings(cmd=f"{sys.executable} shop_tornado.py --port {port}", cwd=str(APP), interval=1.0,
                             duration=10, json=str(tmp_path / "watch.json"))
    watching = Watching(settings)
    watching.recording(1)
    base = f"http://127.0.0.1:{port}"
    Hammer(base + "/orders", 200, concurrency=4, mode="close", method="POST", body=b"gift=1", headers=FORM).run()
    Hammer(base + "/items/{n}", 150, concurrency=4, mode="close").run()
    Hammer(base + "/search", 100, concurrency=4, mode="close").run()  # a coroutine handler
    Hammer(base + "/no/such/7", 10, concurrency=2, mode="close").run()
    record = watching.result()
    counts = _counts(record)
    assert counts == {"POST /orders": 200, "GET /items/([0-9]+)": 150, "GET /search": 100,
                      "GET /no/such/{id}": 10}, counts
    assert record.how == "injected" and all(w.asynchronous for w in record.windows if w.requests)


@pytest.mark.timeout(30)
def test_a_pid_that_is_not_python_is_one_line_and_exit_4(no_leftovers: None) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        done = _cli("--pid", str(sleeper.pid), "--duration", "2")
        assert done.returncode == 4, done.stderr
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("memprobe: "), done.stderr
        assert "Python" in done.stderr
        assert sleeper.poll() is None, "the pid is left untouched"
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("args, message", [
    (("--cmd", "gunicorn app:app", "--trace-share", "0"), "--trace-share is a share of the window's time"),
    (("--cmd", "gunicorn app:app", "--trace-share", "1.5"), "--trace-share is a share of the window's time"),
    (("--cmd", "gunicorn app:app", "--trace-sample", "0"), "--trace-sample must be positive"),
    (("--cmd", "gunicorn app:app", "--interval", "-1"), "--interval must be positive"),
])
def test_settings_no_watch_can_run_are_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    done = _cli(*args)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr


@pytest.mark.timeout(30)
def test_a_pid_that_does_not_exist_is_exit_3() -> None:
    done = _cli("--pid", "4194304", "--duration", "1")
    assert done.returncode == 3 and "no process has pid 4194304" in done.stderr


@pytest.mark.timeout(45)
def test_duration_ends_the_watch_by_itself_prints_the_summary_and_stops_the_server(
        tmp_path: Path, no_leftovers: None) -> None:
    port = free_port()
    out = tmp_path / "w.json"
    done = _cli("--cmd", f"gunicorn -w 2 -b 127.0.0.1:{port} --chdir {APP} shop:app", "--interval", "1",
                "--duration", "4", "--json", str(out))
    assert done.returncode == 0, done.stderr
    shown = " ".join(done.stdout.split())  # the report wraps where the terminal ends (a long --chdir path)
    assert "2 workers (injected)" in shown and "ended: duration" in shown
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["settings"]["ended"] == "duration" and data["windows"]  # no load: windows, no route


@pytest.mark.timeout(45)
def test_ctrl_c_prints_the_summary_and_writes_the_report(tmp_path: Path, no_leftovers: None) -> None:
    port = free_port()
    out = tmp_path / "w.json"
    proc = subprocess.Popen([sys.executable, "-m", "memprobe", "watch", "--cmd",
                             f"gunicorn -w 2 -b 127.0.0.1:{port} --chdir {APP} shop:app", "--interval", "1",
                             "--json", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=ctrl_c_reaches_it)
    try:
        def recording() -> bool:
            try:
                workers = json.loads(out.read_text(encoding="utf-8"))["settings"]["workers"]
            except (OSError, ValueError, KeyError):
                return False
            return sum(1 for w in workers.values() if w["recording"]) >= 2

        wait_until(recording, 20, "both workers recording")
        Hammer(f"http://127.0.0.1:{port}/", 100, concurrency=2, mode="close").run()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    shown = " ".join(stdout.split())  # the report wraps where the terminal ends
    assert "ended: interrupted" in shown and "GET /" in shown
    assert json.loads(out.read_text(encoding="utf-8"))["settings"]["ended"] == "interrupted"


MIDDLEWARE_APP = '''
from memprobe.watch.middleware import middleware
from shop import app as shop

app = middleware(shop, json={json!r}, interval=0.5)
'''


@pytest.mark.timeout(45)
def test_the_middleware_records_the_same_windows_from_every_worker_into_one_report(
        tmp_path: Path, no_orphans: None) -> None:
    from memprobe.process.child import Child, start_on_free_port

    report = tmp_path / "inside.json"
    (tmp_path / "wrapped.py").write_text(MIDDLEWARE_APP.format(json=str(report)), encoding="utf-8")

    def gunicorn(port: int) -> Child:
        argv = ["gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "--pythonpath", str(APP), "wrapped:app"]
        return Child(argv, name="gunicorn", url=f"http://127.0.0.1:{port}/health", cwd=tmp_path,
                     env={**os.environ, "PYTHONPATH": str(REPO)})

    with start_on_free_port(gunicorn) as server:
        base = server.url.rsplit("/", 1)[0]
        Hammer(base + "/orders", 300, concurrency=4, mode="close", method="POST", body=b"gift=1",
               headers=FORM).run()
        Hammer(base + "/items/{n}", 200, concurrency=4, mode="close").run()

        def counted() -> Counter[str] | None:
            try:
                data = json.loads(report.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
            total: Counter[str] = Counter()
            for window in data["windows"]:
                total.update(window["requests"])
            return total if total["POST /orders"] == 300 and total["GET /items/<int:item_id>"] == 200 else None

        total = wait_until(counted, 20, "every request in the report")
        assert total["GET /health"] >= 1  # the readiness check
        assert len({w["pid"] for w in json.loads(report.read_text(encoding="utf-8"))["windows"]}) == 2
