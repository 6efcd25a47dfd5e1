"""Fixtures shared by the tests: real servers on loopback, always reaped."""
from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from memprobe.process.child import LOOPBACK, Child, start_on_free_port, start_server
from memprobe.render import render
from memprobe.results.hunt import HuntResult

# The tests run servers by name (gunicorn, uvicorn, flake8, pre-commit) as a user's shell would
# find them: the interpreter's own bin directory first, as an activated virtual environment has it,
# also when the suite is started as .venv/bin/python -m pytest without activating.
_BIN = str(Path(sys.executable).parent)
if os.environ.get("PATH", "").split(os.pathsep)[0] != _BIN:
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")

SERVERS = Path(__file__).parent / "servers"
REPO = Path(__file__).resolve().parent.parent


def ctrl_c_reaches_it() -> None:
    """``preexec_fn`` for a child a test will send SIGINT, as Ctrl-C at a terminal would.

    A shell starts background jobs (``cmd &`` in a CI script) with SIGINT ignored, and every
    process below inherits that: the test suite, its workers, and this child, which would then
    never see the signal the test sends. At a terminal Ctrl-C always reaches the foreground job.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def behaviours_on(port: int, *extra: str, ready_timeout: float = 15.0, path: str = "/",
                  name: str = "behaviours") -> Child:
    """A (not yet started) :class:`Child` running tests/servers/behaviours.py on ``port``."""
    return Child([sys.executable, str(SERVERS / "behaviours.py"), "--port", str(port), *extra],
                 name=name, url=f"http://{LOOPBACK}:{port}{path}", ready_timeout=ready_timeout)


def start_behaviours(*extra: str, ready_timeout: float = 15.0, path: str = "/",
                     name: str = "behaviours") -> Child:
    """tests/servers/behaviours.py started and ready on a free port (another one if the port
    was taken before it bound it)."""
    return start_on_free_port(
        lambda port: behaviours_on(port, *extra, ready_timeout=ready_timeout, path=path, name=name))


@pytest.fixture
def behaviours() -> Iterator[Child]:
    """The behaviours server, started and ready; stopped after the test whatever happens."""
    with start_behaviours() as child:
        yield child


@pytest.fixture
def no_orphans() -> Iterator[None]:
    """Fails the test if it leaves a child process of this test process running."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    alive = [p for p in left if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for p in alive:
        p.kill()
    assert not alive, f"processes left behind: {[(p.pid, p.cmdline()) for p in alive]}"


def wait_until(condition: Callable[[], object], timeout: float, what: str, every: float = 0.05) -> object:
    """Poll ``condition`` until it returns something truthy, and return that.

    Raises :class:`TimeoutError` naming ``what`` after ``timeout`` seconds: a test waits for
    the thing it needs, never for a fixed time that is too long here and too short on a busy CI.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:g} s")
        time.sleep(every)


def text_of(result: HuntResult) -> str:
    """The terminal report with its line wrapping undone: a phrase may fall across two lines
    (in a paragraph, or in a table's last column) wherever the figures before it make the line
    longer."""
    return " ".join(render(result, "text").split())


def run_cli(*argv: str) -> tuple[int, str, str]:
    """``memprobe ARGV...`` in this process: (exit code, stdout, stderr).

    For argument and usage errors, where no real process is needed; the CLI's SIGTERM handler
    is put back as it was.
    """
    import contextlib
    import io

    from memprobe.cli import main

    out, err = io.StringIO(), io.StringIO()
    previous = signal.getsignal(signal.SIGTERM)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(argv))
            except SystemExit as exit_:
                code = int(exit_.code or 0)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def no_leftovers(no_orphans: None, tmp_path_factory: pytest.TempPathFactory,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No channel directory and no process left behind (the test's temp directory is its own,
    so that another test running at the same time cannot look like a leftover)."""
    tmp = tmp_path_factory.mktemp("tmpdir")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setenv("TMPDIR", str(tmp))
    yield
    assert glob.glob(os.path.join(str(tmp), "memprobe-run-*")) == [], "a channel directory was left behind"


@pytest.fixture
def counting_server() -> Iterator[Child]:
    """tests/servers/counting.py on a free port; its own readiness check asks /__count, which it
    does not count."""
    with start_server(lambda port: [sys.executable, str(SERVERS / "counting.py"), str(port)],
                      name="counting", path="/__count") as child:
        yield child


def counted(child: Child) -> dict[str, Any]:
    """What the counting server saw: requests by User-Agent, by method, and distinct paths."""
    with urllib.request.urlopen(f"http://{LOOPBACK}:{child.port}/__count", timeout=5) as resp:
        data: dict[str, Any] = json.loads(resp.read())
    return data


def watch_under_locust(cmd: str, port: int, *, cwd: Path, locustfile: Path, users: int, seconds: int,
                       report: Path, options: tuple[str, ...] = ()) -> tuple[subprocess.CompletedProcess[str], int, str]:
    """``memprobe watch --cmd CMD`` for ``seconds`` (2 s windows, attribution windows of 10 s every
    10 s tracing one request in 10 for up to a quarter of their time, the rolling report at ``report``,
    plus ``options``), and once
    its first report is written,
    Locust's ``users`` (20 requests a second each in the locustfiles here) from ``locustfile`` on
    ``port`` until 12 s before watch ends. Answers Locust's run, watch's exit code and its stderr;
    watch is killed if it outlives its time."""
    watch = subprocess.Popen(
        [sys.executable, "-m", "memprobe", "watch", "--cmd", cmd, "--interval", "2", "--duration", str(seconds),
         "--trace-seconds", "10", "--trace-every", "10", "--trace-sample", "10", "--trace-share", "0.25",
         "--json", str(report), "--quiet", *options],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: report.exists() or watch.poll() is not None, 60, "watch's first report")
        assert watch.poll() is None, watch.stderr.read() if watch.stderr else ""
        locust = subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-u", str(users), "-r", str(users),
             "-t", f"{seconds - 12}s", "--host", f"http://127.0.0.1:{port}", "--only-summary",
             "--exit-code-on-error", "1"],
            capture_output=True, text=True, timeout=seconds + 60)
        _out, err = watch.communicate(timeout=120)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
    return locust, watch.returncode, err
