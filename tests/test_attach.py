"""Attaching to a running Python by pid: code runs inside it, and it keeps serving.

Every target is a real process the test starts (a Flask dev server run as ``python app.py``,
``python -m http.server``, ``sleep``), never one memprobe started for itself; every failure
path is refused before anything touches the target, with one line and its exit code.
"""
from __future__ import annotations

import glob
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from memprobe.agent import attach
from memprobe.errors import AgentError, EnvironmentProblem, ExitCode, TargetError
from memprobe.process.child import LOOPBACK, Child, free_port
from tests.conftest import wait_until

pytestmark = pytest.mark.timeout(300)

needs_a_debugger = pytest.mark.skipif(
    not any(attach.shutil.which(d) for d in attach.DEBUGGERS),
    reason=f"neither gdb nor lldb is installed ({attach.INSTALL})")

FLASK_APP = '''\
import sys
from flask import Flask

app = Flask(__name__)
GREETING = "hello from the app's __main__"


@app.get("/")
def index():
    return "ok"


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)
'''

# Injected: a thread answering on a Unix socket from inside the target, kept where the stop
# can find it (memprobe is importable in the target: the bootstrap made it so).
START = '''\
import os, socket, threading, __main__, memprobe

server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind({path!r})
server.listen(1)

def answer():
    while True:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            conn.sendall(repr((os.getpid(), __main__.GREETING)).encode())

thread = threading.Thread(target=answer, name="memprobe-demo", daemon=True)
thread.start()
memprobe._demo = (server, thread, {path!r})
'''

STOP = '''\
import os, socket, memprobe

server, thread, path = memprobe.__dict__.pop("_demo")
server.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the thread: close() alone does not
server.close()
thread.join(10)
os.unlink(path)
'''


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def tracer(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("TracerPid:")[1].split()[0])


def answers(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return int(response.status)


@pytest.fixture(autouse=True)
def private_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's temp directory is its own (memprobe's and its subprocesses'), so another
    test attaching at the same time cannot look like a leftover of this one."""
    tmp = tmp_path_factory.mktemp("tmpdir")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setenv("TMPDIR", str(tmp))


def leftovers() -> list[str]:
    return sorted(glob.glob(os.path.join(tempfile.gettempdir(), "memprobe-attach-*")))


@pytest.fixture
def flask_app(tmp_path: Path) -> Iterator[Child]:
    """``python app.py``: a Flask dev server started outside memprobe."""
    (tmp_path / "app.py").write_text(FLASK_APP, encoding="utf-8")
    port = free_port()
    with Child([sys.executable, "app.py", str(port)], name="app.py", cwd=tmp_path,
               url=f"http://{LOOPBACK}:{port}/") as child:
        yield child


@needs_a_debugger
def test_code_injected_into_a_flask_dev_server_answers_from_inside_and_stops(flask_app: Child) -> None:
    pid = flask_app.pid
    wait_until(lambda: answers(flask_app.url) == 200, 10, "the app answers")
    before = wait_until(lambda: threads(pid) == 1 and 1, 10, "the dev server is idle")
    before_leftovers = leftovers()
    with tempfile.TemporaryDirectory(prefix="memprobe-test-") as private:  # 0700, the test's own
        path = os.path.join(private, "demo.sock")

        started = attach.run_in(pid, START.format(path=path), timeout=60)

        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(10)
            client.connect(path)
            answer = b"".join(iter(lambda: client.recv(4096), b"")).decode()
        assert answer == repr((pid, "hello from the app's __main__"))
        assert threads(pid) == before + 1

        stopped = attach.run_in(pid, STOP, timeout=60)

        assert not os.path.exists(path)
    wait_until(lambda: threads(pid) == before, 10, "the target's threads back to what they were")
    assert answers(flask_app.url) == 200
    assert tracer(pid) == 0, "a debugger is still attached"
    assert leftovers() == before_leftovers, "the files that carried the code remain"
    assert started.method == stopped.method and started.method in ("lldb", "gdb", "sys.remote_exec")


@needs_a_debugger
def test_an_exception_inside_the_target_comes_back_as_one_line_and_the_target_serves_on() -> None:
    port = free_port()
    with Child([sys.executable, "-m", "http.server", "--bind", LOOPBACK, str(port)],
               name="http.server", url=f"http://{LOOPBACK}:{port}/") as server:
        with pytest.raises(AgentError, match=r"raised ZeroDivisionError: division by zero"):
            attach.run_in(server.pid, "1 / 0", timeout=60)
        assert answers(server.url) == 200
        assert tracer(server.pid) == 0


def test_a_pid_that_does_not_exist_is_a_target_error() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: its pid names nothing now

    with pytest.raises(TargetError, match=rf"^no process has pid {gone.pid}$") as err:
        attach.run_in(gone.pid, "pass", timeout=10)
    assert err.value.exit_code == ExitCode.TARGET


def test_a_process_that_is_not_python_is_refused_and_left_running() -> None:
    sleep = subprocess.Popen(["sleep", "60"])
    try:
        with pytest.raises(EnvironmentProblem, match=rf"pid {sleep.pid} \(sleep\) is not a Python "
                                                     "process") as err:
            attach.run_in(sleep.pid, "pass", timeout=10)
        assert err.value.exit_code == ExitCode.ENVIRONMENT
        assert sleep.poll() is None and tracer(sleep.pid) == 0
    finally:
        sleep.kill()
        sleep.wait()


def test_without_a_debugger_on_path_it_says_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    if hasattr(sys, "remote_exec"):
        pytest.skip("Python 3.14+ attaches with sys.remote_exec, no debugger needed")
    port = free_port()
    with Child([sys.executable, "-m", "http.server", "--bind", LOOPBACK, str(port)],
               name="http.server", url=f"http://{LOOPBACK}:{port}/") as server:
        monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no gdb, no lldb

        with pytest.raises(EnvironmentProblem, match=r"needs gdb or lldb on PATH: "
                                                     r"apt-get install -y gdb lldb$") as err:
            attach.run_in(server.pid, "pass", timeout=10)
        assert err.value.exit_code == ExitCode.ENVIRONMENT
        assert answers(server.url) == 200


def _other_python() -> str | None:
    mine = f"{sys.version_info[0]}.{sys.version_info[1]}"
    candidates = sorted(glob.glob("/usr/bin/python3.[0-9]*") + glob.glob("/usr/local/bin/python3.[0-9]*")
                        + glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3.[0-9]*")))
    for exe in candidates:
        name = os.path.basename(exe)
        if name.startswith("python3.") and name[len("python"):] != mine and name[-1].isdigit():
            return exe
    return None


def test_a_python_of_another_version_is_refused_with_the_version_to_use() -> None:
    other = _other_python()
    if other is None:
        pytest.skip(f"no Python other than {sys.version_info[0]}.{sys.version_info[1]} on this machine")
    version = os.path.basename(other)[len("python"):]
    proc = subprocess.Popen([other, "-c", "import time; print('ready', flush=True); time.sleep(60)"],
                            stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        with pytest.raises(EnvironmentProblem, match=rf"runs Python {version} and memprobe runs on "
                                                     rf".*: run memprobe with Python {version}") as err:
            attach.run_in(proc.pid, "pass", timeout=10)
        assert err.value.exit_code == ExitCode.ENVIRONMENT
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@needs_a_debugger
def test_the_debugger_is_chosen_by_running_code_in_a_throwaway_python_never_the_target() -> None:
    checks = [attach.check_debugger(name) for name in attach.DEBUGGERS if attach.shutil.which(name)]
    for check in checks:
        assert check.ok or check.reason, "a debugger that fails says why"
    if not any(c.ok for c in checks):
        pytest.skip("no debugger can run code here: " + "; ".join(c.reason for c in checks))
    port = free_port()
    with Child([sys.executable, "-m", "http.server", "--bind", LOOPBACK, str(port)],
               name="http.server", url=f"http://{LOOPBACK}:{port}/") as server:
        injection = attach.run_in(server.pid, "pass", timeout=60)
        assert injection.method == next(c.name for c in checks if c.ok)
        assert answers(server.url) == 200


@pytest.mark.parametrize("name", attach.DEBUGGERS)
def test_the_debugger_command_never_runs_the_code_without_the_gil(name: str) -> None:
    argv = attach.debugger_argv(name, 1234, "/tmp/memprobe-attach-x/boot.py", 30)
    text = " ".join(argv)
    assert text.index("PyGILState_Ensure") < text.index("PyRun_SimpleString") < text.index(
        "PyGILState_Release")
    assert "exec(compile(open('/tmp/memprobe-attach-x/boot.py','rb')" in text
    if name == "gdb":  # separate calls: each one after Ensure is guarded by its result
        assert "$g >= 0 ? (int)PyRun_SimpleString" in text
        assert "$g >= 0 ? ((int(*)(int))PyGILState_Release)($g)" in text
    else:  # one expression: all three calls or none
        assert sum(a.startswith("expr ") for a in argv) == 1


def test_the_bootstrap_leaves_no_name_in_the_targets_main() -> None:
    line = attach._bootstrap_line("/tmp/memprobe-attach-x/boot.py")
    assert textwrap.dedent(line).startswith("exec(") and "{'__name__':'__memprobe_boot__'}" in line


LEAKY_APP = '''\
import sys
from flask import Flask

app = Flask(__name__)
_kept = []


@app.get("/leak")
def leak():
    _kept.append("x" * 200 + str(len(_kept)))
    return "ok"


@app.get("/clean")
def clean():
    return "ok"


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)
'''


def memprobe_cli(*argv: str, timeout: float = 280) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memprobe", *argv], capture_output=True,
                          text=True, timeout=timeout, cwd=Path(__file__).resolve().parent.parent)


@needs_a_debugger
def test_hunt_pid_finds_the_leak_of_a_running_flask_app_with_line_and_holder(tmp_path: Path) -> None:
    import json

    (tmp_path / "app.py").write_text(LEAKY_APP, encoding="utf-8")
    port = free_port()
    with Child([sys.executable, "app.py", str(port)], name="app.py", cwd=tmp_path,
               url=f"http://{LOOPBACK}:{port}/clean") as app:
        before = wait_until(lambda: threads(app.pid) == 1 and 1, 10, "the dev server is idle")
        before_leftovers = leftovers()

        done = memprobe_cli("hunt", "--pid", str(app.pid), "--url", f"http://{LOOPBACK}:{port}",
                            "--route", "/leak", "--route", "/clean", "--requests", "600",
                            "--rounds", "3", "--warmup", "200", "--sensitivity", "256", "--json", str(tmp_path / "out.json"))

        assert done.returncode == ExitCode.FAILED, done.stderr
        routes = {r["route"]: r for r in json.loads((tmp_path / "out.json").read_text())["routes"]}
        leak, clean = routes["/leak"], routes["/clean"]
        assert leak["verdict"] == "leak" and clean["verdict"] == "clean"
        top = [f"{s['file']}:{s['line']}" for s in leak["sites"][:3]]
        assert f"{tmp_path / 'app.py'}:10" in top, top
        assert any("global _kept" in " ".join(h["chain"]) for h in leak["holders"]), leak["holders"]
        assert f"attached to pid {app.pid} with" in done.stdout
        # The server serves on, as it was: no agent thread, no tracing, nothing attached.
        assert answers(app.url) == 200
        wait_until(lambda: threads(app.pid) == before, 10, "the app's threads back to what they were")
        assert tracer(app.pid) == 0
        assert leftovers() == before_leftovers
        assert not glob.glob(os.path.join(tempfile.gettempdir(), "memprobe-pid-*"))


def test_hunt_pid_of_a_process_that_is_not_python_exits_4_with_one_line() -> None:
    sleep = subprocess.Popen(["sleep", "60"])
    try:
        done = memprobe_cli("hunt", "--pid", str(sleep.pid), "--url", "http://127.0.0.1:9",
                            "--route", "/", timeout=60)
        assert done.returncode == ExitCode.ENVIRONMENT
        assert done.stderr.strip().splitlines() == [
            f"memprobe: pid {sleep.pid} (sleep) is not a Python process: no libpython and no "
            f"python executable in /proc/{sleep.pid}/maps"]
        assert sleep.poll() is None
    finally:
        sleep.kill()
        sleep.wait()


def test_hunt_pid_that_does_not_exist_exits_3_and_without_url_exits_2() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    done = memprobe_cli("hunt", "--pid", str(gone.pid), "--url", "http://127.0.0.1:9", timeout=60)
    assert done.returncode == ExitCode.TARGET
    assert done.stderr.strip().splitlines() == [f"memprobe: no process has pid {gone.pid}"]

    done = memprobe_cli("hunt", "--pid", str(os.getpid()), timeout=60)
    assert done.returncode == ExitCode.USAGE
    assert "--pid needs --url" in done.stderr


@pytest.mark.parametrize("name", attach.DEBUGGERS)
def test_a_debugger_that_cannot_run_code_here_is_refused_before_it_touches_the_target(name: str) -> None:
    if not attach.shutil.which(name):
        pytest.skip(f"{name} is not installed")
    check = attach.check_debugger(name)
    if check.ok:
        pytest.skip(f"{name} can run code in a Python process here")
    port = free_port()
    with Child([sys.executable, "-m", "http.server", "--bind", LOOPBACK, str(port)],
               name="http.server", url=f"http://{LOOPBACK}:{port}/") as server:
        with pytest.raises(EnvironmentProblem, match=rf"no debugger here can run code in a Python "
                                                     rf"process \({name}: ") as err:
            attach.run_in(server.pid, "pass", timeout=30, method=name)
        assert err.value.exit_code == ExitCode.ENVIRONMENT
        # A failed call can wedge a process (measured with gdb here): this one was never traced.
        assert answers(server.url) == 200
