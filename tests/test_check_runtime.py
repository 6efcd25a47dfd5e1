"""``check --run``: hunt measurements tied to checklist items (fake hunt results, real checks)."""
from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from memprobe.check import check
from memprobe.check.runtime import attach, run_hunt
from memprobe.cli import main
from memprobe.errors import EnvironmentProblem

REPO = Path(__file__).resolve().parent.parent
APP = """\
import logging

from flask import Flask, request

app = Flask(__name__)
HISTORY = []
log = logging.getLogger("audit")


@app.get("/history")
def history():
    HISTORY.append(request.path)
    return "ok"


@app.get("/render")
def render():
    text = "x" * int(request.args.get("n", "1"))
    return text


@app.get("/audit")
def audit():
    log.addFilter(lambda r: True)
    return "ok"
"""


@dataclass
class FakeSite:
    file: str
    line: int
    bytes_per_request: float
    user: bool = True


@dataclass
class FakeHolder:
    description: str
    chain: list[str]
    entries_per_request: float = 1.0


@dataclass
class FakeRoute:
    route: str
    verdict: str
    traced: float
    sites: list[FakeSite] = field(default_factory=list)
    holders: list[FakeHolder] = field(default_factory=list)

    @property
    def bytes_per_request(self) -> dict[str, Any]:
        return {"traced": {"value": self.traced, "error": 1.0}, "uss": {"value": self.traced + 20, "error": 9.0}}


@dataclass
class FakeHunt:
    routes: list[FakeRoute]

    @property
    def verdict(self) -> str:
        return "leak" if any(r.verdict == "leak" for r in self.routes) else "clean"

    def summary(self) -> str:
        return f"{self.verdict}: fake"


@pytest.fixture
def app_file(tmp_path: Path) -> Path:
    path = tmp_path / "app.py"
    path.write_text(textwrap.dedent(APP))
    return path


def test_a_growing_global_gets_the_measured_bytes_per_request_from_its_holder(app_file: Path) -> None:
    result = check(str(app_file))
    hunt = FakeHunt([FakeRoute("/history", "leak", 36.0, holders=[
        FakeHolder("module app.py, global HISTORY (list, 2,000 entries)", ["module app.py", "global HISTORY"])])])
    attach(result, hunt)
    finding = next(f for f in result.findings if f.rule == "MP101")
    assert finding.evidence["route"] == "/history"
    assert finding.evidence["traced_bytes_per_request"] == 36.0
    assert "global HISTORY" in finding.evidence["holder"]
    assert next(c for c in result.checklist if c.rule == "MP101").note == "confirmed by measurement"


def test_an_allocation_site_on_a_findings_line_is_attached_to_it(app_file: Path) -> None:
    result = check(str(app_file))
    attach(result, FakeHunt([FakeRoute("/audit", "leak", 500.0, sites=[FakeSite(str(app_file), 24, 480.0)])]))
    finding = next(f for f in result.findings if f.rule == "MP108")
    assert finding.evidence["site"].endswith("app.py:24")
    assert finding.evidence["match"] == "line"
    assert not any(f.rule == "MP201" for f in result.findings)


def test_a_leak_nothing_static_explains_becomes_a_failed_runtime_item(app_file: Path) -> None:
    result = check(str(app_file), ignore=["MP101", "MP108"])
    attach(result, FakeHunt([FakeRoute("/render", "leak", 120.0, sites=[FakeSite(str(app_file), 18, 118.0)])]))
    runtime = [f for f in result.findings if f.rule == "MP201"]
    assert len(runtime) == 1
    assert runtime[0].line == 18 and runtime[0].severity.value == "fail"
    assert "route /render leaks" in runtime[0].message and "+120.0 B/request traced" in runtime[0].message
    assert next(c for c in result.checklist if c.rule == "MP201").status == "fail"
    assert result.failed


def test_bounded_growth_is_advice_and_a_clean_run_passes_the_runtime_items(app_file: Path) -> None:
    result = check(str(app_file), ignore=["MP101", "MP108"])
    attach(result, FakeHunt([FakeRoute("/render", "bounded", 3.0), FakeRoute("/history", "clean", 0.0)]))
    statuses = {c.rule: c.status for c in result.checklist}
    assert statuses["MP202"] == "info" and statuses["MP201"] == "pass"
    assert not result.failed
    assert result.runtime["routes"][1] == {"route": "/history", "verdict": "clean",
                                           "traced_bytes_per_request": 0.0, "uss_bytes_per_request": 20.0}


def test_a_warning_confirmed_by_a_leak_becomes_a_failure(tmp_path: Path) -> None:
    path = tmp_path / "app.py"
    path.write_text(textwrap.dedent("""\
        import requests
        from flask import Flask

        app = Flask(__name__)


        @app.get("/")
        def index():
            s = requests.Session()
            return "ok"
        """))
    result = check(str(path))
    assert [f.severity.value for f in result.findings] == ["warn"]
    attach(result, FakeHunt([FakeRoute("/", "leak", 900.0, sites=[FakeSite(str(path), 9, 900.0)])]))
    assert [f.severity.value for f in result.findings] == ["fail"]
    assert "confirmed" in result.findings[0].message


def test_run_without_hunt_installed_is_an_environment_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "memprobe.hunt", None)
    with pytest.raises(EnvironmentProblem, match="hunt is not available"):
        run_hunt("app.py:app")


def test_run_needs_an_app_not_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "app.py").write_text("x = 1\n")
    assert main(["check", str(tmp_path), "--run", "-q"]) == 2
    assert "file.py:app or module:app" in capsys.readouterr().err


@pytest.mark.slow
def test_run_on_the_leaky_example_ties_the_measured_leak_to_the_global(tmp_path: Path, no_orphans: None) -> None:
    leaky = REPO / "examples" / "leaky_flask" / "app.py"
    if not leaky.exists():
        pytest.skip("examples/leaky_flask is not there")
    out = tmp_path / "check.json"
    code = main(["check", f"{leaky}:app", "--run", "--route", "/history", "-n", "300", "--rounds", "3",
                 "--warmup", "50", "--json", str(out), "-q"])
    assert code == 1
    import json

    data = json.loads(out.read_text())
    history = next(f for f in data["findings"] if f["rule"] == "MP101" and f["line"] == 35)
    assert history["evidence"]["route"] == "/history" and history["evidence"]["verdict"] == "leak"
    assert history["evidence"]["traced_bytes_per_request"] > 0
    assert data["runtime"]["verdict"] == "leak"
