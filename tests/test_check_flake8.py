"""memprobe check's static rules inside flake8: the same findings, flake8's own switches.

flake8 runs as a user runs it (a subprocess, the plugin found through its entry point). The
check corpus is a set of separate apps, one a file or folder: `memprobe check ENTRY` on each
is what flake8, file by file, must find (a single `memprobe check tests/check_corpus` would
analyse them as one app, where one entry's teardown closes another's connection).
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from memprobe.check import check

pytest.importorskip("flake8")

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "check_corpus"

LEAKY = textwrap.dedent("""\
    from flask import Flask, request

    app = Flask(__name__)
    SEEN = []


    @app.route("/")
    def index():
        SEEN.append(request.args.get("q"))
        return "ok"
""")


def flake8(*args: str, cwd: Path = REPO, stdin: str | None = None) -> tuple[int, list[str]]:
    """flake8 ARGS... in cwd: its exit code and output lines."""
    proc = subprocess.run([sys.executable, "-m", "flake8", "--no-show-source", *args], cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout.splitlines()


def found(lines: list[str], base: Path) -> set[tuple[str, int, str]]:
    """(absolute file, line, code) of every MP finding in flake8's output."""
    out = set()
    for line in lines:
        path, number, _col, message = line.split(":", 3)
        code = message.split()[0]
        if code.startswith("MP"):
            out.add((str((base / path).resolve()), int(number), code))
    return out


def test_flake8_select_mp_finds_exactly_what_check_finds_in_the_corpus() -> None:
    entries = sorted(p for p in CORPUS.iterdir() if p.suffix == ".py" or p.is_dir())
    expected = {(str(Path(f.file).resolve()), f.line, f.rule) for entry in entries
                for f in check(str(entry)).findings}
    assert len(expected) >= 30
    code, lines = flake8("--select", "MP", str(CORPUS))
    assert code == 1
    assert found(lines, REPO) == expected


def test_flake8_gives_checks_message_at_its_line_and_column(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "app.py").write_text(LEAKY)
    monkeypatch.chdir(tmp_path)  # check shows paths from the current directory, as flake8 does
    finding = check("app.py").findings[0]
    _code, lines = flake8("--select", "MP", "app.py", cwd=tmp_path)
    assert lines == [f"app.py:9:{finding.col + 1}: MP101 {finding.message}"]


def test_without_select_the_mp_rules_run_beside_flake8s_own(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(LEAKY + "import os\n")
    _code, lines = flake8("app.py", cwd=tmp_path)
    codes = {line.split(": ", 1)[1].split()[0] for line in lines}
    assert {"MP101", "F401"} <= codes


@pytest.mark.parametrize("comment", ["# noqa", "# noqa: MP101", "# noqa:MP101,E501", "# memprobe: ignore[MP101]",
                                     "# memprobe: ignore[global-growth]"])
def test_a_suppression_comment_on_the_line_silences_the_finding(tmp_path: Path, comment: str) -> None:
    (tmp_path / "app.py").write_text(LEAKY.replace('get("q"))', f'get("q"))  {comment}'))
    assert flake8("--select", "MP", "app.py", cwd=tmp_path) == (0, [])


def test_noqa_for_another_code_leaves_the_finding(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(LEAKY.replace('get("q"))', 'get("q"))  # noqa: E501'))
    _code, lines = flake8("--select", "MP", "app.py", cwd=tmp_path)
    assert [line.split(": ", 1)[1].split()[0] for line in lines] == ["MP101"]


def test_extend_ignore_and_setup_cfg_switch_a_rule_off(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(LEAKY)
    assert flake8("--extend-ignore", "MP101", "app.py", cwd=tmp_path) == (0, [])
    (tmp_path / "setup.cfg").write_text("[memprobe:check]\nignore = global-growth\n")
    assert flake8("--select", "MP", "app.py", cwd=tmp_path) == (0, [])


def test_an_unknown_rule_in_setup_cfg_is_one_finding_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(LEAKY)
    (tmp_path / "setup.cfg").write_text("[memprobe:check]\nignore = no-such-rule\n")
    code, lines = flake8("--select", "MP", "app.py", cwd=tmp_path)
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith("app.py:1:1: MP000 ") and "'no-such-rule'" in lines[0]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_an_unknown_rule_in_setup_cfg_is_one_line_for_the_whole_run(tmp_path: Path, jobs: str) -> None:
    """Not one a file: a project of 200 files would print the same complaint 200 times."""
    (tmp_path / "shop").mkdir()
    for name in ("shop/__init__.py", "shop/views.py", "shop/store.py", "app.py", "wsgi.py"):
        (tmp_path / name).write_text(LEAKY)
    (tmp_path / "setup.cfg").write_text("[memprobe:check]\nignore = no-such-rule\n")
    code, lines = flake8("-j", jobs, "--select", "MP", ".", cwd=tmp_path)
    assert code == 1
    assert len(lines) == 1 and ":1:1: MP000 memprobe check cannot run: " in lines[0] and "'no-such-rule'" in lines[0]


def test_a_helper_in_another_module_of_the_package_is_seen_as_per_request(tmp_path: Path) -> None:
    pkg = tmp_path / "shop"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "store.py").write_text("SEEN = []\n\n\ndef remember(item):\n    SEEN.append(item)\n")
    (pkg / "views.py").write_text(textwrap.dedent("""\
        from flask import Flask, request

        from shop.store import remember

        app = Flask(__name__)


        @app.route("/")
        def index():
            remember(request.path)
            return "ok"
    """))
    _code, lines = flake8("--select", "MP", "shop/store.py", cwd=tmp_path)
    assert [line.split(": ", 1)[1].split()[0] for line in lines] == ["MP101"]
    assert lines[0].startswith("shop/store.py:5:")


def test_an_unsaved_buffer_on_stdin_is_checked_as_given(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("")
    _code, lines = flake8("--select", "MP", "--stdin-display-name", "app.py", "-", cwd=tmp_path, stdin=LEAKY)
    assert [line.split(":")[:2] for line in lines] == [["app.py", "9"]]


def test_importing_the_plugin_loads_nothing_heavy() -> None:
    code = ("import sys, memprobe.check.flake8; "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith(('memprobe', 'psutil', 'rich')))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["memprobe", "memprobe.check", "memprobe.check.flake8"]
