"""``memprobe hammer``: a server memprobe did not start, and the memory of its process tree."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from memprobe.process.child import LOOPBACK, Child, free_port
from tests.conftest import SERVERS
from tests.test_compare_cli import memprobe

pytestmark = pytest.mark.slow


def test_with_pid_it_reads_the_master_and_each_worker_and_their_sum(tmp_path: Path, no_orphans: None) -> None:
    port = free_port()
    server = Child([sys.executable, str(SERVERS / "forking.py"), "--port", str(port)],
                   name="forking", url=f"http://{LOOPBACK}:{port}/")
    with server:
        worker = int(re.search(r"worker pid (\d+)", server.log_tail()).group(1))  # type: ignore[union-attr]
        report = tmp_path / "hammer.json"
        run = memprobe("hammer", server.url, "-n", "300", "-c", "4", "--pid", str(server.pid),
                       "--no-save", "--json", str(report))
    assert run.returncode == 0, run.stderr
    data = json.loads(report.read_text())
    assert data["result"] == "hammer" and data["pid"] == server.pid
    assert data["requests"]["sent"] == 300 and data["requests"]["ok"] == 300
    for phase in ("before", "after"):
        processes = data[phase]["processes"]
        assert set(processes) == {str(server.pid), str(worker)}
        assert data[phase]["total"]["rss"] == sum(p["rss"] for p in processes.values())
    assert data["delta"]["rss"] == data["after"]["total"]["rss"] - data["before"]["total"]["rss"]
    assert data["samples"]["rss"], "the tree's memory is sampled during the load"
    assert f"pid {worker}" in run.stdout and "total" in run.stdout


def test_failed_requests_exit_1_with_the_statuses_counted(tmp_path: Path, behaviours: Child) -> None:
    report = tmp_path / "hammer.json"
    run = memprobe("hammer", behaviours.url + "error", "-n", "50", "--no-save", "--json", str(report))
    assert run.returncode == 1
    assert json.loads(report.read_text())["requests"]["status_counts"] == {"500": 50}


def test_nothing_listening_is_one_line_and_exit_3() -> None:
    run = memprobe("hammer", f"http://127.0.0.1:{free_port()}/", "-n", "10", "--no-save")
    assert run.returncode == 3
    assert run.stderr.strip().startswith("memprobe: nothing listens at")
    assert len(run.stderr.strip().splitlines()) == 1


def test_a_pid_that_does_not_exist_is_a_usage_error(behaviours: Child) -> None:
    run = memprobe("hammer", behaviours.url, "-n", "10", "--pid", "999999999", "--no-save")
    assert run.returncode == 2 and "no process with pid 999999999" in run.stderr
