"""The package's layout is its pipeline: a stage imports only from the stages before it.

Every import of memprobe/ is read with ast, at module level and inside functions alike (a
lazy import is still a dependency), and the graph is checked: no cycle between modules, no
import from a lower stage to a higher one.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "memprobe"

#: Lowest first; a module may import from its own stage and the ones before it.
STAGES: list[set[str]] = [
    {"errors", "units"},
    {"target"},
    {"process"},
    {"http"},
    {"results"},
    {"agent"},
    {"hunt", "compare", "check"},
    {"render"},
    {"pytest_plugin", "commands"},
    {"cli", "__main__"},
]
#: Modules a stage of the same rank must not import from each other.
SIBLINGS_APART = {"hunt", "compare"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """memprobe module -> the memprobe modules it imports."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("memprobe")}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                    + ([base] if base else []))
                if not base.startswith("memprobe"):
                    continue
                for alias in node.names:  # `from memprobe.x import y`: y may be a module
                    candidate = f"{base}.{alias.name}"
                    found.add(candidate if candidate in modules else base)
        graph[name] = {m for m in found if m in modules and m != name and m != "memprobe"}
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
