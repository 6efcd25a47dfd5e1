"""Targets, bad input, suppressions, Flask detection, the JSON contract and the exit codes."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from memprobe.check import check
from memprobe.cli import main
from memprobe.errors import TargetError, UsageError
from memprobe.render import render
from tests.conftest import run_cli

LEAKY = """\
from flask import Flask, request

app = Flask(__name__)
SEEN = []


@app.route("/")
def index():
    SEEN.append(request.path){comment}
    return "ok"
"""


def _write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def _rules(result) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    return [(f.rule, f.line) for f in result.findings]


def test_a_path_that_does_not_exist_is_a_target_error_as_for_hunt(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="no such file or directory"):
        check(str(tmp_path / "missing"))


def test_cli_reports_a_missing_path_on_one_line_and_exits_3(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path / "missing")]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file or directory" in err


def test_a_syntax_error_is_reported_with_its_line_and_other_files_are_still_checked(tmp_path: Path) -> None:
    _write(tmp_path, "broken.py", "x = 1\ndef f(:\n    pass\n")
    _write(tmp_path, "app.py", LEAKY.format(comment=""))
    result = check(str(tmp_path))
    assert [(Path(e.file).name, e.line) for e in result.errors] == [("broken.py", 2)]
    assert "syntax error" in result.errors[0].message
    assert _rules(result) == [("MP101", 9)]
    assert result.failed


def test_a_file_with_only_a_syntax_error_fails_the_gate(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.py", "def f(:\n")
    assert main(["check", str(path), "-q"]) == 1


def test_a_project_without_flask_says_so_and_still_runs_the_generic_rules(tmp_path: Path) -> None:
    _write(tmp_path, "lib.py", """\
        import functools
        import pickle

        MODEL = pickle.load(open("model.pkl", "rb"))


        class Book:
            @functools.lru_cache(maxsize=None)
            def price(self, sku):
                return sku
        """)
    result = check(str(tmp_path))
    assert not result.flask_detected
    assert sorted(_rules(result)) == [("MP107", 4), ("MP112", 8)]
    flask_only = {c.rule: c.status for c in result.checklist if c.rule in ("MP104", "MP105", "MP110")}
    assert set(flask_only.values()) == {"n/a"}
    assert "no Flask found" in render(result, "text")


def test_a_comment_naming_the_rule_suppresses_it_on_that_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "app.py", LEAKY.format(comment="  # memprobe: ignore[MP101]"))
    result = check(str(path))
    assert result.findings == [] and result.suppressed == 1


def test_a_bare_ignore_comment_suppresses_every_rule_and_a_slug_works_too(tmp_path: Path) -> None:
    assert check(str(_write(tmp_path, "a.py", LEAKY.format(comment="  # memprobe: ignore")))).findings == []
    assert check(str(_write(tmp_path, "b.py", LEAKY.format(comment="  # memprobe: ignore[global-growth]")))).findings == []


def test_a_comment_naming_another_rule_does_not_suppress(tmp_path: Path) -> None:
    path = _write(tmp_path, "app.py", LEAKY.format(comment="  # memprobe: ignore[MP108]"))
    assert _rules(check(str(path))) == [("MP101", 9)]


def test_ignore_option_switches_a_rule_off_by_id_or_slug(tmp_path: Path) -> None:
    path = _write(tmp_path, "app.py", LEAKY.format(comment=""))
    for names in (["MP101"], ["mp110,global-growth"]):
        result = check(str(path), ignore=names)
        assert result.findings == []
        assert next(c for c in result.checklist if c.rule == "MP101").status == "ignored"


def test_an_unknown_rule_name_is_a_usage_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "app.py", LEAKY.format(comment=""))
    with pytest.raises(UsageError, match="unknown rule"):
        check(str(path), ignore=["MP999"])


def test_setup_cfg_section_above_the_checked_path_switches_rules_off(tmp_path: Path) -> None:
    _write(tmp_path, "setup.cfg", "[memprobe:check]\nignore = MP110, global-growth\n")
    path = _write(tmp_path, "src/app/views.py", LEAKY.format(comment=""))
    result = check(str(path))
    assert result.findings == [] and result.ignored_rules == ["MP110", "MP101"]


def test_a_directory_skips_virtualenvs_build_output_and_tests(tmp_path: Path) -> None:
    _write(tmp_path, "app.py", "x = 1\n")
    for skipped in ("venv/lib/x.py", ".venv/y.py", "build/lib/z.py", "tests/test_app.py",
                    "site-packages/flask/app.py", "test_top.py"):
        _write(tmp_path, skipped, LEAKY.format(comment=""))
    result = check(str(tmp_path))
    assert [Path(f).name for f in result.files] == ["app.py"]
    assert len(check(str(tmp_path), include_tests=True).files) == 3


def test_module_colon_attr_finds_the_module_on_the_path_without_importing_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "shop/__init__.py", "")
    _write(tmp_path, "shop/views.py", LEAKY.format(comment=""))
    _write(tmp_path, "shop/models.py", "raise SystemExit('imported!')\n")
    monkeypatch.chdir(tmp_path)
    result = check("shop.views:app")
    assert sorted(Path(f).name for f in result.files) == ["__init__.py", "models.py", "views.py"]
    assert _rules(result) == [("MP101", 9)]


def test_an_unknown_module_is_a_target_error_as_for_hunt(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TargetError, match="cannot find module 'no_such_module_here'"):
        check("no_such_module_here:app")
    with pytest.raises(TargetError, match="no such file, directory or module: 'no_such_module_here'"):
        check("no_such_module_here")


def test_a_malformed_spec_is_a_usage_error_as_for_hunt(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="a factory takes literal arguments only"):
        check("app.py:create_app(config)")


def test_json_has_the_contract_keys_and_cli_exits_1_on_a_failed_item(tmp_path: Path) -> None:
    path = _write(tmp_path, "app.py", LEAKY.format(comment=""))
    out = tmp_path / "check.json"
    assert main(["check", str(path), "--json", str(out), "-q"]) == 1
    data = json.loads(out.read_text())
    finding = data["findings"][0]
    assert {k: finding[k] for k in ("rule", "severity", "line", "title")} == {
        "rule": "MP101", "severity": "fail", "line": 9,
        "title": "Module-level container written from a request handler"}
    assert finding["file"].endswith("app.py") and finding["advice"]
    assert {"rule": "MP101", "status": "fail"}.items() <= data["checklist"][0].items()
    assert {c["status"] for c in data["checklist"] if c["rule"].startswith("MP9")} == {"info"}
    assert data["passed"] is False and data["flask_detected"] is True


def test_warnings_pass_the_gate_unless_strict(tmp_path: Path) -> None:
    path = _write(tmp_path, "app.py", """\
        from flask import Flask

        app = Flask(__name__)
        app.run(debug=True)
        """)
    assert main(["check", str(path), "-q"]) == 0
    assert main(["check", str(path), "-q", "--strict"]) == 1


def test_markdown_is_a_pull_request_comment_with_the_checklist_and_the_fix(tmp_path: Path) -> None:
    path = _write(tmp_path, "app.py", LEAKY.format(comment=""))
    md = tmp_path / "comment.md"
    main(["check", str(path), "--md", str(md), "-q"])
    text = md.read_text()
    assert text.startswith("## ❌ memprobe check: 1 failed")
    assert "| ❌ | MP101 |" in text and "| ✅ | MP102 |" in text
    assert "app.py:9" in text and "**Fix:**" in text


def test_text_is_plain_without_a_terminal_and_names_file_line_why_and_fix(tmp_path: Path) -> None:
    result = check(str(_write(tmp_path, "app.py", LEAKY.format(comment=""))))
    text = render(result, "text", color=False, width=200)
    assert "\x1b[" not in text
    assert "app.py:9" in text and "why:" in text and "fix:" in text and "FAILED: 1 failed" in text
    assert "\x1b[" in render(result, "text", color=True, width=200)


def test_the_per_file_cache_stays_bounded_across_many_edits(tmp_path: Path) -> None:
    """A long-lived flake8 or editor process checks a file again after every save: each save is
    a new cache key, and only the RESULTS_CACHED most recently used results are kept."""
    from memprobe.check import engine

    engine._RESULTS.clear()
    app = tmp_path / "app.py"
    first = tmp_path / "first.py"
    first.write_text(LEAKY.format(comment=""))
    kept = engine._file_result(str(first), None)[0]
    assert [f.rule for f in kept.findings] == ["MP101"]
    for edit in range(engine.RESULTS_CACHED + 40):
        app.write_text(LEAKY.format(comment="") + "\n" * edit)
        assert [f.rule for f in engine.check_file(str(app))] == ["MP101"]
        engine.check_file(str(first))  # used at every edit: the least recently used go first
        assert len(engine._RESULTS) <= engine.RESULTS_CACHED
    assert len(engine._RESULTS) == engine.RESULTS_CACHED
    assert engine._file_result(str(first), None)[0] is kept  # never evicted, never recomputed


def test_check_files_skips_the_test_files_it_is_given_unless_include_tests(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pre-commit hands the hook every changed file: test modules among them are checked only
    with --include-tests, as a directory's are."""
    leaky = ("from flask import Flask, request\n\napp = Flask(__name__)\nSEEN = []\n\n\n@app.route('/')\n"
             "def index():\n    SEEN.append(request.path)\n    return 'ok'\n")
    (tmp_path / "shop" / "tests").mkdir(parents=True)
    for name in ("shop/__init__.py", "shop/tests/__init__.py"):
        (tmp_path / name).write_text("")
    for name in ("shop/views.py", "shop/tests/app_for_tests.py", "test_top.py", "shop/conftest.py"):
        (tmp_path / name).write_text(leaky)
    monkeypatch.chdir(tmp_path)
    given = ["shop/views.py", "shop/tests/app_for_tests.py", "test_top.py", "shop/conftest.py"]
    code, out, _err = run_cli("check", "--files", "--format", "lines", *given)
    assert code == 1 and [line.split(":")[0] for line in out.splitlines()[:-1]] == ["shop/views.py"]
    code, out, _err = run_cli("check", "--files", "--include-tests", "--format", "lines", *given)
    assert code == 1
    assert sorted(line.split(":")[0] for line in out.splitlines()[:-1]) == sorted(given)
