"""Every JSON memprobe writes is a file ``memprobe report`` renders again: the measuring commands'
(compare, hunt, check, hammer: here from saved runs, and in test_json_contract from real ones), the
side-by-side view ``report A.json B.json -o diff.json`` writes, the pytest plugin's session file
(``--memprobe-json``) and its baseline (``--memprobe-update-baseline``), from a real pytest run.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from memprobe.results.envelope import KEYS, SCHEMA
from tests.test_json_contract import PLUGIN_APP

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "results"
COMPARABLE = ("compare", "hunt", "check", "hammer")


def report(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``memprobe report ...`` as a user runs it."""
    run = subprocess.run([sys.executable, "-m", "memprobe", "report", *map(str, args)], capture_output=True,
                         text=True, timeout=120, cwd=REPO)
    assert "Traceback" not in run.stderr, run.stderr
    return run


def renders_in_every_format(path: Path, tmp_path: Path) -> str:
    """The text report of ``path``, after checking that its Markdown and HTML are written too."""
    for suffix in (".md", ".html"):
        out = tmp_path / f"{path.stem}{suffix}"
        run = report(path, "-o", out)
        assert run.returncode == 0, run.stderr
        assert out.read_text(encoding="utf-8").strip()
    run = report(path)
    assert run.returncode == 0, run.stderr
    return run.stdout


def side_by_side(tmp_path: Path, first: str, second: str) -> tuple[Path, Path, Path]:
    """Two saved runs (a.json, b.json: copies of fixtures) and the diff.json report writes of them."""
    a, b, saved = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "diff.json"
    shutil.copy(FIXTURES / f"{first}.json", a)
    shutil.copy(FIXTURES / f"{second}.json", b)
    run = report(a, b, "-o", saved)
    assert run.returncode == 0, run.stderr
    return a, b, saved


@pytest.mark.parametrize("kind", COMPARABLE)
def test_a_saved_side_by_side_view_renders_as_the_two_runs_did(kind: str, tmp_path: Path) -> None:
    a, b, saved = side_by_side(tmp_path, kind, kind)

    again = renders_in_every_format(saved, tmp_path)

    assert again == report(a, b).stdout
    assert again.startswith(f"memprobe {kind}: a.json → b.json")
    assert "what changed: nothing beyond noise" in again


def test_the_side_by_side_json_carries_the_envelope_and_keeps_its_keys(tmp_path: Path) -> None:
    _, _, saved = side_by_side(tmp_path, "hunt", "hunt_workers")

    data = json.loads(saved.read_text(encoding="utf-8"))

    assert list(data)[:len(KEYS)] == list(KEYS)
    assert data["result"] == "diff" and data["schema"] == SCHEMA and data["machine"].get("python")
    assert {"of", "labels", "sections", "a", "b"} <= set(data)
    assert data["of"] == "hunt" and data["labels"] == ["a.json", "b.json"]
    assert data["a"]["result"] == data["b"]["result"] == "hunt"


def test_a_side_by_side_json_written_before_the_envelope_still_renders(tmp_path: Path) -> None:
    _, _, saved = side_by_side(tmp_path, "check", "check")
    data = json.loads(saved.read_text(encoding="utf-8"))
    old = tmp_path / "old.json"
    old.write_text(json.dumps({k: data[k] for k in ("result", "of", "labels", "sections", "a", "b")}))

    run = report(old)

    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("memprobe check: a.json → b.json")


def test_a_side_by_side_json_with_a_run_of_no_known_kind_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "diff.json"
    path.write_text(json.dumps({"result": "diff", "labels": ["a", "b"], "a": {"result": "profile"}, "b": {}}))

    run = report(path)

    assert run.returncode == 2
    assert "not a diff result this memprobe can read" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


SMALL = "requests=200, rounds=3, warmup=50, in_process=True, sensitivity=256"
TESTS = f'''
import pytest

@pytest.mark.memprobe_limit("app.py:app", route="/", {SMALL}, per_request="16 B")
def test_index():
    pass

@pytest.mark.memprobe_limit("app.py:app", route="/leak", {SMALL})
def test_leak():
    pass

def test_with_the_fixture(memprobe):
    memprobe.hunt("app.py:app", routes=["/leak"], {SMALL})
'''


@pytest.fixture(scope="module")
def plugin_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A real pytest session's JSON file and baseline, and what its terminal summary printed."""
    where = tmp_path_factory.mktemp("session")
    (where / "app.py").write_text(PLUGIN_APP)
    (where / "test_mem.py").write_text(TESTS)
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:randomly", "-p", "no:cacheprovider",
                          "--memprobe-json", "memprobe.json", "--memprobe-baseline", "baseline.json",
                          "--memprobe-update-baseline", "test_mem.py"],
                         capture_output=True, text=True, timeout=240, cwd=where)
    assert "1 failed, 2 passed" in run.stdout, run.stdout + run.stderr
    summary = run.stdout.split("= memprobe =", 1)[1].split("\n", 1)[1]
    return where / "memprobe.json", where / "baseline.json", summary


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_plugins_session_file_renders_the_summary_the_terminal_showed(
        plugin_files: tuple[Path, Path, str], tmp_path: Path) -> None:
    session, _, summary = plugin_files

    text = renders_in_every_format(session, tmp_path)

    assert text.startswith("memprobe pytest session: 3 measurements, 1 failed; started ")
    table = text.split("\n\n")[1].splitlines()
    assert table == summary.split("\nmemprobe: ", 1)[0].splitlines()
    assert len(table) == 4 and table[0].split()[:3] == ["test", "route", "verdict"]
    assert any(line.startswith("test_mem.py::test_leak: ") and "leaks" in line for line in text.splitlines())


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_plugins_baseline_renders_a_line_a_stored_route(plugin_files: tuple[Path, Path, str],
                                                             tmp_path: Path) -> None:
    _, baseline, _ = plugin_files

    text = renders_in_every_format(baseline, tmp_path)

    assert text.startswith("memprobe pytest baseline: 3 tests, 3 routes (written by memprobe ")
    lines = text.splitlines()
    assert lines[2].split() == ["test", "route", "compared", "traced", "B/req", "USS", "B/req", "requests"]
    leak = next(line for line in lines if line.startswith("test_mem.py::test_leak "))
    assert leak.split()[1:3] == ["/leak", "traced"]
    assert leak.split()[3].startswith("+")
