"""Every rule flags its bad example at the marked lines and leaves its good twin alone.

A corpus entry is ``tests/check_corpus/<ID>_bad.py`` (or a directory ``<ID>_bad/``) whose
flagged lines end with ``# expect: <ID>``, and ``<ID>_good...``, the idiomatic twin. More shapes
of one rule are pairs ``<ID>_bad_<shape>.py`` / ``<ID>_good_<shape>.py``.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from memprobe.check import check
from memprobe.check.rules import STATIC_RULES

CORPUS = Path(__file__).parent / "check_corpus"
REPO = Path(__file__).resolve().parent.parent
RULE_IDS = [r.id for r in STATIC_RULES]


def _entry(rule_id: str, kind: str) -> Path:
    for candidate in (CORPUS / f"{rule_id}_{kind}.py", CORPUS / f"{rule_id}_{kind}"):
        if candidate.exists():
            return candidate
    raise AssertionError(f"no {kind} example for {rule_id} in {CORPUS}")


def _expected(entry: Path) -> set[tuple[str, str, int]]:
    files = [entry] if entry.is_file() else sorted(entry.glob("*.py"))
    out = set()
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = re.search(r"# expect: (MP\d+)", line)
            if match:
                out.add((match.group(1), path.name, number))
    return out


def _found(entry: Path) -> set[tuple[str, str, int]]:
    return {(f.rule, Path(f.file).name, f.line) for f in check(str(entry)).findings}


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_bad_example_is_flagged_at_exactly_the_marked_lines(rule_id: str) -> None:
    entry = _entry(rule_id, "bad")
    expected = _expected(entry)
    assert expected, f"{entry} marks no line with '# expect: {rule_id}'"
    assert {e[0] for e in expected} == {rule_id}
    assert _found(entry) == expected


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_good_twin_gets_no_finding_at_all(rule_id: str) -> None:
    assert _found(_entry(rule_id, "good")) == set()


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_bad_example_fails_or_warns_with_the_rules_severity(rule_id: str) -> None:
    result = check(str(_entry(rule_id, "bad")))
    rule = next(r for r in STATIC_RULES if r.id == rule_id)
    item = next(c for c in result.checklist if c.rule == rule_id)
    assert item.status == rule.severity.value
    assert result.failed is (rule.severity.value == "fail")


def test_realistic_clean_flask_app_gets_no_warning() -> None:
    result = check(str(REPO / "examples" / "clean_flask_app"))
    assert result.flask_detected
    assert result.errors == []
    assert result.findings == []
    assert {c.status for c in result.checklist if not c.rule.startswith("MP9")} == {"pass"}
    assert len(result.files) >= 5


def test_clean_app_checked_through_its_entry_point_includes_the_package_it_imports() -> None:
    result = check(f"{REPO / 'examples' / 'clean_flask_app' / 'wsgi.py'}:app")
    assert any(f.endswith("db.py") for f in result.files)
    assert result.findings == []


def test_leaky_example_app_fails_with_one_finding_per_leaky_route() -> None:
    leaky = REPO / "examples" / "leaky_flask" / "app.py"
    if not leaky.exists():
        pytest.skip("examples/leaky_flask is not there")
    result = check(f"{leaky}:app")
    assert sorted(f.rule for f in result.findings) == ["MP101", "MP101", "MP102", "MP108"]
    assert result.failed


def test_every_rule_is_documented_with_a_bad_and_a_good_example() -> None:
    doc = (REPO / "docs" / "check-rules.md").read_text()
    from memprobe.check.rules import ALL_RULES

    for rule in ALL_RULES:
        assert f"## {rule.id}" in doc, f"{rule.id} has no section in docs/check-rules.md"
    for rule in STATIC_RULES:
        section = doc.split(f"## {rule.id}", 1)[1].split("\n## ", 1)[0]
        assert "Bad:" in section and "Good:" in section, f"{rule.id} lacks a bad or good example"


VARIANTS = sorted(p.name for p in CORPUS.glob("MP*_bad_*.py"))


@pytest.mark.parametrize("name", VARIANTS)
def test_every_shape_is_flagged_at_its_marked_lines_and_its_twin_is_not(name: str) -> None:
    bad = CORPUS / name
    good = CORPUS / name.replace("_bad_", "_good_")
    assert good.exists(), f"{bad.name} has no good twin {good.name}"
    expected = _expected(bad)
    assert expected and {e[0] for e in expected} == {name.split("_")[0]}
    assert _found(bad) == expected
    assert _found(good) == set()


def test_a_large_file_read_at_import_through_a_module_level_path_is_flagged_with_its_size(tmp_path: Path) -> None:
    (tmp_path / "catalog.json").write_text("[" + ",".join(['{"sku": "x"}'] * 100_000) + "]")
    (tmp_path / "app.py").write_text(
        "import json\nimport os\n\nHERE = os.path.dirname(__file__)\n"
        "CATALOG_PATH = os.path.join(HERE, 'catalog.json')\n"
        "with open(CATALOG_PATH) as fh:\n    CATALOG = json.load(fh)\n")
    findings = check(str(tmp_path / "app.py")).findings
    assert [(f.rule, f.line) for f in findings] == [("MP107", 7)]
    assert findings[0].message == "`catalog.json` (1.2 MiB) is read at import time"
