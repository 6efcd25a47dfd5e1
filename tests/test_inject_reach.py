"""Where the injected agent reaches: the gated ``.pth`` memprobe writes into this interpreter's
site-packages arms the agent in the processes that do not read ``PYTHONPATH`` (``python -I``,
``-E``, a server that drops ``PYTHONPATH`` and re-executes itself, gunicorn and uvicorn workers
whose command dropped it), and in no process whose ``$MEMPROBE_CHANNEL`` is not its channel.

Real processes, a real channel; ``bench/injection_reach.py`` has the whole table.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from memprobe.agent.channel import BOOTSTRAP_DIR, PTH_MARK, Channel
from memprobe.agent.control import AgentClient
from memprobe.agent.inject import ENV_CHANNEL
from tests.conftest import wait_until

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent

APP = '''\
import os, sys

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]

async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return

if __name__ == "__main__":
    if "reexec" in sys.argv and "--again" not in sys.argv:
        os.environ.pop("PYTHONPATH", None)
        os.execv(sys.executable, [*sys.orig_argv, "--again"])
    print(sorted(m for m in sys.modules if m.startswith("memprobe")), flush=True)
    sys.stdin.readline()
'''


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


@pytest.fixture
def channel() -> Iterator[Channel]:
    with Channel() as made:
        yield made


def without_pythonpath(env: dict[str, str]) -> dict[str, str]:
    """``env`` as a command that dropped ``PYTHONPATH`` has it."""
    return {k: v for k, v in env.items() if k != "PYTHONPATH"}


def hello(channel: Channel, pid: int) -> dict[str, object]:
    client = AgentClient(channel.agents()[pid]).connect()
    try:
        answer: dict[str, object] = client.call("hello")
        return answer
    finally:
        client.close()


def run_script(app_dir: Path, flags: list[str], env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, *flags, str(app_dir / "app.py"), *args], env=env, cwd=app_dir,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def first_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("flag", ["-I", "-E"])
def test_python_run_isolated_or_ignoring_the_environment_gets_the_agent(
        flag: str, app_dir: Path, channel: Channel) -> None:
    proc = run_script(app_dir, [flag], channel.env())
    try:
        assert "memprobe.agent.inject" in first_line(proc)
        wait_until(lambda: proc.pid in channel.agents(), 10, "the agent's socket")
        assert hello(channel, proc.pid)["pid"] == proc.pid
    finally:
        proc.communicate("\n", timeout=10)
    assert channel.agents() == {}


@pytest.mark.timeout(60)
def test_a_server_that_drops_pythonpath_and_re_executes_itself_gets_the_agent_after(
        app_dir: Path, channel: Channel) -> None:
    proc = run_script(app_dir, [], channel.env(), "reexec")
    try:
        assert "memprobe.agent.inject" in first_line(proc)  # printed only after the exec
        wait_until(lambda: proc.pid in channel.agents(), 10, "the agent's socket")
        assert hello(channel, proc.pid)["pid"] == proc.pid
    finally:
        proc.communicate("\n", timeout=10)


@pytest.mark.timeout(60)
def test_python_without_site_gets_no_agent_by_either_way(app_dir: Path, channel: Channel) -> None:
    proc = run_script(app_dir, ["-S"], channel.env())
    try:
        assert first_line(proc) == "[]"  # the agent arms before the script runs, or never
        assert channel.agents() == {}
    finally:
        proc.communicate("\n", timeout=10)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("server", ["gunicorn", "uvicorn"])
def test_each_worker_gets_the_agent_when_the_command_dropped_pythonpath(
        server: str, app_dir: Path, channel: Channel, no_orphans: None) -> None:
    argv = ([str(BIN / "gunicorn"), "-w", "2", "-b", "127.0.0.1:0", "app:app"] if server == "gunicorn" else
            [str(BIN / "uvicorn"), "--workers", "2", "--port", "0", "--log-level", "warning", "app:asgi"])
    proc = subprocess.Popen(argv, env=without_pythonpath(channel.env()), cwd=app_dir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        agents = wait_until(lambda: len(channel.agents()) == 2 and channel.agents(), 20, "both workers' agents")
        workers = {c.pid for c in psutil.Process(proc.pid).children() if c.pid in agents}  # type: ignore[operator]
        assert workers == set(agents) and proc.pid not in agents  # type: ignore[call-overload, operator]
        assert all(hello(channel, pid)["pid"] == pid for pid in workers)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("gate", [None, "/tmp/memprobe-run-another"], ids=["no gate", "another channel"])
def test_a_process_without_its_channels_gate_imports_nothing_of_memprobe(
        gate: str | None, app_dir: Path, channel: Channel) -> None:
    env = without_pythonpath(channel.env())
    del env[ENV_CHANNEL]
    if gate is not None:
        env[ENV_CHANNEL] = gate
    assert channel.pth_files, "this interpreter's site-packages is writable here"
    proc = run_script(app_dir, ["-I"], env)
    try:
        assert first_line(proc) == "[]"
    finally:
        proc.communicate("\n", timeout=10)
    assert channel.agents() == {}


@pytest.mark.timeout(60)
def test_the_pth_goes_with_its_channel_and_a_killed_runs_is_removed_by_the_next(tmp_path: Path) -> None:
    stale = tmp_path / "memprobe-run-killed.pth"
    stale.write_text(f"{PTH_MARK}{tmp_path / 'memprobe-run-killed'}\nimport os\n")
    alive = Channel()
    (kept,) = alive.install_pth([tmp_path])
    with Channel() as channel:
        (pth,) = channel.install_pth([tmp_path])
        assert channel.install_pth([tmp_path]) == [pth]  # once a directory
        assert pth.name == channel.path.name + ".pth" and not stale.exists() and kept.exists()
        env = channel.env(pth=False)
        assert env["PYTHONPATH"].split(os.pathsep)[0] == str(BOOTSTRAP_DIR)
    assert not pth.exists() and kept.exists()
    alive.close()
    assert not kept.exists() and not alive.path.exists()


@pytest.mark.timeout(60)
def test_a_process_that_execs_another_program_leaves_no_agent_socket(channel: Channel, no_orphans: None) -> None:
    code = "import os, shutil; os.execv(shutil.which('sleep'), ['sleep', '30'])"
    proc = subprocess.Popen([sys.executable, "-c", code], env=channel.env())
    try:
        wait_until(lambda: psutil.Process(proc.pid).cmdline()[:1] == ["sleep"], 10, "the exec")
        assert channel.agents() == {}
    finally:
        proc.kill()
        proc.wait(timeout=10)
