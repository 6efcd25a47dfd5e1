"""SARIF 2.1.0 of memprobe check, valid against the OASIS schema (tests/fixtures/SOURCES.md says
where the schema comes from), with rules, levels and locations code scanning shows."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from memprobe.check import check
from memprobe.render import render
from tests.conftest import run_cli

jsonschema = pytest.importorskip("jsonschema")

REPO = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((REPO / "tests" / "fixtures" / "sarif-schema-2.1.0.json").read_text())
LEAKY = REPO / "examples" / "leaky_flask"


def valid(log: dict) -> dict:
    """``log``, once the SARIF 2.1.0 schema has accepted it (every error listed when not)."""
    validator = jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(log)]
    assert errors == [], "\n".join(errors)
    return log


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from the repository's root, as CI does: paths come out relative to it."""
    monkeypatch.chdir(REPO)


def test_the_leaky_examples_sarif_is_valid_with_a_result_per_finding(in_repo: None, tmp_path: Path) -> None:
    code, _out, _err = run_cli("check", "examples/leaky_flask", "--quiet", "--sarif", str(tmp_path / "c.sarif"))
    assert code == 1
    log = valid(json.loads((tmp_path / "c.sarif").read_text()))
    assert log["version"] == "2.1.0"
    (run,) = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert run["tool"]["driver"]["name"] == "memprobe"
    findings = check("examples/leaky_flask").findings
    assert [(r["ruleId"], r["locations"][0]["physicalLocation"]["region"]["startLine"]) for r in run["results"]] \
        == [(f.rule, f.line) for f in findings]
    for result, finding in zip(run["results"], findings):
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] == "error"  # fail
        assert result["message"]["text"] == finding.message
        where = result["locations"][0]["physicalLocation"]
        assert where["artifactLocation"] == {"uri": "examples/leaky_flask/app.py", "uriBaseId": "%SRCROOT%"}
        assert where["region"]["startColumn"] == finding.col + 1
        assert where["region"]["snippet"]["text"] == finding.snippet


def test_every_rule_has_descriptions_help_and_its_default_level() -> None:
    log = valid(json.loads(render(check(str(LEAKY)), "sarif")))
    rules = {r["id"]: r for r in log["runs"][0]["tool"]["driver"]["rules"]}
    assert {f"MP1{n:02d}" for n in range(1, 13)} | {"MP201", "MP202"} <= set(rules)
    mp101, mp107 = rules["MP101"], rules["MP107"]
    assert mp101["name"] == "global-growth"
    assert mp101["shortDescription"]["text"] == "Module-level container written from a request handler"
    assert "worker process" in mp101["fullDescription"]["text"]
    assert "deque(maxlen=N)" in mp101["help"]["text"] and "docs/check-rules.md" in mp101["help"]["text"]
    assert (mp101["defaultConfiguration"]["level"], mp107["defaultConfiguration"]["level"]) == ("error", "warning")
    assert rules["MP202"]["defaultConfiguration"]["level"] == "note"


def test_a_warning_is_a_sarif_warning(in_repo: None) -> None:
    log = valid(json.loads(render(check("tests/check_corpus/MP107_bad.py"), "sarif")))
    assert {r["level"] for r in log["runs"][0]["results"]} == {"warning"}


def test_a_file_that_cannot_be_parsed_is_a_notification_of_the_run(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("def (:\n")
    log = valid(json.loads(render(check(str(tmp_path)), "sarif")))
    (invocation,) = log["runs"][0]["invocations"]
    (note,) = invocation["toolExecutionNotifications"]
    assert note["level"] == "error" and "syntax error" in note["message"]["text"]
    assert note["locations"][0]["physicalLocation"]["region"]["startLine"] == 1


def test_report_turns_a_saved_check_into_the_same_sarif(in_repo: None, tmp_path: Path) -> None:
    live, saved, again = tmp_path / "live.sarif", tmp_path / "check.json", tmp_path / "again.sarif"
    run_cli("check", "examples/leaky_flask", "--quiet", "--json", str(saved), "--sarif", str(live))
    code, _out, _err = run_cli("report", str(saved), "-o", str(again))
    assert code == 0
    assert again.read_text() == live.read_text()


def test_only_a_check_result_has_a_sarif_form(tmp_path: Path) -> None:
    code, _out, err = run_cli("report", str(REPO / "tests" / "fixtures" / "results" / "hunt.json"),
                              "-o", str(tmp_path / "hunt.sarif"))
    assert code == 2 and "no sarif renderer for hunt results" in err
