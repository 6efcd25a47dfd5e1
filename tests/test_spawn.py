"""Spawning: readiness by a real request, the log kept, clean ends, and never an orphan."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil
import pytest

from memprobe.errors import TargetError
from memprobe.process.child import LOOPBACK, Child, free_port
from memprobe.process.group import exited, spawn, stop_group, wait_exit
from tests.conftest import REPO, SERVERS, start_behaviours, wait_until

pytestmark = pytest.mark.slow


def gone(pid: int) -> bool:
    """Whether ``pid`` is gone (or a zombie)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_free_port_is_bindable_on_loopback() -> None:
    import socket

    port = free_port()
    with socket.socket() as s:
        s.bind((LOOPBACK, port))


def test_ready_means_a_real_request_was_answered(no_orphans: None) -> None:
    with start_behaviours("--start-delay", "0.6") as child:
        assert child.ready_after_s is not None and child.ready_after_s >= 0.6
        with urllib.request.urlopen(child.url, timeout=5) as resp:
            assert resp.status == 200
    assert not child.alive()


def test_a_child_that_crashes_on_start_reports_its_exit_and_log(no_orphans: None) -> None:
    with pytest.raises(TargetError, match=r"exited with code 1 before it answered HTTP") as info:
        start_behaviours("--crash-on-start")
    assert "crashing on start, as asked" in info.value.log_tail
    assert "RuntimeError" in info.value.log_tail


def test_a_child_that_never_answers_is_stopped_at_the_deadline(no_orphans: None) -> None:
    child = Child([sys.executable, "-c", "import time; time.sleep(60)"], name="sleeper",
                  url=f"http://{LOOPBACK}:{free_port()}/", ready_timeout=1.0)
    with pytest.raises(TargetError, match=r"did not answer HTTP .* within 1 s"):
        child.start()
    assert not child.alive()


def test_a_missing_executable_is_a_target_error() -> None:
    child = Child(["/nonexistent/python"], name="ghost", url=f"http://{LOOPBACK}:1/")
    with pytest.raises(TargetError, match="cannot start"):
        child.start()


def test_stop_ends_the_whole_process_group(no_orphans: None) -> None:
    port = free_port()
    child = Child([sys.executable, str(SERVERS / "forking.py"), "--port", str(port)],
                  name="forking", url=f"http://{LOOPBACK}:{port}/")
    with child:
        worker = int(re.search(r"worker pid (\d+)", child.log_tail()).group(1))  # type: ignore[union-attr]
        assert psutil.pid_exists(worker)
    wait_until(lambda: gone(worker), 10, f"worker {worker} ends")


def test_check_alive_raises_once_the_child_died(no_orphans: None) -> None:
    with start_behaviours() as child:
        with pytest.raises(OSError):
            urllib.request.urlopen(child.url + "exit", timeout=5)
        assert child.exited(grace=10)  # not child.proc.wait(): that would reap behind its back
        with pytest.raises(TargetError, match=r"died \(exit code 3\)"):
            child.check_alive()


def test_a_grace_lets_check_alive_see_a_child_that_is_still_exiting(no_orphans: None) -> None:
    with start_behaviours() as child:
        with pytest.raises(OSError):
            urllib.request.urlopen(child.url + "exit", timeout=5)
        # No wait of our own: the request failed, and that is all a caller knows at this point.
        with pytest.raises(TargetError, match=r"died \(exit code 3\)"):
            child.check_alive(grace=10)
        assert child.exited() and not child.alive()


def test_a_grace_does_not_make_a_live_child_look_dead(no_orphans: None) -> None:
    with start_behaviours() as child:
        assert not child.exited(grace=0.2)
        child.check_alive(grace=0.2)
        assert child.alive()


def test_the_child_dies_when_memprobe_is_killed_outright(tmp_path: Path) -> None:
    # A memprobe killed outright cannot remove its child's log: it goes to the test's own folder.
    driver = subprocess.Popen([sys.executable, str(SERVERS / "driver.py")], cwd=REPO,
                              stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp_path)})
    try:
        child_pid = int(driver.stdout.readline())  # type: ignore[union-attr]
        assert psutil.pid_exists(child_pid)
        driver.send_signal(signal.SIGKILL)  # no finally, no atexit: only the kernel can help
        driver.wait()
        wait_until(lambda: gone(child_pid), 10, "the child ends with memprobe")
    finally:
        driver.kill()
        driver.wait()


def test_a_name_with_slashes_still_gets_a_log(no_orphans: None) -> None:
    port = free_port()
    child = Child([sys.executable, str(SERVERS / "behaviours.py"), "--port", str(port)],
                  name="app.py:app /api/items/{n}", url=f"http://{LOOPBACK}:{port}/")
    with child:
        assert child.log_path is not None and child.log_path.parent.is_dir()
        assert "behaviours server starting" in child.log_tail()


# --- spawn and stop_group: a raw process in a group of its own ---------------------------------

#: A leader that starts a grandchild in its group, says both pids, and waits.
FORKING = ("import os,subprocess,sys,time\n"
           "p=subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)'])\n"
           "print(os.getpid(), p.pid, flush=True)\n"
           "time.sleep(60)")


def spawn_forking() -> tuple[subprocess.Popen[bytes], psutil.Process]:
    """A :data:`FORKING` leader started with :func:`spawn`, and its grandchild."""
    proc = spawn([sys.executable, "-c", FORKING], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    leader, grandchild = map(int, proc.stdout.readline().split())
    proc.stdout.close()
    assert leader == proc.pid  # the command runs in the wrapper's place, not under it
    return proc, psutil.Process(grandchild)


@pytest.fixture
def killpg_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The group ids every ``os.killpg`` is sent to while the test runs."""
    calls: list[int] = []
    real = os.killpg

    def spy(pgid: int, sig: int) -> None:
        calls.append(pgid)
        real(pgid, sig)

    monkeypatch.setattr(os, "killpg", spy)
    return calls


def test_stop_group_ends_the_leader_and_what_it_forked(no_orphans: None) -> None:
    proc, grandchild = spawn_forking()
    assert os.getpgid(grandchild.pid) == proc.pid  # its own group, the grandchild in it
    assert stop_group(proc, timeout=5) == -signal.SIGTERM
    grandchild.wait(10)
    assert not psutil.pid_exists(proc.pid) or psutil.Process(proc.pid).ppid() != os.getpid()


def test_a_leader_that_died_first_is_held_until_its_group_is_ended(no_orphans: None) -> None:
    proc, grandchild = spawn_forking()
    os.kill(proc.pid, signal.SIGKILL)
    assert wait_exit(proc, 10) and exited(proc)
    assert proc.returncode == -signal.SIGKILL and proc.poll() == -signal.SIGKILL
    assert psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE  # not reaped: the pid is ours
    assert grandchild.is_running()
    assert stop_group(proc) == -signal.SIGKILL
    grandchild.wait(10)


def test_a_leader_that_ignores_sigterm_is_killed_after_the_timeout(no_orphans: None) -> None:
    proc = spawn([sys.executable, "-c", "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
                  " print(flush=True); time.sleep(60)"], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.stdout.close()
    assert stop_group(proc, timeout=0.2) == -signal.SIGKILL


def test_stopping_a_leader_reaped_elsewhere_signals_nothing(no_orphans: None, killpg_calls: list[int]) -> None:
    proc = spawn([sys.executable, "-c", "import time; time.sleep(60)"])
    proc.kill()
    proc.wait()  # reaped: from here its pid, and so its group id, may be anyone's
    assert stop_group(proc) == -signal.SIGKILL
    assert killpg_calls == []


def test_stop_group_twice_signals_only_while_the_leader_is_ours(no_orphans: None, killpg_calls: list[int]) -> None:
    proc = spawn([sys.executable, "-c", "import time; time.sleep(60)"])
    assert stop_group(proc) == -signal.SIGTERM
    sent = len(killpg_calls)
    assert stop_group(proc) == -signal.SIGTERM
    assert len(killpg_calls) == sent


def test_spawn_of_a_missing_program_is_an_oserror_before_anything_starts() -> None:
    with pytest.raises(FileNotFoundError):
        spawn(["memprobe-no-such-program"])
    with pytest.raises(FileNotFoundError):
        spawn(["/nonexistent/python"])
