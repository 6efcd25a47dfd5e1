"""What every rule receives: the analysed project, the deployment facts, and a way to report."""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Callable

from memprobe.check.facts import Function, ModuleFacts, Project
from memprobe.check.source import Deployment


@dataclass
class Hit:
    """A rule's raw report, before the engine adds titles, advice and suppressions."""

    rule: str
    module: ModuleFacts
    line: int
    col: int
    message: str
    symbol: str = ""
    scope: tuple[int, int] | None = None


@dataclass
class RuleContext:
    """The input of every rule function; rules append to ``hits``."""

    project: Project
    deployment: Deployment
    hits: list[Hit] = field(default_factory=list)

    def report(self, rule: str, mod: ModuleFacts, where: ast.AST | int, message: str,
               symbol: str = "", fn: Function | None = None) -> None:
        """Record that ``rule`` is broken at ``where`` (a node or a line) in ``mod``."""
        line = where if isinstance(where, int) else getattr(where, "lineno", 0)
        col = 0 if isinstance(where, int) else getattr(where, "col_offset", 0)
        self.hits.append(Hit(rule, mod, line, col, message, symbol, fn.span if fn else None))


RuleFn = Callable[[RuleContext], None]


def parents(root: ast.AST) -> dict[int, ast.AST]:
    """Map ``id(child) -> parent`` for every node under ``root``."""
    out: dict[int, ast.AST] = {}
    for node in ast.walk(root):
        for child in ast.iter_child_nodes(node):
            out[id(child)] = node
    return out


def is_constant(node: ast.AST) -> bool:
    """True for a literal (or a tuple of literals): a key that cannot grow with requests."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Tuple):
        return all(is_constant(e) for e in node.elts)
    return False


def calls_in(fn: Function) -> list[ast.Call]:
    """Every call inside ``fn``'s own body (nested functions are per-request functions of their own)."""
    return sorted((n for n in own_nodes(fn) if isinstance(n, ast.Call)), key=lambda c: (c.lineno, c.col_offset))


def own_nodes(fn: Function) -> list[ast.AST]:
    """Every node of ``fn``'s own body, not descending into nested functions or classes."""
    out: list[ast.AST] = []
    stack: list[ast.AST] = list(fn.node.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        out.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return out
