"""The pre-commit hook memprobe ships (.pre-commit-hooks.yaml, id memprobe-check), run as a user
runs it: ``pre-commit try-repo`` on a fixture repository, which builds the hook's environment
by pip-installing memprobe from a git repository.

try-repo clones committed state, so the hook's repository is a fresh commit of this working
tree (what git tracks, plus new files it does not ignore); PRE_COMMIT_HOME is a temporary
folder, so no environment is left in ~/.cache.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("pre_commit")
if shutil.which("git") is None:
    pytest.skip("git is not installed", allow_module_level=True)

REPO = Path(__file__).resolve().parent.parent
GIT = ["git", "-c", "user.name=memprobe tests", "-c", "user.email=tests@memprobe.invalid", "-c", "commit.gpgsign=false"]


def git_repo(path: Path, files: dict[str, str]) -> Path:
    """A git repository at ``path`` holding ``files`` (name -> text) and what is there, committed."""
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    subprocess.run([*GIT, "init", "-q"], cwd=path, check=True)
    subprocess.run([*GIT, "add", "-A"], cwd=path, check=True)
    subprocess.run([*GIT, "commit", "-q", "-m", "fixture"], cwd=path, check=True)
    return path


@pytest.fixture(scope="module")
def hook_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """(the hook's repository: this working tree committed, the environment pre-commit runs in)."""
    base = tmp_path_factory.mktemp("precommit")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    hook_repo = base / "memprobe"
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (hook_repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, hook_repo / name)
    git_repo(hook_repo, {})
    env = {**os.environ, "PRE_COMMIT_HOME": str(base / "home"), "PRE_COMMIT_COLOR": "never"}
    env.pop("VIRTUAL_ENV", None)
    yield hook_repo, env
    shutil.rmtree(base, ignore_errors=True)


def try_repo(hook: tuple[Path, dict[str, str]], project: Path) -> subprocess.CompletedProcess[str]:
    hook_repo, env = hook
    return subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(hook_repo), "memprobe-check",
                           "--all-files"], cwd=project, env=env, capture_output=True, text=True, timeout=540)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_hook_passes_a_clean_app_and_fails_a_leaky_one(hook_home: tuple[Path, dict[str, str]],
                                                            tmp_path: Path) -> None:
    clean = git_repo(tmp_path / "clean", {"app.py": (REPO / "examples" / "clean_flask" / "app.py").read_text(),
                                          "README.md": "a clean app\n"})
    leaky = git_repo(tmp_path / "leaky", {"app.py": (REPO / "examples" / "leaky_flask" / "app.py").read_text()})

    passed = try_repo(hook_home, clean)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "Passed" in passed.stdout

    failed = try_repo(hook_home, leaky)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "Failed" in failed.stdout
    findings = [line for line in failed.stdout.splitlines() if line.startswith("app.py:")]
    assert [line.split()[1] for line in findings] == ["MP101", "MP101", "MP102", "MP108"]
    assert "memprobe check: FAILED: 4 failed" in failed.stdout


def test_the_hook_is_declared_for_python_files_with_static_rules_only() -> None:
    import yaml  # pre-commit depends on PyYAML

    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    hook = next(h for h in hooks if h["id"] == "memprobe-check")
    assert hook["language"] == "python"
    assert hook["types"] == ["python"]
    assert hook["entry"].startswith("memprobe check --files")
    assert "--run" not in hook["entry"]


def test_check_files_reports_only_what_is_in_the_files_given(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    pkg = tmp_path / "shop"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "store.py").write_text("SEEN = []\n\n\ndef remember(item):\n    SEEN.append(item)\n")
    (pkg / "views.py").write_text("from flask import Flask, request\n\nfrom shop.store import remember\n\n"
                                  "app = Flask(__name__)\n\n\n@app.route('/')\ndef index():\n"
                                  "    remember(request.path)\n    return 'ok'\n")
    code, out, _err = run_cli("check", "--files", "--format", "lines", str(pkg / "views.py"))
    assert (code, out.splitlines()[0]) == (0, "memprobe check: passed: 12 passed")
    code, out, _err = run_cli("check", "--files", "--format", "lines", str(pkg / "views.py"), str(pkg / "store.py"))
    assert code == 1
    assert [line.split()[1] for line in out.splitlines()[:-1]] == ["MP101"]


def test_check_files_sees_the_packages_tests_only_with_include_tests(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    pkg = tmp_path / "shop"
    (pkg / "tests").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "tests" / "__init__.py").write_text("")
    (pkg / "store.py").write_text("SEEN = []\n\n\ndef remember(item):\n    SEEN.append(item)\n")
    # Only a test calls remember() per request: without the tests, store.py is not per-request code.
    (pkg / "tests" / "app_for_tests.py").write_text(
        "from flask import Flask, request\n\nfrom shop.store import remember\n\n"
        "app = Flask(__name__)\n\n\n@app.route('/')\ndef index():\n"
        "    remember(request.path)\n    return 'ok'\n")
    code, out, _err = run_cli("check", "--files", "--format", "lines", str(pkg / "store.py"))
    assert code == 0, out
    code, out, _err = run_cli("check", "--files", "--include-tests", "--format", "lines", str(pkg / "store.py"))
    assert code == 1 and [line.split()[1] for line in out.splitlines()[:-1]] == ["MP101"]


def test_check_takes_several_targets_only_as_files(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    (tmp_path / "a.py").write_text("")
    code, _out, err = run_cli("check", str(tmp_path / "a.py"), str(tmp_path / "a.py"))
    assert code == 2 and "--files" in err
    code, _out, err = run_cli("check", "--files", str(tmp_path))
    assert code == 2 and "is not one" in err
