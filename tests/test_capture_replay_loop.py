"""From production to the lab, end to end: the orders app (tests/servers/capture/orders.py)
keeps a 512-byte gift wrap per order id, only for a POST whose JSON says ``"gift": true``, so a
hunt of its plain routes sees nothing. Served by real gunicorn and driven by Locust with new ids,
``memprobe watch --capture`` flags ``POST /orders`` and records its requests; ``memprobe hunt
--replay`` on that file, the ids numbered on, finds the leak, its line and its holder.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from memprobe.capture.format import read_capture
from memprobe.process.child import free_port
from tests.conftest import REPO, watch_under_locust

APP = REPO / "tests" / "servers" / "capture"
WATCHED = 110
LEAK_LINE = next(i for i, line in enumerate((APP / "orders.py").read_text().splitlines(), 1)
                 if "bytearray(512)" in line)

pytestmark = pytest.mark.slow


@pytest.mark.timeout(420)
def test_a_leak_that_needs_certain_request_data_is_captured_in_production_and_found_by_replay(
        tmp_path: Path, no_leftovers: None) -> None:
    plain = subprocess.run([sys.executable, "-m", "memprobe", "hunt", "orders.py:app", "--route", "/orders",
                            "--sensitivity", "64", "--json", str(tmp_path / "plain.json")],
                           cwd=APP, capture_output=True, text=True, timeout=240)
    assert plain.returncode == 0, plain.stdout[-2000:]  # GET /orders keeps nothing: clean

    port = free_port()
    capture, report = tmp_path / "orders.capture.jsonl", tmp_path / "watch.json"
    locust, code, err = watch_under_locust(
        f"gunicorn -w 2 -b 127.0.0.1:{port} orders:app", port, cwd=APP, locustfile=APP / "locustfile.py", users=10,
        seconds=WATCHED, report=report, options=("--capture", str(capture), "--redact", "note"))
    assert locust.returncode == 0, locust.stderr[-2000:]
    assert code == 1, err[-2000:]  # a route leaks
    verdicts = {r["route"]: r["verdict"] for r in json.loads(report.read_text())["routes"]}
    assert verdicts["POST /orders"] == "leak", verdicts

    recorded = read_capture(capture).routes()
    assert list(recorded) == ["POST /orders"], list(recorded)
    bodies = [json.loads(r.body or b"{}") for r in recorded["POST /orders"]]
    assert any(b["gift"] for b in bodies) and len({b["id"] for b in bodies}) == len(bodies)
    assert all(b["note"].startswith("<redacted:") for b in bodies)
    assert b"leave at door" not in capture.read_bytes()

    replayed = subprocess.run(
        [sys.executable, "-m", "memprobe", "hunt", "orders.py:app", "--replay", str(capture), "--sensitivity", "64",
         "--json", str(tmp_path / "replay.json")], cwd=APP, capture_output=True, text=True, timeout=240)
    assert replayed.returncode == 1, replayed.stdout[-3000:]
    route = json.loads((tmp_path / "replay.json").read_text())["routes"][0]
    assert route["verdict"] == "leak"
    assert any(Path(s["file"]).name == "orders.py" and s["line"] == LEAK_LINE for s in route["sites"][:3]), route["sites"]
    assert any("_gift_wraps" in h["description"] for h in route["holders"]), route["holders"]
    assert "json id" in replayed.stdout  # the ids were numbered on
