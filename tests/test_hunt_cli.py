"""``memprobe hunt`` end to end: real children, real HTTP on 127.0.0.1, the CLI's exit codes."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent
QUICK = ["--requests", "1000", "--rounds", "4", "--warmup", "300"]
#: The fast protocol for planted leaks of hundreds of B/request: rounds until decided, a flat
#: route stopping once it could see leaks of 64 B/request (~512 requests, not ~2,048).
FAST = ["--sensitivity", "64", "--warmup", "300"]


def run_hunt(*args: str, cwd: Path = ROOT, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memprobe", "hunt", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def agents_for(marker: str) -> list[psutil.Process]:
    """memprobe agents still running whose command line mentions ``marker``."""
    out = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "memprobe.agent" in cmdline and marker in cmdline:
            out.append(proc)
    return out


def write_app(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


@pytest.mark.slow
def test_the_leaky_example_leaks_on_every_planted_route_and_exits_1(tmp_path: Path) -> None:
    out = tmp_path / "leaky.json"
    proc = run_hunt("examples/leaky_flask/app.py:app", *FAST, "--json", str(out),
                    "--md", str(tmp_path / "leaky.md"))
    assert proc.returncode == 1, proc.stderr
    data = json.loads(out.read_text())
    verdicts = {r["route"]: r["verdict"] for r in data["routes"]}
    assert verdicts == {"/": "clean", "/audit": "leak", "/history": "leak", "/render": "leak",
                        "/session": "leak"}
    holders = {r["route"]: r["holders"][0]["description"] for r in data["routes"] if r["holders"]}
    assert holders["/history"].startswith("module app.py, global _history (list, ")
    assert holders["/session"].startswith("module app.py, global _sessions (dict, ")
    assert holders["/render"].startswith("module app.py, function render_page, lru_cache")
    assert "log.handlers (list, " in holders["/audit"]
    for route in data["routes"]:
        if route["verdict"] == "leak":
            top = route["sites"][0]
            assert top["user_code"] and top["file"].endswith("leaky_flask/app.py"), route["route"]
            # your line is marked in the traceback (the allocation may be deeper, in a library
            # your line called: logging's handler list for /audit)
            mine = [f for f in top["traceback"] if f["user"]]
            assert [(f["file"], f["line"]) for f in mine] == [(top["file"], top["line"])], route["route"]
    assert data["verdict"] == "leak" and data["leak_kind"] == "python"
    assert set(data["bytes_per_request"]) == {"traced", "uss"}
    assert "LEAK on /audit, /history, /render, /session" in proc.stdout
    assert "| `/history` | **leak** | python |" in (tmp_path / "leaky.md").read_text()


@pytest.mark.slow
def test_the_clean_example_is_clean_on_every_route_and_exits_0(tmp_path: Path) -> None:
    out = tmp_path / "clean.json"
    proc = run_hunt("examples/clean_flask/app.py:app", *FAST, "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    assert {r["route"]: r["verdict"] for r in data["routes"]} == {
        r: "clean" for r in ("/", "/audit", "/history", "/render", "/session")}
    assert "verdict: clean" in proc.stdout


@pytest.mark.slow
def test_a_counter_in_the_route_makes_every_request_a_new_key(tmp_path: Path) -> None:
    write_app(tmp_path, "items.py", """
        from flask import Flask
        app = Flask(__name__)
        _items = {}
        @app.get("/items/<int:item_id>")
        def item(item_id):
            _items.setdefault(item_id, "x" * 50)
            return "ok"
    """)
    out = tmp_path / "items.json"
    proc = run_hunt("items.py:app", "--route", "/items/{n}", *QUICK, "--json", str(out),
                    cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    route = json.loads(out.read_text())["routes"][0]
    assert route["load"]["status_counts"] == {"200": 4000}
    # warm-up 300 + 4 rounds of 1000, all distinct ids (holders are read before the attribution
    # round)
    assert route["holders"][0]["entries"] == 4300


@pytest.mark.parametrize("target, source, message", [
    ("missing.py:app", None, "no such file"),
    ("surely_no_such_module_xyz:app", None, "no module named 'surely_no_such_module_xyz'"),
    ("plain.py:nope", "app = None\n", "has no attribute 'nope'"),
    ("plain.py:app", "app = 42\n", "is an int, not an app"),
    ("plain.py:app", "raise RuntimeError('no database')\n", "RuntimeError: no database at plain.py:1"),
])
def test_bad_targets_fail_in_one_line_with_exit_3_and_partial_json(
        tmp_path: Path, target: str, source: str | None, message: str) -> None:
    if source is not None:
        write_app(tmp_path, "plain.py", source)
    out = tmp_path / "partial.json"
    proc = run_hunt(target, "--json", str(out), cwd=tmp_path)
    assert proc.returncode == 3
    first = proc.stderr.splitlines()[0]
    assert first.startswith("memprobe: ") and message in first, proc.stderr
    assert "Traceback" not in proc.stderr.splitlines()[0]
    data = json.loads(out.read_text())
    assert data["routes"] == [] and message in data["error"] and data["verdict"] is None
    assert not agents_for(str(tmp_path))


@pytest.mark.slow
def test_an_app_that_dies_mid_run_is_exit_3_with_the_routes_done_so_far(tmp_path: Path) -> None:
    write_app(tmp_path, "dies.py", """
        import os
        from flask import Flask
        app = Flask(__name__)
        @app.get("/fine")
        def fine():
            return "ok"
        @app.get("/fatal")
        def fatal():
            os._exit(7)
    """)
    out = tmp_path / "partial.json"
    proc = run_hunt("dies.py:app", "--route", "/fine", "--route", "/fatal",
                    "--requests", "300", "--rounds", "2", "--warmup", "50", "--json", str(out),
                    cwd=tmp_path)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stderr.splitlines()[0] == "memprobe: the app died while hunting /fatal (exit code 7)"
    data = json.loads(out.read_text())
    assert [r["route"] for r in data["routes"]] == ["/fine"]
    assert "died" in data["error"]
    assert not agents_for(str(tmp_path))


@pytest.mark.slow
def test_a_server_started_by_cmd_is_judged_on_outside_readings_only(tmp_path: Path) -> None:
    pytest.importorskip("gunicorn")
    write_app(tmp_path, "gapp.py", """
        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]
    """)
    out = tmp_path / "cmd.json"
    proc = run_hunt("--cmd", f"{sys.executable} -m gunicorn gapp:app -w 1 -b 127.0.0.1:{{port}}", "--outside",
                    *QUICK, "--json", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    assert data["outside_only"] is True and data["app_kind"] == "cmd"
    assert data["routes"][0]["bytes_per_request"]["traced"] is None
    # USS alone: the interpreter's pages count in it only while no other process maps them, so
    # a parallel test's interpreters exiting mid-hunt raise it by a step that stays (3.6 MiB
    # here for three of them): bounded at worst, never a leak (exit 0).
    assert data["routes"][0]["verdict"] in ("clean", "bounded"), data["routes"][0]["series"]
    assert any("outside readings only" in n for n in data["notes"])


def test_cmd_without_a_port_placeholder_is_a_usage_error() -> None:
    code, _, err = run_cli("hunt", "--cmd", "gunicorn app:app")
    assert code == 2
    assert "{port}" in err


def test_hunt_without_a_target_is_a_usage_error() -> None:
    code, _, _ = run_cli("hunt")
    assert code == 2


@pytest.mark.slow
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_mprof_plot_draws_the_timeline_written_by_mprof(tmp_path: Path, jobs: str) -> None:
    from tests.helpers.mprof import plot

    dat, out = tmp_path / "hunt.dat", tmp_path / "hunt.json"
    proc = run_hunt(str(ROOT / "tests" / "servers" / "explain_native.py") + ":app", "--route", "/malloc",
                    "--route", "/", *QUICK, "--jobs", jobs, "--mprof", str(dat), "--json", str(out),
                    cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    read = plot(dat)
    assert read["cmd_line"].startswith("memprobe hunt ")
    routes = json.loads(out.read_text())["routes"]
    # One point per reading (the baseline and each round) of each route, a span per route.
    assert len(read["mem_usage"]) == sum(len(r["series"]["uss"]) for r in routes) == 10
    assert set(read["func_timestamp"]) == {"/malloc", "/"}
    assert read["timestamp"] == sorted(read["timestamp"])
    (start, end, mem_start, mem_end), = read["func_timestamp"]["/malloc"]
    assert end > start and mem_end > mem_start  # 1 KiB a request never freed
    # Side by side, the routes were read in two processes at once: each has its own line.
    assert {name: len(points) for name, points in read["children"].items()} == (
        {"/malloc": 5, "/": 5} if jobs == "2" else {})
