"""What a wheel carries: every package, and the hello-worlds as memprobe/_frameworks."""
from __future__ import annotations

import configparser

from tests.conftest import REPO


def test_setup_cfg_lists_every_package_directory() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "memprobe").rglob("__init__.py")}
    assert on_disk <= listed, f"add to setup.cfg [options] packages: {sorted(on_disk - listed)}"
    assert "memprobe._frameworks" in listed
    assert cfg["options"]["package_dir"].split() == ["memprobe._frameworks", "=", "frameworks"]


def test_every_data_file_of_the_package_is_in_package_data() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    globs = {pkg: pattern.split() for pkg, pattern in cfg["options.package_data"].items()}
    data = [p for p in (REPO / "memprobe").rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc", ".typed")]
    assert data, "the rules and the framework catalog are data files"
    for path in data:
        package = ".".join(path.parent.relative_to(REPO).parts)
        assert any(path.match(g) for g in globs.get(package, [])), f"add {path.name} to package_data of {package}"
