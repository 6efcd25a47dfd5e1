"""What a wheel carries: every package, and the hello-worlds as memprobe/_frameworks."""
from __future__ import annotations

import ast
import configparser
import importlib.metadata
import re
import sys

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


def _names(requirements: str) -> set[str]:
    """The distribution names in a setup.cfg list of requirements."""
    return {re.split(r"[<>=!~;\[ ]", line.strip(), maxsplit=1)[0].lower()
            for line in requirements.split("\n") if line.strip()}


def test_the_all_extra_installs_what_the_pytest_plugin_imports() -> None:
    """`pip install 'memprobe[all]'` gives a working pytest plugin: every third-party module the
    plugin imports comes with memprobe itself or with the `all` extra."""
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    available = _names(cfg["options"]["install_requires"]) | _names(cfg["options.extras_require"]["all"])
    owners = importlib.metadata.packages_distributions()
    imported: set[str] = set()
    for path in (REPO / "memprobe" / "pytest_plugin").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = {m for m in imported if m != "memprobe" and m not in sys.stdlib_module_names}
    assert "pytest" in third_party
    for module in sorted(third_party):
        dists = {d.lower() for d in owners.get(module, [module])}
        assert dists & available, f"the pytest plugin imports {module}: add {sorted(dists)} to the all extra"
