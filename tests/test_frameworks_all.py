"""``compare --frameworks all`` measures every installed framework, and the CRUD scenario runs
for each framework and variant that has one, with memory and latency per request kind."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from memprobe.compare import frameworks as catalog
from tests.test_compare_cli import memprobe

pytestmark = pytest.mark.slow

CRUD_STACKS = [(fw.name, v) for fw in catalog.all_frameworks() for v in fw.crud]


def test_all_gives_a_measured_row_for_every_installed_framework_and_says_why_japronto_is_not(
        tmp_path: Path) -> None:
    report = tmp_path / "all.json"
    run = memprobe("compare", "100", "5", "--frameworks", "all", "--settle", "0.2", "--no-save",
                   "--json", str(report), "-q", timeout=600)
    rows = {r["framework"]: r for r in json.loads(report.read_text())["results"]}
    assert list(rows) == [fw.name for fw in catalog.all_frameworks()]
    for fw in catalog.all_frameworks():
        row = rows[fw.name]
        if fw.unavailable:
            assert row["status"] == "unavailable" and row["reason"] == fw.unavailable
        elif not fw.installed():
            assert row["status"] == "not-installed" and row["pip_extra"] == fw.extra_hint()
        else:
            assert row["status"] == "ok", (fw.name, row["reason"], row.get("log_tail"))
            assert row["requests"]["ok"] == 100
    assert rows["japronto"]["status"] == "unavailable"
    assert run.returncode in (0, 4)  # 4 only when a framework of "all" is not installed here


@pytest.mark.parametrize("name, variant", CRUD_STACKS, ids=[f"{n}+{v}" for n, v in CRUD_STACKS])
def test_crud_reports_latency_and_memory_per_request_kind(name: str, variant: str, tmp_path: Path) -> None:
    fw = catalog.get(name)
    if not fw.installed():
        pytest.skip(f"{name} is not installed: {fw.extra_hint()}")
    if variant == "sqlalchemy" and not catalog.importable("sqlalchemy"):
        pytest.skip('sqlalchemy is not installed: pip install "memprobe[orm]"')
    report = tmp_path / "crud.json"
    run = memprobe("compare", "64", "--scenario", "crud", "--frameworks", name, "--variants", variant,
                   "--settle", "0.2", "--no-save", "--json", str(report), "-q")
    assert run.returncode == 0, run.stderr
    data = json.loads(report.read_text())
    assert data["settings"]["scenario"]["name"] == "crud" and data["settings"]["timeout_s"] == 10
    [row] = data["results"]
    assert row["stack"] == f"{name}+{variant}" and row["variant"] == variant
    steps = row["steps"]
    assert [s["name"] for s in steps] == ["list all", "get one", "create", "update", "delete"]
    assert [s["requests"]["sent"] for s in steps] == [2, 20, 20, 20, 2]
    for step in steps:  # every request of every kind succeeded: ids exist, bodies validate
        assert step["requests"]["failed"] == 0, (step["name"], step["requests"])
        assert step["latency_ms"]["mean"] > 0 and step["after"]["uss"] > 0
    assert steps[2]["requests"]["status_counts"] == {"201": 20}
    assert steps[4]["requests"]["status_counts"] == {"204": 2}
    assert row["requests"]["sent"] == 64 and row["after"]["uss"] > 0


def test_frameworks_without_a_crud_app_keep_a_row_that_says_so(tmp_path: Path) -> None:
    report = tmp_path / "crud.json"
    run = memprobe("compare", "5", "--scenario", "crud", "--frameworks", "bottle,japronto", "--no-save",
                   "--json", str(report), "-q")
    rows = {r["framework"]: r for r in json.loads(report.read_text())["results"]}
    assert rows["bottle"]["status"] == "not-applicable" and "CRUD" in rows["bottle"]["reason"]
    assert rows["japronto"]["status"] == "unavailable"
    assert run.returncode == 4  # nothing could run


def test_the_echo_scenario_posts_json_to_every_named_framework(tmp_path: Path) -> None:
    names = [n for n in ("bottle", "tornado") if catalog.get(n).installed()]
    if not names:
        pytest.skip("neither bottle nor tornado is installed")
    report = tmp_path / "echo.json"
    run = memprobe("compare", "50", "5", "--scenario", "echo", "--frameworks", ",".join(names),
                   "--settle", "0.2", "--no-save", "--json", str(report), "-q")
    assert run.returncode == 0, run.stderr
    for row in json.loads(report.read_text())["results"]:
        [step] = row["steps"]
        assert step["method"] == "POST" and step["requests"]["status_counts"] == {"200": 50}
