"""The hunt engine: one protocol behind probes, a private control channel, failures that say
what they are (never the leak code), and a Ctrl-C that keeps what was measured.

Real children, real HTTP on 127.0.0.1.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from memprobe.agent.control import AgentClient
from memprobe.errors import AgentError, ExitCode
from memprobe.hunt import HuntSettings, hunt, hunt_in_process
from memprobe.hunt.probes import compose
from tests.conftest import ctrl_c_reaches_it, wait_until

ROOT = Path(__file__).resolve().parent.parent
#: Few requests, fast: a flat route is clean at the coarse sensitivity they can reach, not at 16 B.
SMALL = {"requests": 200, "rounds": 3, "warmup": 20, "sensitivity": 256}

APP = '''
import os, time
from pathlib import Path

_kept = []

def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/leak":
        _kept.append(bytes(300))
    elif path == "/slow":
        marker = os.environ.get("MEMPROBE_TEST_MARKER")
        if marker:
            Path(marker).touch()
        time.sleep(0.01)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
'''


@pytest.fixture
def app_file(tmp_path: Path) -> Path:
    path = tmp_path / "engine_app.py"
    path.write_text(textwrap.dedent(APP), encoding="utf-8")
    return path


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_child_and_the_in_process_probes_give_one_protocol_the_same_verdicts(app_file: Path) -> None:
    child = hunt(f"{app_file}:app", routes=["/leak", "/"], **SMALL)
    inproc = hunt_in_process(f"{app_file}:app", routes=["/leak", "/"], **SMALL)

    for result in (child, inproc):
        assert [r.verdict for r in result.routes] == ["leak", "clean"]
        leak = result.routes[0]
        assert leak.sites and leak.sites[0].user and leak.sites[0].file == str(app_file)
        assert leak.holders[0].description.startswith("module engine_app.py, global _kept (list, ")
        for route in result.routes:
            assert route.load["sent"] == route.load["ok"] + route.load["failed"] == 600
    assert child.settings.mode == "child" and inproc.settings.mode == "in_process"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_control_socket_is_private_and_an_unknown_command_is_an_agent_error(app_file: Path) -> None:
    probe = compose.child(f"{app_file}:app", HuntSettings.chosen(**SMALL))
    agent = probe.reader
    try:
        probe.open()
        assert agent.client is not None
        path = Path(agent.client.path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        with pytest.raises(AgentError, match="unknown command") as info:
            agent.client.call("no-such-command")
        assert info.value.exit_code == ExitCode.TARGET  # a failure to measure, never the leak code
        other = AgentClient(path, timeout=5)
        assert other.connect().call("hello")["kind"] == "wsgi"  # same user: let in
        other.close()
    finally:
        probe.close()
    assert not path.parent.exists()  # the hunt's folder, socket included, is gone


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.skipif(os.getuid() != 0 or not os.access("/usr/bin/python3", os.X_OK),
                    reason="needs root and the system's python3 to try the socket as another user")
def test_another_user_cannot_reach_the_agent(app_file: Path) -> None:
    probe = compose.child(f"{app_file}:app", HuntSettings.chosen(**SMALL))
    agent = probe.reader
    try:
        probe.open()
        assert agent.client is not None
        os.chmod(Path(agent.client.path).parent, 0o755)  # only the socket's own mode is left
        code = ("import socket,sys\ns=socket.socket(socket.AF_UNIX)\n"
                "try:\n s.connect(sys.argv[1])\nexcept PermissionError:\n sys.exit(13)\n")
        # The system's interpreter: another user may not be able to run this venv's.
        done = subprocess.run(["/usr/bin/python3", "-c", code, agent.client.path], user=65534,
                              capture_output=True, timeout=30)
        assert done.returncode == 13, done.stderr
    finally:
        probe.close()


def test_a_route_without_its_leading_slash_is_hunted_as_a_path(app_file: Path) -> None:
    result = hunt_in_process(f"{app_file}:app", routes=["leak"], **SMALL)
    assert result.routes[0].route == "/leak" and result.routes[0].verdict == "leak"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_cmd_route_without_its_leading_slash_is_hunted_as_a_path(tmp_path: Path) -> None:
    server = ROOT / "frameworks" / "hello_bottle.py"
    result = hunt(routes=["hello"], cmd=f"{sys.executable} {server} --port {{port}} --host 127.0.0.1",
                  outside=True, **SMALL)
    assert result.routes[0].route == "/hello" and result.outside_only


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_hunt_writes_what_it_measured_marked_interrupted(
        app_file: Path, tmp_path: Path, signum: int) -> None:
    marker, out = tmp_path / "slow-started", tmp_path / "partial.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MEMPROBE_TEST_MARKER": str(marker)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "memprobe", "hunt", f"{app_file}:app", "--route", "/",
         "--route", "/slow", "--requests", "300", "--rounds", "3", "--warmup", "20", "--sensitivity", "256",
         "--json", str(out)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=ctrl_c_reaches_it)
    try:
        wait_until(marker.exists, 120, "the hunt to reach /slow")
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signum, err
    assert "interrupted" in err and "Traceback" not in err
    data = json.loads(out.read_text())
    assert data["interrupted"] is True
    assert [r["route"] for r in data["routes"]][:1] == ["/"]
    assert data["routes"][0]["verdict"] == "clean"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_an_interrupted_side_by_side_hunt_stops_every_child_and_writes_what_it_measured(
        app_file: Path, tmp_path: Path) -> None:
    marker, out = tmp_path / "slow-started", tmp_path / "partial.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MEMPROBE_TEST_MARKER": str(marker)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "memprobe", "hunt", f"{app_file}:app", "--route", "/",
         "--route", "/slow", "--jobs", "2", "--requests", "300", "--rounds", "3", "--warmup", "20",
         "--json", str(out)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=ctrl_c_reaches_it)
    children: dict[int, psutil.Process] = {}

    def slow_started() -> bool:
        children.update((c.pid, c) for c in psutil.Process(proc.pid).children(recursive=True))
        return marker.exists()

    try:
        wait_until(slow_started, 120, "the second child to reach /slow")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert len(children) >= 2  # one child per route
    for child in children.values():
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    data = json.loads(out.read_text())
    assert data["interrupted"] is True and data["settings"]["jobs"] == 2
    routes = [r["route"] for r in data["routes"]]
    assert routes == [r for r in ("/", "/slow") if r in routes]  # in the order asked


def test_settings_are_typed_and_checked() -> None:
    from memprobe.errors import UsageError

    with pytest.raises(UsageError):
        HuntSettings(rounds=1).validate()
    settings = HuntSettings(requests=100, cmd="x {port}", mode="outside")
    assert HuntSettings.from_dict(settings.to_dict()) == settings
    assert settings.attributed == 100
    blocks = HuntSettings(signal="blocks")
    blocks.validate()
    assert HuntSettings.from_dict(blocks.to_dict()) == blocks
    assert HuntSettings.from_dict({"requests": 1}).signal == "traced"  # written before it existed
    for wrong in (HuntSettings(signal="bytes"), HuntSettings(signal="blocks", mode="outside", cmd="x {port}"),
                  HuntSettings(signal="blocks", mode="in_process")):
        with pytest.raises(UsageError):
            wrong.validate()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_rounds_judged_on_blocks_run_untraced_and_the_attribution_round_still_names_the_line(
        app_file: Path) -> None:
    from memprobe.results.hunt import HuntResult

    result = hunt(f"{app_file}:app", routes=["/leak", "/"], requests=500, rounds=3, warmup=50, signal="blocks",
                  sensitivity=256)

    assert [r.verdict for r in result.routes] == ["leak", "clean"]
    leak, clean = result.routes
    assert all(r.traced is None and r.blocks is not None for r in leak.readings + clean.readings)
    assert leak.judgement.traced is None and leak.kind == "python"
    assert leak.judgement.blocks is not None and 0.95 < leak.judgement.blocks.slope < 1.05
    assert f"blocks {leak.judgement.blocks.slope:+.2f} ±" in leak.judgement.reason
    assert leak.sites and leak.sites[0].file == str(app_file)  # the deep round is traced
    assert leak.holders[0].description.startswith("module engine_app.py, global _kept (list, ")
    again = HuntResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again.settings.signal == "blocks"
    assert [r.blocks for r in again.routes[0].readings] == [r.blocks for r in leak.readings]
    blocks = again.routes[0].judgement.blocks
    assert blocks is not None and (blocks.slope, blocks.verdict) == (round(leak.judgement.blocks.slope, 4), "leak")


def test_the_blocks_fit_calls_one_object_per_request_a_leak_and_a_hello_worlds_scatter_clean() -> None:
    from memprobe.hunt.model import judge
    from memprobe.results.hunt import Reading

    xs = [0, 2000, 4000, 6000, 8000, 10000]
    scatter = [0, 230, -180, 120, -230, 60]  # CherryPy's hello-world scatters by ~230 blocks
    one_int = judge([Reading(x, None, 10_000_000, 100_000 + x + d) for x, d in zip(xs, scatter)])
    noise = judge([Reading(x, None, 10_000_000, 100_000 + d) for x, d in zip(xs, scatter)])
    assert (one_int.verdict, one_int.kind) == ("leak", "python")
    assert noise.verdict == "clean"
    traced = judge([Reading(x, 5_000_000, 10_000_000, 100_000 + x) for x in xs])
    assert traced.verdict == "clean" and traced.blocks is not None and traced.blocks.verdict == "leak", \
        "with a traced heap, the blocks are reported, not judged"


def test_a_closed_listening_socket_is_refused_cleanly(tmp_path: Path) -> None:
    from memprobe.agent.control import listen

    sock = listen(str(tmp_path / "c.sock"))
    try:
        assert stat.S_IMODE(os.stat(tmp_path / "c.sock").st_mode) == 0o600
    finally:
        sock.close()
    client = AgentClient(tmp_path / "c.sock", timeout=1)
    with pytest.raises(Exception, match="control channel"):
        client.connect(deadline_s=0.2)
    assert isinstance(socket.AF_UNIX, int)
