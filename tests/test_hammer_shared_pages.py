"""``hammer --pid`` on gunicorn: a master whose USS rises while its RSS stays flat gets one
note saying why (pages shared with its forked workers became private as they wrote to them),
so it is not read as the master growing."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from memprobe.process.child import LOOPBACK, free_port
from tests.conftest import REPO, SERVERS, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300),
              pytest.mark.skipif(shutil.which("gunicorn") is None, reason="needs gunicorn (memprobe[production])")]


@pytest.fixture
def gunicorn() -> Iterator[tuple[int, int]]:
    """``gunicorn --preload -w 2`` of tests/servers/shared_at_fork.py: (master pid, port)."""
    port = free_port()
    proc = subprocess.Popen(["gunicorn", "--preload", "-w", "2", "-b", f"{LOOPBACK}:{port}", "shared_at_fork:app"],
                            cwd=SERVERS, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        import psutil

        wait_until(lambda: len(psutil.Process(proc.pid).children()) == 2 and _answers(port), 60,
                   "gunicorn's two workers to answer")
        yield proc.pid, port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _answers(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/ping", timeout=5):
            return True
    except OSError:
        return False


def hammer(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memprobe", "hammer", *argv, "--no-save"], text=True,
                          capture_output=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=240)


def test_the_masters_uss_rising_with_rss_flat_is_named_copy_on_write(gunicorn: tuple[int, int],
                                                                     tmp_path: Path) -> None:
    master, port = gunicorn
    report = tmp_path / "hammer.json"
    run = hammer(f"http://{LOOPBACK}:{port}/walk", "-n", "200", "-c", "4", "--pid", str(master),
                 "--json", str(report))
    assert run.returncode == 0, run.stderr
    data = json.loads(report.read_text())
    b, a = data["before"]["processes"][str(master)], data["after"]["processes"][str(master)]
    assert a["uss"] - b["uss"] >= 1 << 20, "the workers' walks turned the master's shared pages private"
    assert abs(a["rss"] - b["rss"]) <= (a["uss"] - b["uss"]) / 4
    [note] = data["notes"]
    assert note.startswith(f"pid {master} (the master): USS +") and "copy-on-write" in note.lower()
    assert run.stdout.count("note: ") == 1 and f"note: pid {master} (the master): USS +" in run.stdout
    # Once every worker has its own copies, another run leaves the master's USS where it was: no note.
    again = hammer(f"http://{LOOPBACK}:{port}/walk", "-n", "200", "-c", "4", "--pid", str(master),
                   "--json", str(report))
    assert again.returncode == 0, again.stderr
    assert json.loads(report.read_text())["notes"] == [] and "note: " not in again.stdout
