"""``memprobe compare`` as a user runs it: real frameworks, real HTTP, reports, exit codes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from memprobe.compare import frameworks as catalog
from tests.conftest import REPO, ctrl_c_reaches_it, run_cli, wait_until

pytestmark = pytest.mark.slow

MEMORY_KEYS = {"rss", "vms", "uss", "pss", "swap"}


def memprobe(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memprobe", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env={**os.environ, **(env or {})})


def installed(*names: str) -> list[str]:
    return [n for n in names if catalog.get(n).installed()]


def descendants_of_test_run(marker: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(p.info["cmdline"] or []):
                found.append(p)
        except psutil.Error:
            continue
    return found


def test_compare_measures_each_framework_and_writes_the_json_contract(tmp_path: Path) -> None:
    names = installed("tornado", "bottle")
    if not names:
        pytest.skip("neither tornado nor bottle is installed")
    report = tmp_path / "out.json"
    run = memprobe("compare", "300", "2", "--frameworks", ",".join(names), "--out", str(tmp_path / "reports"),
                   "--json", str(report), "--settle", "0.5")
    assert run.returncode == 0, run.stderr
    data = json.loads(report.read_text())
    assert data["result"] == "compare" and data["settings"]["requests"] == 300
    assert [r["framework"] for r in data["results"]] == names
    for row in data["results"]:
        assert row["status"] == "ok"
        assert row["version"] == catalog.get(row["framework"]).version()
        assert isinstance(row["pid"], int) and row["url"].startswith("http://127.0.0.1:")
        assert set(row["before"]) >= MEMORY_KEYS and set(row["after"]) >= MEMORY_KEYS
        assert all(isinstance(row["before"][k], int) for k in ("rss", "vms", "uss", "pss"))
        req = row["requests"]
        assert req["sent"] == 300 and req["ok"] + req["failed"] == 300
        assert sum(req["status_counts"].values()) + sum(req["errors"].values()) + req["timeouts"] == 300
        assert row["throughput_rps"] > 0
        assert set(row["latency_ms"]) >= {"p50", "p90", "p99", "max"}
        assert row["duration_s"] > 0
        assert len(row["samples"]["rss"]) >= 1
    # the default timestamped reports, JSON and Markdown
    written = sorted(p.suffix for p in (tmp_path / "reports").iterdir() if p.is_file())
    assert written == [".json", ".md"]
    # and the terminal table names every framework
    for name in names:
        assert name in run.stdout


@pytest.mark.parametrize("args, message", [
    (["compare", "0"], "N must be a positive number"),
    (["compare", "-3"], "N must be a positive number"),
    (["compare", "10", "-1"], "TIMEOUT must be a positive number"),
    (["compare", "10", "0.5", "--frameworks", "flask,nosuchthing"], "unknown framework 'nosuchthing'"),
    (["compare", "ten"], "invalid int value"),
    (["compare", "10", "0.5", "--concurrency", "0"], "--concurrency must be positive"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    code, _, err = run_cli(*args, "--no-save")
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_framework_that_is_not_installed_gets_a_row_with_the_pip_command(tmp_path: Path) -> None:
    if not installed("tornado"):
        pytest.skip("tornado is not installed")
    env = {"PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "helpers" / "hide_modules"), str(REPO)]),
           "MEMPROBE_TEST_HIDE": "bottle"}
    report = tmp_path / "out.json"
    run = memprobe("compare", "100", "2", "--frameworks", "bottle,tornado", "--no-save",
                   "--json", str(report), "--settle", "0", env=env)
    rows = {r["framework"]: r for r in json.loads(report.read_text())["results"]}
    assert rows["bottle"]["status"] == "not-installed"
    assert rows["bottle"]["pip"] == "pip install bottle"
    assert rows["tornado"]["status"] == "ok" and rows["tornado"]["requests"]["ok"] == 100
    assert run.returncode == 4  # named explicitly, so its absence is an environment problem
    assert "bottle: not-installed" in run.stdout


def test_japronto_keeps_its_row_and_says_why() -> None:
    run = memprobe("compare", "10", "1", "--frameworks", "japronto", "--no-save", "--json", "/dev/stdout", "-q")
    assert run.returncode == 4
    row = json.loads(run.stdout)["results"][0]
    assert row["status"] == "unavailable" and "Python" in row["reason"]


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupting_compare_stops_its_children_and_keeps_partial_results(
        tmp_path: Path, sig: int, code: int) -> None:
    if not installed("tornado"):
        pytest.skip("tornado is not installed")
    report = tmp_path / "partial.json"
    proc = subprocess.Popen([sys.executable, "-m", "memprobe", "compare", "10000000", "2",
                             "--frameworks", "tornado", "--no-save", "--json", str(report)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=ctrl_c_reaches_it)
    try:
        children: dict[int, psutil.Process] = {}

        def hammered() -> bool:
            # Read afresh on each poll: the first child may be a short-lived helper (setpriv
            # --help), not the server; every child ever seen must be gone at the end.
            now = psutil.Process(proc.pid).children(recursive=True)
            children.update((c.pid, c) for c in now)
            return any(c.status == psutil.CONN_ESTABLISHED for child in now for c in _connections(child))

        # The hammering has begun once the server holds an established connection.
        wait_until(hammered, 120, "the hammering begins")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    for child in children.values():
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    data = json.loads(report.read_text())
    assert data["interrupted"] is True
    assert f"wrote partial results to {report}" in err
    assert data["results"][0]["framework"] == "tornado"


def _connections(proc: psutil.Process) -> list[Any]:
    try:
        return list(proc.net_connections(kind="tcp"))
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def test_your_own_server_script_can_be_compared_beside_the_frameworks(tmp_path: Path) -> None:
    report = tmp_path / "out.json"
    script = REPO / "tests" / "servers" / "behaviours.py"
    run = memprobe("compare", "200", "2", "--frameworks", str(script), "--no-save", "--json", str(report),
                   "--settle", "0")
    assert run.returncode == 0, run.stderr
    row = json.loads(report.read_text())["results"][0]
    assert row["framework"] == "behaviours" and row["status"] == "ok"
    assert row["requests"]["ok"] == 200


def test_a_framework_that_fails_to_start_is_a_row_with_the_reason_and_exit_3(tmp_path: Path) -> None:
    names = installed("tornado")
    bad = REPO / "tests" / "servers" / "hello_crashes_on_start.py"
    report = tmp_path / "out.json"
    run = memprobe("compare", "100", "2", "--frameworks", ",".join([str(bad), *names]), "--no-save",
                   "--json", str(report), "--settle", "0")
    assert run.returncode == 3
    assert "Traceback" not in run.stderr
    rows = {r["framework"]: r for r in json.loads(report.read_text())["results"]}
    failed = rows["hello_crashes_on_start"]
    assert failed["status"] == "failed-to-start"
    assert "exited with code 1 before it answered HTTP" in failed["reason"]
    assert "fails on purpose" in failed["log_tail"]  # the child's own words are kept
    assert "hello_crashes_on_start: failed-to-start" in run.stdout
    for name in names:  # the others still ran
        assert rows[name]["status"] == "ok"
    assert not descendants_of_test_run(str(bad))


def test_a_framework_that_dies_mid_run_keeps_its_partial_row_and_leaves_nothing(tmp_path: Path) -> None:
    dies = REPO / "tests" / "servers" / "hello_dies_mid_run.py"
    report = tmp_path / "out.json"
    run = memprobe("compare", "1000", "2", "--frameworks", str(dies), "--no-save", "--json", str(report),
                   "--settle", "0")
    assert run.returncode == 3
    assert "Traceback" not in run.stderr
    row = json.loads(report.read_text())["results"][0]
    assert row["status"] == "crashed" and "died during the run" in row["reason"]
    assert row["before"]["rss"] > 0  # what was measured before it died is kept
    assert 0 < row["requests"]["ok"] < 1000
    assert not descendants_of_test_run(str(dies))


def test_a_server_script_that_does_not_exist_is_a_usage_error() -> None:
    code, _, err = run_cli("compare", "10", "--frameworks", "./nope/hello_nothing.py", "--no-save")
    assert code == 2 and "no such server script" in err


def most_servers_at_once(args: list[str]) -> tuple[int, subprocess.CompletedProcess[str]]:
    """Run compare, counting the hello-world servers alive together as it goes."""
    proc = subprocess.Popen([sys.executable, "-m", "memprobe", *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    most = 0
    try:
        while proc.poll() is None:
            try:
                servers = [p for p in psutil.Process(proc.pid).children(recursive=True)
                           if "hello_" in " ".join(p.cmdline())]
            except psutil.Error:
                continue
            most = max(most, len(servers))
            psutil.wait_procs([psutil.Process(proc.pid)], timeout=0.02)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return most, subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_compare_runs_the_children_together_and_alone_one_at_a_time(tmp_path: Path) -> None:
    names = installed("tornado", "bottle")
    if len(names) < 2:
        pytest.skip("needs tornado and bottle")
    for flag, together in (([], 2), (["--alone"], 1)):
        report = tmp_path / f"out{len(flag)}.json"
        most, run = most_servers_at_once(["compare", "300", "2", "--frameworks", ",".join(names), "--no-save",
                                          "--json", str(report), "--settle", "0.5", "-q", *flag])
        assert run.returncode == 0, run.stderr
        assert most == together
        data = json.loads(report.read_text())
        assert data["settings"]["overlap"] is (not flag)
        for row in data["results"]:
            assert row["status"] == "ok" and row["requests"]["sent"] == 300
            assert row["before"]["uss"] > 0 and row["after"]["uss"] > 0


@pytest.mark.timeout(300)
def test_mprof_plot_draws_the_timelines_written_by_mprof(tmp_path: Path) -> None:
    from tests.helpers.mprof import plot

    names = installed("flask", "bottle")
    if len(names) < 2:
        pytest.skip("needs flask and bottle")
    dat = tmp_path / "compare.dat"
    run = memprobe("compare", "300", "0.5", "--frameworks", ",".join(names), "--rounds", "2",
                   "--no-save", "-q", "--json", str(tmp_path / "c.json"), "--mprof", str(dat))
    assert run.returncode == 0, run.stderr
    read = plot(dat)
    # One child per framework and round, each with the points sampled while it was hammered.
    assert set(read["children"]) == {"flask", "flask#2", "bottle", "bottle#2"}
    data = json.loads((tmp_path / "c.json").read_text())
    sampled = {r["framework"]: [len(x["samples"]["rss"]) for x in r["rounds"]] for r in data["results"]}
    assert [len(read["children"][n]) for n in ("flask", "flask#2")] == sampled["flask"]
    assert len(read["mem_usage"]) == sum(sum(v) for v in sampled.values())
    assert all(20 < mib < 500 for mib, _ in read["children"]["flask"])
