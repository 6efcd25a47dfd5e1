"""``--server production``: gunicorn and uvicorn, memory for the master and every worker, and no
worker left behind."""
from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest

from memprobe.compare import frameworks as catalog
from memprobe.compare import production
from tests.test_compare_cli import memprobe

SERVER_MODULE = {"wsgi": "gunicorn", "asgi": "uvicorn"}


def test_wsgi_apps_run_under_gunicorn_gthread_and_asgi_under_uvicorn() -> None:
    flask, fastapi = catalog.get("flask"), catalog.get("fastapi")
    argv = production.command(flask, "hello", 8000, production.ProductionSettings(workers=3, threads=4))
    assert argv[1:3] == ["-m", "gunicorn"] and argv[-1] == "hello_flask:app"
    assert argv[argv.index("--worker-class") + 1] == "gthread"
    assert argv[argv.index("--workers") + 1] == "3" and argv[argv.index("--threads") + 1] == "4"
    assert argv[argv.index("--bind") + 1] == "127.0.0.1:8000"
    argv = production.command(fastapi, "crud", 8000, production.ProductionSettings(workers=2))
    assert argv[1:3] == ["-m", "uvicorn"] and "--factory" in argv and argv[-1] == "crud_fastapi:create_app"
    assert argv[argv.index("--host") + 1] == "127.0.0.1"


def test_role_totals_sum_the_workers_and_give_their_mean() -> None:
    reading = {"rss": 10, "vms": 20, "uss": 4, "pss": 6, "swap": 0}
    entries = [{"role": "master", "after": reading}, {"role": "worker", "after": reading},
               {"role": "worker", "after": {**reading, "uss": 8}}]
    roles = production.by_role(entries)
    assert roles["master"]["count"] == 1
    assert roles["worker"]["count"] == 2 and roles["worker"]["total"]["uss"] == 12
    assert roles["worker"]["mean"]["uss"] == 6


@pytest.mark.slow
@pytest.mark.parametrize("name", ["flask", "fastapi", "django"])
def test_production_reports_each_worker_and_the_sum_and_leaves_no_worker(name: str, tmp_path: Path) -> None:
    fw = catalog.get(name)
    if not fw.installed():
        pytest.skip(f"{name} is not installed: {fw.extra_hint()}")
    if production.missing_modules(fw):
        pytest.skip(f"{production.missing_modules(fw)} not installed: pip install \"memprobe[production]\"")
    report = tmp_path / "out.json"
    run = memprobe("compare", "200", "5", "--frameworks", name, "--server", "production", "--workers", "2",
                   "--threads", "2", "--settle", "0.3", "--no-save", "--json", str(report), "-q")
    assert run.returncode == 0, run.stderr
    data = json.loads(report.read_text())
    assert data["settings"]["server"] == "production" and data["settings"]["workers"] == 2
    row = data["results"][0]
    assert row["status"] == "ok" and row["requests"]["ok"] == 200
    assert row["server"] == production.server_name(fw)
    entries = row["processes"]
    assert [e["role"] for e in entries].count("master") == 1
    assert [e["role"] for e in entries].count("worker") == 2 == row["workers"]
    for key in ("rss", "uss", "pss"):
        assert row["after"][key] == sum(e["after"][key] for e in entries)
        assert all(e["after"][key] > 0 for e in entries)
    assert row["memory_by_role"]["worker"]["count"] == 2
    for entry in entries:  # every process of the server is gone
        assert not psutil.pid_exists(entry["pid"]) or psutil.Process(entry["pid"]).status() == psutil.STATUS_ZOMBIE


@pytest.mark.slow
def test_a_missing_production_server_is_reported_with_the_extra(tmp_path: Path) -> None:
    import os

    from tests.conftest import REPO
    env = {"PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "helpers" / "hide_modules"), str(REPO)]),
           "MEMPROBE_TEST_HIDE": "gunicorn"}
    report = tmp_path / "out.json"
    memprobe("compare", "10", "2", "--frameworks", "bottle", "--server", "production", "--no-save",
             "--json", str(report), "-q", env=env)
    row = json.loads(report.read_text())["results"][0]
    assert row["status"] == "not-installed"
    assert row["pip_extra"] == 'pip install "memprobe[production]"' and "memprobe[production]" in row["reason"]
