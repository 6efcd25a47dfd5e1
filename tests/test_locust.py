"""``--engine locust``: exactly N requests from Locust workers, as the server itself counts them.

Every test starts a real counting server (tests/servers/counting.py) and real Locust processes,
and checks the process table afterwards: no Locust process carrying the test's marker may be
left, whether the run succeeded, failed or was interrupted; nor the engine's temp directory.
"""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from memprobe.process.child import LOOPBACK, Child
from tests.conftest import REPO, counted, ctrl_c_reaches_it, run_cli, wait_until

# Not importorskip: importing Locust would monkey-patch this very process with gevent.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300),
              pytest.mark.skipif(importlib.util.find_spec("locust") is None, reason="needs memprobe[locust]")]




@pytest.fixture
def marked(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a memprobe run this test starts: a marker every process below it
    inherits, and a private TMPDIR; after the test neither a process with the marker nor a
    file in that TMPDIR may be left."""
    marker = uuid.uuid4().hex
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, MEMPROBE_TEST_MARKER=marker, TMPDIR=str(tmp), PYTHONPATH=str(REPO))
    yield env
    try:
        wait_until(lambda: not _carrying(marker), 15, "every Locust process to end", every=0.1)
    except TimeoutError:
        left = _carrying(marker)
        for pid, _ in left:
            os.kill(pid, signal.SIGKILL)
        pytest.fail(f"processes left behind: {left}")
    assert not list(tmp.iterdir()), f"left in TMPDIR: {list(tmp.iterdir())}"


def _carrying(marker: str) -> list[tuple[int, list[str]]]:
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if p.environ().get("MEMPROBE_TEST_MARKER") == marker and p.status() != psutil.STATUS_ZOMBIE:
                found.append((p.pid, p.info["cmdline"]))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def memprobe(*argv: str, env: dict[str, str], **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "memprobe", *argv], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def workers_of(marker: str) -> list[int]:
    return [pid for pid, cmd in _carrying(marker) if "worker" in cmd and "memprobe.http.locust_driver" in cmd]


def test_hammer_with_two_locust_workers_sends_exactly_n(counting_server: Child, marked: dict[str, str],
                                                          tmp_path: Path) -> None:
    out = tmp_path / "h.json"
    proc = memprobe("hammer", f"http://{LOOPBACK}:{counting_server.port}/item/{{n}}", "-n", "3000", "-c", "10",
                    "--engine", "locust", "--locust-workers", "2", "--pid", str(counting_server.pid),
                    "--no-save", "--json", str(out), env=marked)
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr
    seen = counted(counting_server)
    assert seen["by_agent"]["memprobe"] == 3000  # the server's own count: N, not N x workers
    assert seen["paths"] == 3000  # {n} = 0..2999, each once across both workers
    data = json.loads(out.read_text())
    assert data["engine"] == "locust" and data["engine_workers"] == 2
    assert data["requests"]["sent"] == data["requests"]["ok"] == 3000
    assert data["requests"]["status_counts"] == {"200": 3000}
    assert 0 < data["latency_ms"]["p50"] <= data["latency_ms"]["p99"] <= data["latency_ms"]["max"]
    assert data["throughput_rps"] > 0
    assert len(data["samples"]["t_s"]) >= 2 and data["samples"]["requests"][-1] <= 3000
    assert "locust: 2 workers" in stdout


def test_a_duration_run_reports_what_the_server_counted(counting_server: Child, marked: dict[str, str],
                                                         tmp_path: Path) -> None:
    out = tmp_path / "d.json"
    proc = memprobe("hammer", f"http://{LOOPBACK}:{counting_server.port}/", "-d", "2", "-c", "4", "--engine", "locust",
                    "--locust-workers", "2", "--no-save", "--json", str(out), env=marked)
    _, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr
    sent = json.loads(out.read_text())["requests"]["sent"]
    assert sent > 0 and counted(counting_server)["by_agent"]["memprobe"] == sent


def test_locust_never_enters_memprobes_own_process(counting_server: Child, marked: dict[str, str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from memprobe.http.locust_engine import LocustHammer

    monkeypatch.setenv("MEMPROBE_TEST_MARKER", marked["MEMPROBE_TEST_MARKER"])
    monkeypatch.setattr(tempfile, "tempdir", marked["TMPDIR"])
    load = LocustHammer(f"http://{LOOPBACK}:{counting_server.port}/", 200, concurrency=4, workers=1).run()
    assert load.sent == load.ok == 200 and load.engine == "locust"
    assert counted(counting_server)["by_agent"]["memprobe"] == 200
    assert "gevent" not in sys.modules and "locust" not in sys.modules


def test_the_per_request_timeout_is_honoured(counting_server: Child, marked: dict[str, str]) -> None:
    proc = memprobe("hammer", f"http://{LOOPBACK}:{counting_server.port}/slow/1500", "-n", "4", "-c", "2",
                    "--timeout", "0.3", "--engine", "locust", "--no-save", env=marked)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr  # requests failed: the hammer's own exit code
    assert "4 sent, 0 ok, 4 failed (4 timeouts)" in stdout


def test_a_worker_killed_mid_run_fails_the_run_clearly(counting_server: Child, marked: dict[str, str]) -> None:
    proc = memprobe("hammer", f"http://{LOOPBACK}:{counting_server.port}/slow/20", "-n", "100000", "-c", "4",
                    "--engine", "locust", "--locust-workers", "2", "--no-save", env=marked)
    try:
        marker = marked["MEMPROBE_TEST_MARKER"]
        victim = wait_until(lambda: len(workers_of(marker)) == 2 and workers_of(marker)[0], 120,
                            "two Locust workers")
        wait_until(lambda: counted(counting_server)["by_agent"].get("memprobe", 0) > 50, 60, "the load to start")
        os.kill(int(victim), signal.SIGKILL)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 3, stderr
    assert f"locust worker pid {victim} died (killed by SIGKILL)" in stderr
    assert stderr.strip().splitlines()[0].startswith("memprobe: locust engine:")


def test_ctrl_c_ends_every_locust_process(counting_server: Child, marked: dict[str, str]) -> None:
    proc = memprobe("hammer", f"http://{LOOPBACK}:{counting_server.port}/slow/20", "-n", "100000", "-c", "4",
                    "--engine", "locust", "--locust-workers", "2", "--no-save", env=marked,
                    preexec_fn=ctrl_c_reaches_it)
    try:
        wait_until(lambda: counted(counting_server)["by_agent"].get("memprobe", 0) > 50, 120, "the load to start")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signal.SIGINT, stderr
    assert "interrupted (SIGINT)" in stderr


def test_a_remote_worker_joins_the_master_where_the_user_binds_it(counting_server: Child, marked: dict[str, str]) -> None:
    from memprobe.process.child import free_port

    port = free_port()
    proc = memprobe("hammer", f"http://{LOOPBACK}:{counting_server.port}/", "-n", "500", "-c", "4", "--engine", "locust",
                    "--locust-master", f"{LOOPBACK}:{port}", "--expect-workers", "1", "--no-save", env=marked)
    worker = memprobe("locust-worker", "--master-host", f"{LOOPBACK}:{port}", env=marked)
    try:
        _, stderr = proc.communicate(timeout=180)
        worker.communicate(timeout=30)  # the master tells its workers to quit at the end
    finally:
        for p in (proc, worker):
            if p.poll() is None:
                p.kill()
                p.communicate()
    assert proc.returncode == 0, stderr
    assert counted(counting_server)["by_agent"]["memprobe"] == 500


def test_locust_options_need_the_locust_engine() -> None:
    code, _, err = run_cli("hammer", "http://127.0.0.1:9/", "--locust-workers", "2")
    assert code == 2 and "need --engine locust" in err


def test_a_missing_locust_is_one_line_and_exit_4(marked: dict[str, str]) -> None:
    code = ("import sys; sys.modules['locust'] = None; from memprobe.cli import main; "
            "sys.exit(main(['hammer', 'http://127.0.0.1:9/', '--engine', 'locust']))")
    proc = subprocess.run([sys.executable, "-c", code], env=marked, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 4
    assert proc.stderr.strip() == ("memprobe: Locust (for --engine locust) is not installed: "
                                   "pip install 'memprobe[locust]'")


def test_compare_sends_each_framework_exactly_n_through_locust(marked: dict[str, str], tmp_path: Path) -> None:
    pytest.importorskip("bottle")
    out = tmp_path / "c.json"
    proc = memprobe("compare", "600", "2", "-f", "bottle", "--engine", "locust", "--locust-workers", "2",
                    "--settle", "0.2", "--no-save", "--json", str(out), env=marked)
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr
    data = json.loads(out.read_text())
    assert data["settings"]["engine"] == "locust"
    (row,) = data["results"]
    assert row["status"] == "ok"
    assert row["engine"] == "locust" and row["engine_workers"] == 2
    sent = row["requests"]
    assert sent["sent"] == sent["ok"] + sent["failed"] == 600  # exactly N, however each fared
    # wsgiref listens with a backlog of 5: on a loaded machine a dropped SYN is retried after 1 s
    # and can pass the 2 s timeout (README, "Bottle's timeouts are its server's"); nothing else fails.
    assert sent["failed"] == sent["timeouts"], sent


def test_hunt_through_locust_still_finds_the_planted_leak(marked: dict[str, str], tmp_path: Path) -> None:
    pytest.importorskip("flask")
    out = tmp_path / "h.json"
    proc = memprobe("hunt", "examples/leaky_flask/app.py:app", "--route", "/history", "--requests", "1000",
                    "--rounds", "4", "--warmup", "300", "--engine", "locust", "--locust-workers", "1",
                    "--json", str(out), env=marked, cwd=REPO)
    _, stderr = proc.communicate(timeout=280)
    assert proc.returncode == 1, stderr  # a leak
    (route,) = json.loads(out.read_text())["routes"]
    assert route["route"] == "/history" and route["verdict"] == "leak"
