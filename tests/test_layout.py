"""The package's layout is its pipeline: a stage imports only from the stages before it.

Every import of memprobe/ is read with ast, at module level and inside functions alike (a
lazy import is still a dependency), and the graph is checked: no cycle between modules, no
import from a lower stage to a higher one, and no module reaching for another's private names.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "memprobe"

#: Lowest first; a module may import from its own stage and the ones before it.
STAGES: list[set[str]] = [
    {"errors", "units"},
    {"target"},
    {"process"},
    {"http"},
    {"results", "capture"},
    {"agent"},
    {"hunt", "compare", "check", "watch"},
    {"render"},
    {"pytest_plugin", "commands"},
    {"cli", "__main__"},
]
#: Modules a stage of the same rank must not import from each other.
SIBLINGS_APART = {"hunt", "compare"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """memprobe module name -> its file."""
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def source_of(node: ast.ImportFrom, name: str, path: Path) -> str:
    """The module ``from ... import`` reads from, relative imports made absolute."""
    base = node.module or ""
    if node.level:
        package = (name if path.name == "__init__.py" else name.rpartition(".")[0]).split(".")
        base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
    return base


def imports() -> dict[str, set[str]]:
    """memprobe module -> the memprobe modules it imports."""
    modules_ = modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules_.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("memprobe")}
            elif isinstance(node, ast.ImportFrom):
                base = source_of(node, name, path)
                if not base.startswith("memprobe"):
                    continue
                for alias in node.names:  # `from memprobe.x import y`: y may be a module
                    candidate = f"{base}.{alias.name}"
                    found.add(candidate if candidate in modules_ else base)
        graph[name] = {m for m in found if m in modules_ and m != name and m != "memprobe"}
    return graph


def stage(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    for rank, names in enumerate(STAGES):
        if top in names:
            return rank
    raise AssertionError(f"{module}: in no stage of STAGES; add its folder")


def test_every_module_belongs_to_a_stage() -> None:
    for module in imports():
        if module != "memprobe":
            stage(module)


def test_no_module_imports_from_a_later_stage() -> None:
    upward = [f"{m} -> {d}" for m, deps in imports().items() if m != "memprobe"
              for d in sorted(deps) if stage(d) > stage(m)]
    assert not upward, "imports from a later stage:\n" + "\n".join(upward)


def test_hunt_and_compare_do_not_import_each_other() -> None:
    crossing = [f"{m} -> {d}" for m, deps in imports().items() for d in sorted(deps)
                if m.split(".")[1:2] != d.split(".")[1:2]
                and {m.split(".")[1], d.split(".")[1]} <= SIBLINGS_APART]
    assert not crossing, "\n".join(crossing)


def test_the_import_graph_has_no_cycle() -> None:
    graph = imports()
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                cycle = visit(dep)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_module_is_over_600_lines() -> None:
    long = {module_name(p): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600}
    assert not long, long


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses() -> list[str]:
    """Each ``from memprobe.x import _y`` and ``x._y`` (``x`` a memprobe module imported by
    name) of a module other than ``memprobe.x`` itself."""
    modules_ = modules()
    found: list[str] = []
    for name, path in modules_.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported: dict[str, str] = {}  # local name -> the memprobe module it is
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {a.asname: a.name for a in node.names if a.asname and a.name in modules_}
            elif isinstance(node, ast.ImportFrom):
                base = source_of(node, name, path)
                if not base.startswith("memprobe") or base == name:
                    continue
                for alias in node.names:
                    if f"{base}.{alias.name}" in modules_:
                        imported[alias.asname or alias.name] = f"{base}.{alias.name}"
                    if is_private(alias.name):
                        found.append(f"{name}:{node.lineno}: from {base} import {alias.name}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and is_private(node.attr) and isinstance(node.value, ast.Name)
                    and imported.get(node.value.id, name) != name):
                found.append(f"{name}:{node.lineno}: {imported[node.value.id]}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names() -> None:
    # What another module needs is public, with a docstring saying what it promises.
    uses = private_uses()
    assert not uses, "private names used from another module:\n" + "\n".join(uses)


def test_the_private_name_check_sees_both_spellings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "memprobe"
    (package / "a").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a" / "__init__.py").write_text("")
    (package / "a" / "inner.py").write_text("_hidden = 1\n__version__ = 2\nshown = _hidden\n")
    (package / "b.py").write_text("from memprobe.a.inner import _hidden, __version__\n"
                                  "from .a import inner as other\n"
                                  "print(other._hidden, other.shown)\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    assert [use.split(": ", 1)[1] for use in private_uses()] == [
        "from memprobe.a.inner import _hidden", "memprobe.a.inner._hidden"]
