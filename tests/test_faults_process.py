"""Processes, files, sockets: what memprobe starts it ends, what it signals is its own, what it
writes it removes, and a port someone else took is not mistaken for the child's."""
from __future__ import annotations

import glob
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import psutil
import pytest

from memprobe.errors import TargetError
from memprobe.process import child as child_module
from memprobe.process import group as group_module
from memprobe.process.child import LOOPBACK, Child, free_port
from tests import conftest
from tests.conftest import SERVERS, start_behaviours

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


#: In the names of this module's children, so that its listings of the temp directory see only
#: what they left (other test runs may be writing memprobe-* files at the same time).
TAG = f"faults{os.getpid()}"


def memprobe_temp_files() -> set[str]:
    """The memprobe-* entries of the temp directory that this module's children made."""
    return {p for p in glob.glob(os.path.join(tempfile.gettempdir(), "memprobe-*")) if TAG in p}


def behaviours_on(port: int, *extra: str) -> Child:
    return conftest.behaviours_on(port, *extra, name=f"{TAG}-behaviours")


# --- signals reach only what is still ours -------------------------------------------------

@pytest.fixture
def killpg_targets(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, str | None]]]:
    """Every ``killpg`` the child module sends, with what the group id's pid was at that
    moment: a child of ours (alive or a zombie we have not reaped), or None (released)."""
    seen: list[tuple[int, str | None]] = []
    real = os.killpg

    def spy(pgid: int, sig: int) -> None:
        try:
            proc = psutil.Process(pgid)
            status = proc.status() if proc.ppid() == os.getpid() else None
        except psutil.NoSuchProcess:
            status = None
        seen.append((pgid, status))
        real(pgid, sig)

    monkeypatch.setattr(child_module.os, "killpg", spy)
    yield seen


def test_every_group_signal_is_sent_while_the_leader_is_still_ours(
        no_orphans: None, killpg_targets: list[tuple[int, str | None]]) -> None:
    with start_behaviours():
        pass
    assert killpg_targets, "stop() signalled nothing"
    assert all(status is not None for _, status in killpg_targets), killpg_targets


def test_a_child_seen_exited_is_kept_unreaped_until_stop_so_its_pid_cannot_be_reused(
        no_orphans: None, killpg_targets: list[tuple[int, str | None]]) -> None:
    child = start_behaviours()
    os.kill(child.pid, signal.SIGKILL)
    assert child.exited(grace=10)
    assert child.returncode == -signal.SIGKILL
    assert psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE  # the pid is still held
    assert child.stop() == -signal.SIGKILL
    assert not psutil.pid_exists(child.pid) or psutil.Process(child.pid).ppid() != os.getpid()
    assert all(status is not None for _, status in killpg_targets), killpg_targets


def test_workers_that_outlive_their_master_are_still_ended(no_orphans: None) -> None:
    port = free_port()
    child = Child([sys.executable, str(SERVERS / "forking.py"), "--port", str(port)],
                  name="forking", url=f"http://{LOOPBACK}:{port}/")
    with child:
        worker = psutil.Process(int(child.log_tail().split("worker pid ")[1].split()[0]))
        os.kill(child.pid, signal.SIGKILL)
        assert child.exited(grace=10) and worker.is_running()
    worker.wait(10)


def test_a_leader_reaped_behind_the_childs_back_is_not_signalled(
        no_orphans: None, killpg_targets: list[tuple[int, str | None]]) -> None:
    child = start_behaviours()
    assert child.proc is not None
    child.proc.kill()
    child.proc.wait()  # Popen reaps: from here the pid may be anyone's
    child.stop()
    assert killpg_targets == []


# --- no Python between fork and exec, and still no orphan -----------------------------------

def test_children_are_started_without_python_code_between_fork_and_exec(
        monkeypatch: pytest.MonkeyPatch, no_orphans: None) -> None:
    kwargs_seen: list[dict[str, object]] = []
    real = subprocess.Popen

    def spy(*args: object, **kwargs: object) -> subprocess.Popen[bytes]:
        kwargs_seen.append(kwargs)
        return real(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(child_module.subprocess, "Popen", spy)
    with start_behaviours():
        pass
    assert kwargs_seen and all(kw.get("preexec_fn") is None for kw in kwargs_seen)
    assert all(kw.get("start_new_session") for kw in kwargs_seen)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_trampoline_used_without_setpriv_also_makes_the_child_die_with_its_parent(
        monkeypatch: pytest.MonkeyPatch, no_orphans: None) -> None:
    monkeypatch.setattr(group_module, "_setpriv", lambda: None)
    with start_behaviours() as child:
        status = open(f"/proc/{child.pid}/cmdline", "rb").read().split(b"\0")
        assert b"behaviours.py" in status[1]  # the trampoline exec'd the server in its place


def test_the_command_runs_as_given_not_with_symlinks_resolved(no_orphans: None) -> None:
    with start_behaviours() as child:
        argv = open(f"/proc/{child.pid}/cmdline", "rb").read().split(b"\0")
    assert argv[0] == os.fsencode(sys.executable)  # a venv's python is a symlink: keep it


# --- a port taken by someone else ----------------------------------------------------------

class _Impostor(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Length", "8")
        self.end_headers()
        self.wfile.write(b"impostor")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def impostor() -> Iterator[int]:
    """A server of another process's (this one's) already listening on a port; its port."""
    server = HTTPServer((LOOPBACK, 0), _Impostor)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_port_taken_by_another_server_is_not_mistaken_for_the_child(
        impostor: int, no_orphans: None) -> None:
    child = behaviours_on(impostor)
    child.check_listener = True
    with pytest.raises(child_module.PortTaken):
        child.start()
    assert not child.alive()


def test_start_on_free_port_tries_another_port_when_its_port_was_taken(
        impostor: int, no_orphans: None) -> None:
    ports = iter([impostor])
    with child_module.start_on_free_port(lambda port: behaviours_on(next(ports, port))) as child:
        assert child.port != impostor
        assert child._listens_on(child.port)
    assert not child.alive()


def test_start_on_free_port_gives_up_after_its_retries(impostor: int, no_orphans: None) -> None:
    with pytest.raises(child_module.PortTaken):
        child_module.start_on_free_port(lambda port: behaviours_on(impostor), retries=1)


def test_a_listening_socket_is_only_what_free_port_promised() -> None:
    with socket.socket() as s:
        s.bind((LOOPBACK, free_port()))


# --- nothing left in the temp directory ----------------------------------------------------

def test_a_child_leaves_no_log_behind_once_stopped(no_orphans: None) -> None:
    before = memprobe_temp_files()
    with behaviours_on(free_port()) as child:
        assert child.log_path is not None and child.log_path.exists()
        assert "behaviours server starting" in child.log_tail()
        assert memprobe_temp_files() - before == {str(child.log_path)}
    assert memprobe_temp_files() == before
    assert "behaviours server starting" in child.log_tail()  # the tail outlives the file


def test_a_child_that_crashes_on_start_leaves_no_log_but_says_why(no_orphans: None) -> None:
    before = memprobe_temp_files()
    with pytest.raises(TargetError) as info:
        behaviours_on(free_port(), "--crash-on-start").start()
    assert "crashing on start, as asked" in info.value.log_tail
    assert memprobe_temp_files() == before


def test_a_child_that_never_answers_leaves_no_log(no_orphans: None) -> None:
    before = memprobe_temp_files()
    child = Child([sys.executable, "-c", "print('hello', flush=True); import time; time.sleep(60)"],
                  name=f"{TAG}-sleeper", url=f"http://{LOOPBACK}:{free_port()}/", ready_timeout=1.0)
    with pytest.raises(TargetError, match="did not answer"):
        child.start()
    assert memprobe_temp_files() == before
    assert "hello" in child.log_tail()


def test_a_missing_executable_leaves_no_log() -> None:
    before = memprobe_temp_files()
    with pytest.raises(TargetError, match="cannot start .*No such file"):
        Child(["/nonexistent/python"], name=f"{TAG}-ghost", url=f"http://{LOOPBACK}:1/").start()
    with pytest.raises(TargetError, match="cannot start .*No such file"):
        Child(["no-such-program-here"], name=f"{TAG}-ghost", url=f"http://{LOOPBACK}:1/").start()
    assert memprobe_temp_files() == before


def test_a_log_the_caller_named_is_kept(tmp_path: object, no_orphans: None) -> None:
    log = os.path.join(str(tmp_path), "server.log")
    port = free_port()
    child = Child([sys.executable, str(SERVERS / "behaviours.py"), "--port", str(port)],
                  name="behaviours", url=f"http://{LOOPBACK}:{port}/", log_path=log)
    with child:
        pass
    assert "behaviours server starting" in open(log).read()


# --- every starter of a child copes with a port taken between its choice and the bind -------

@pytest.fixture
def first_port_taken(impostor: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """``free_port`` first answers a port another server already listens on (what another
    process binding it in between looks like), then free ones; the ports it gave, in order."""
    given: list[int] = []
    real = child_module.free_port

    def pick(host: str = LOOPBACK) -> int:
        given.append(impostor if not given else real(host))
        return given[-1]

    monkeypatch.setattr(child_module, "free_port", pick)
    return given


HELLO_APP = '''
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]
'''


@pytest.mark.timeout(180)
def test_a_hunt_with_the_agent_starts_again_on_another_port(
        first_port_taken: list[int], tmp_path: Path, no_orphans: None) -> None:
    from memprobe.hunt import hunt

    (tmp_path / "hello_race.py").write_text(HELLO_APP, encoding="utf-8")
    result = hunt(f"{tmp_path / 'hello_race.py'}:app", routes=["/"], requests=50, rounds=2, warmup=0)
    assert len(first_port_taken) == 2
    assert result.routes[0].load["ok"] == 100


@pytest.mark.timeout(180)
def test_a_hunt_of_a_command_starts_it_again_on_another_port(
        first_port_taken: list[int], no_orphans: None) -> None:
    from memprobe.hunt import hunt

    result = hunt(cmd=f"{sys.executable} {SERVERS / 'behaviours.py'} --port {{port}}", routes=["/"],
                  requests=50, rounds=2, warmup=0)
    assert len(first_port_taken) == 2
    assert result.routes[0].load["ok"] == 100


@pytest.mark.timeout(180)
def test_compare_starts_a_framework_again_on_another_port(
        first_port_taken: list[int], no_orphans: None) -> None:
    from memprobe.compare import frameworks as catalog
    from memprobe.compare.runner import Settings, measure

    rnd = measure(catalog.custom(SERVERS / "behaviours.py"), Settings(requests=50, settle_s=0, timeout=10, concurrency=2))
    assert len(first_port_taken) == 2
    assert rnd.url == f"http://{LOOPBACK}:{first_port_taken[1]}/"
    assert rnd.load is not None and rnd.load.ok == 50
