"""The framework catalog: names, selection, versions, scripts, and the ``frameworks`` command."""
from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from memprobe.cli import main
from memprobe.compare import frameworks as catalog
from memprobe.errors import EnvironmentProblem, UsageError

MEASURABLE = [fw for fw in catalog.all_frameworks() if fw.unavailable is None]


def names(frameworks: list[catalog.Framework]) -> list[str]:
    return [fw.name for fw in frameworks]


def test_select_none_gives_the_five_defaults_in_the_seed_order() -> None:
    assert names(catalog.select(None)) == ["bottle", "cherrypy", "flask", "tornado", "webpy"]
    assert names(catalog.select("")) == names(catalog.select(None))


def test_the_default_flag_marks_exactly_the_default_five() -> None:
    assert {fw.name for fw in catalog.all_frameworks() if fw.default} == set(catalog.DEFAULT_NAMES)


def test_select_all_gives_every_framework() -> None:
    assert names(catalog.select("all")) == names(catalog.all_frameworks())
    assert names(catalog.select("ALL")) == names(catalog.all_frameworks())


def test_select_keeps_the_given_order_and_ignores_case_and_spaces() -> None:
    assert names(catalog.select("Tornado, FLASK,bottle")) == ["tornado", "flask", "bottle"]


def test_select_names_each_framework_once() -> None:
    assert names(catalog.select("flask,bottle,flask")) == ["flask", "bottle"]


@pytest.mark.parametrize("spelling", ["web.py", "webpy", "Web.py", "WEBPY"])
def test_web_py_is_accepted_with_and_without_its_dot(spelling: str) -> None:
    assert names(catalog.select(spelling)) == ["webpy"]
    assert catalog.get(spelling).name == "webpy"


def test_an_unknown_name_is_a_usage_error_that_lists_the_known_ones() -> None:
    with pytest.raises(UsageError) as info:
        catalog.select("flask,nosuch")
    message = str(info.value)
    assert "unknown framework 'nosuch'" in message
    for fw in catalog.all_frameworks():
        assert fw.name in message


def test_get_unknown_name_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown framework 'x'; known: bottle, "):
        catalog.get("x")


def test_names_are_lower_case_and_unique() -> None:
    all_names = names(catalog.all_frameworks())
    assert len(all_names) == len(set(all_names))
    assert all(name == name.lower() for name in all_names)


@pytest.mark.parametrize("fw", catalog.all_frameworks(), ids=lambda fw: fw.name)
def test_version_is_the_installed_distributions_version(fw: catalog.Framework) -> None:
    try:
        expected: str | None = importlib.metadata.version(fw.distribution)
    except importlib.metadata.PackageNotFoundError:
        expected = None
    assert fw.version() == expected


@pytest.mark.parametrize("fw", catalog.all_frameworks(), ids=lambda fw: fw.name)
def test_installed_means_no_module_is_missing(fw: catalog.Framework) -> None:
    assert fw.installed() == (fw.missing() == [])
    assert set(fw.missing()) <= set(fw.modules)


def test_a_module_that_does_not_exist_is_reported_missing() -> None:
    fake = catalog.Framework("nosuch", "No such", "nosuch-dist", ("memprobe_no_such_module",),
                             "nosuch", "none", False)
    assert fake.missing() == ["memprobe_no_such_module"]
    assert not fake.installed()
    assert fake.version() is None


def test_japronto_is_unavailable_and_says_why() -> None:
    japronto = catalog.get("japronto")
    assert japronto.unavailable is not None
    assert "Python" in japronto.unavailable and "wheels" in japronto.unavailable
    assert japronto.script is None
    assert not japronto.default
    with pytest.raises(EnvironmentProblem, match="Japronto cannot be measured"):
        japronto.command(8080)


@pytest.mark.parametrize("fw", MEASURABLE, ids=lambda fw: fw.name)
def test_every_measurable_framework_has_a_script(fw: catalog.Framework) -> None:
    assert fw.script is not None
    assert fw.script.is_file()
    assert fw.script.name == f"hello_{fw.name}.py"


def test_frameworks_dir_holds_the_scripts_and_their_shared_module() -> None:
    folder = catalog.frameworks_dir()
    assert (folder / "_common.py").is_file()
    assert sorted(p.name for p in folder.glob("hello_*.py")) == sorted(
        f"hello_{fw.name}.py" for fw in MEASURABLE
    )


@pytest.mark.parametrize("path", sorted(catalog.frameworks_dir().glob("*.py")), ids=lambda p: p.name)
def test_scripts_never_import_memprobe(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    assert not re.search(r"^\s*(import|from)\s+memprobe\b", source, re.MULTILINE)


def test_command_runs_the_script_with_port_and_host() -> None:
    flask = catalog.get("flask")
    assert flask.command(8123, python="/py") == [
        "/py", str(flask.script), "--port", "8123", "--host", "127.0.0.1"
    ]
    assert flask.command(8123, host="127.0.0.2", python="/py")[-1] == "127.0.0.2"


def outside_env() -> dict[str, str]:
    """The environment minus PYTHONPATH, so memprobe's checkout is not importable by accident."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


@pytest.mark.parametrize("fw", MEASURABLE, ids=lambda fw: fw.name)
def test_script_version_flag_prints_the_installed_version(fw: catalog.Framework,
                                                         tmp_path: Path) -> None:
    if not fw.installed():
        pytest.skip(f"{fw.name} is not installed: {fw.install_hint()}")
    done = subprocess.run(
        [sys.executable, str(fw.script), "--version"],
        cwd=tmp_path, env=outside_env(), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == fw.version()


def test_script_without_port_is_a_usage_error(tmp_path: Path) -> None:
    bottle = catalog.get("bottle")
    if not bottle.installed():
        pytest.skip("bottle is not installed")
    done = subprocess.run([sys.executable, str(bottle.script)], cwd=tmp_path, env=outside_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "--port is required" in done.stderr


def test_frameworks_command_lists_every_framework(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frameworks"]) == 0
    out = capsys.readouterr().out
    for fw in catalog.all_frameworks():
        assert fw.name in out
    assert "japronto: unavailable" in out


def test_frameworks_command_writes_json(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "out" / "frameworks.json"
    assert main(["frameworks", "--json", str(path)]) == 0
    rows = json.loads(path.read_text(encoding="utf-8"))
    assert [row["name"] for row in rows] == names(catalog.all_frameworks())
    by_name = {row["name"]: row for row in rows}
    for fw in catalog.all_frameworks():
        row = by_name[fw.name]
        assert row["installed"] == fw.installed()
        assert row["version"] == (fw.version() if fw.installed() else None)
        assert row["default"] == fw.default
        assert row["unavailable"] == fw.unavailable
        assert {"pip", "server", "keepalive", "echo", "script", "missing"} <= row.keys()


def test_each_default_hello_world_is_a_hunt_target_in_the_frameworks_folder() -> None:
    for fw in catalog.select(None):
        script, _, attr = fw.hello_target.partition(":")  # type: ignore[union-attr]
        assert (catalog.frameworks_dir() / script).is_file() and attr == fw.app_spec
    assert catalog.get("japronto").hello_target is None
