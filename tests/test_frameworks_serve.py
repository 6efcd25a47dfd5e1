"""Every installed framework's hello-world serves on loopback and ends cleanly on SIGTERM.

Real children, real HTTP on 127.0.0.1. The scripts are started with ``subprocess`` directly (not
``memprobe.process.child``) so that these tests speak only for the scripts.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from memprobe.compare import frameworks as catalog
from tests.conftest import wait_until

pytestmark = pytest.mark.slow

LOOPBACK = "127.0.0.1"
READY_DEADLINE_S = 30.0
EXIT_DEADLINE_S = 10.0
MEASURABLE = [fw for fw in catalog.all_frameworks() if fw.unavailable is None]


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    """A framework's script running on ``port``; ``log`` holds its stdout and stderr."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-3000:]

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(LOOPBACK, self.port, timeout=10)

    def wait_ready(self) -> None:
        """Await an answer to ``GET /``; fail with the log if the child dies or never answers."""

        def answers() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"exited with {self.process.returncode} before answering:\n"
                            f"{self.log_text()}")
            conn = self.connect()
            try:
                conn.request("GET", "/")
                conn.getresponse().read()
                return True
            except OSError:
                return False
            finally:
                conn.close()

        try:
            wait_until(answers, READY_DEADLINE_S, f"an answer on port {self.port}")
        except TimeoutError as err:
            pytest.fail(f"{err}:\n{self.log_text()}")


def reap(process: subprocess.Popen[bytes]) -> None:
    """Kill the child's whole process group if it still runs, and wait for it."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()


def start_script(fw: catalog.Framework, folder: Path,
                 started: list[subprocess.Popen[bytes]]) -> Served:
    """Start ``fw``'s script on a free loopback port (recorded in ``started``) and wait for it."""
    if not fw.installed():
        pytest.skip(f"{fw.name} is not installed: {fw.install_hint()}")
    port = free_port()
    log = folder / f"{fw.name}-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            fw.command(port, host=LOOPBACK, python=sys.executable),
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            cwd=folder, start_new_session=True,
        )
    started.append(process)
    served = Served(process, port, log)
    served.wait_ready()
    return served


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[catalog.Framework], Served]]:
    """Start a fresh server for this test; every child is reaped afterwards, pass or fail."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield lambda fw: start_script(fw, tmp_path, started)
    finally:
        for process in started:
            reap(process)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[catalog.Framework], Served]]:
    """One server per framework for the tests that only send requests; reaped at module end."""
    folder = tmp_path_factory.mktemp("shared-servers")
    started: list[subprocess.Popen[bytes]] = []
    running: dict[str, Served] = {}

    def get(fw: catalog.Framework) -> Served:
        if fw.name not in running or running[fw.name].process.poll() is not None:
            running[fw.name] = start_script(fw, folder, started)
        return running[fw.name]

    try:
        yield get
    finally:
        for process in started:
            reap(process)


@pytest.mark.parametrize("fw", MEASURABLE, ids=lambda fw: fw.name)
def test_hello_world_answers_then_exits_cleanly_on_sigterm(
    fw: catalog.Framework, serve: Callable[[catalog.Framework], Served]
) -> None:
    served = serve(fw)
    conn = served.connect()
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.status == 200
        assert response.read() == b"Hello World!"
        assert (response.getheader("Content-Type") or "").startswith("text/plain")
    finally:
        conn.close()

    served.process.send_signal(signal.SIGTERM)
    try:
        returncode = served.process.wait(EXIT_DEADLINE_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {EXIT_DEADLINE_S} s after SIGTERM:\n{served.log_text()}")
    assert returncode == 0, served.log_text()


@pytest.mark.parametrize("fw", [fw for fw in MEASURABLE if fw.echo], ids=lambda fw: fw.name)
def test_post_echo_returns_the_json_it_received(
    fw: catalog.Framework, shared: Callable[[catalog.Framework], Served]
) -> None:
    served = shared(fw)
    payload = {"n": 7, "items": [1, 2, 3], "name": "memprobe", "nested": {"ok": True}}
    conn = served.connect()
    try:
        conn.request("POST", "/echo", body=json.dumps(payload),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == 200, body
    assert (response.getheader("Content-Type") or "").startswith("application/json")
    assert json.loads(body) == payload


@pytest.mark.parametrize("fw", MEASURABLE, ids=lambda fw: fw.name)
def test_catalog_keepalive_flag_matches_the_server(
    fw: catalog.Framework, shared: Callable[[catalog.Framework], Served]
) -> None:
    if fw.name == "pyramid" and not _importable("waitress"):
        pytest.skip("pyramid falls back to wsgiref without waitress")
    served = shared(fw)
    conn = served.connect()
    try:
        conn.request("GET", "/")
        first = conn.getresponse()
        first.read()
        sock = conn.sock
        conn.request("GET", "/")
        second = conn.getresponse()
        assert second.read() == b"Hello World!"
        reused = sock is not None and conn.sock is sock
    finally:
        conn.close()
    assert reused == fw.keepalive


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
