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
