"""What the rules need to know about the app's source: names, handlers, and what runs per request.

The analysis is deliberately simple and local: import aliases are resolved to dotted names,
request handlers are found by their decorators and registrations, and a function counts as
"per request" when a handler calls it, directly or through other functions of the app (calls
resolved by name within the checked files). "Request data" is anything computed from
``flask.request``, ``flask.session`` or a view's arguments.
"""
from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Union

from memprobe.check.source import SourceFile

FunctionNode = Union[ast.FunctionDef, ast.AsyncFunctionDef]

#: decorator attributes that make a function a view (Flask, and the same shape in Bottle, FastAPI)
ROUTE_ATTRS = frozenset({"route", "get", "post", "put", "patch", "delete", "head", "options",
                         "websocket", "api_route"})
#: decorator attributes of functions Flask calls around every request
HOOK_ATTRS = frozenset({"before_request", "after_request", "before_app_request", "after_app_request",
                        "errorhandler", "app_errorhandler", "context_processor",
                        "app_context_processor", "url_value_preprocessor", "url_defaults"})
TEARDOWN_ATTRS = frozenset({"teardown_request", "teardown_appcontext", "teardown_app_request"})
VIEW_METHODS = frozenset({"get", "post", "put", "patch", "delete", "head", "options",
                          "dispatch_request"})
REQUEST_ROOTS = ("flask.request", "flask.session", "bottle.request")


@dataclass
class Function:
    """A function of the app, where it is, and why it runs per request (empty: it does not)."""

    node: FunctionNode
    module: ModuleFacts
    qualname: str
    is_handler: bool = False
    is_teardown: bool = False
    per_request: str = ""
    tainted: set[str] = field(default_factory=set)

    @property
    def span(self) -> tuple[int, int]:
        """First and last line of the function."""
        return self.node.lineno, getattr(self.node, "end_lineno", None) or self.node.lineno


class ModuleFacts:
    """Import aliases, functions and Flask usage of one parsed file."""

    def __init__(self, src: SourceFile) -> None:
        self.src = src
        self.aliases: dict[str, str] = {}
        self.functions: list[Function] = []
        self.by_node: dict[int, Function] = {}
        self.classes: dict[str, ast.ClassDef] = {}
        self._collect()

    @property
    def uses_flask(self) -> bool:
        """True when the module imports flask (or a flask extension)."""
        return any(q == "flask" or q.startswith(("flask.", "flask_")) for q in self.aliases.values())

    def qualified(self, node: ast.AST | None) -> str:
        """The dotted name an expression refers to, through import aliases ('' when not a name)."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualified(node.value)
            return f"{base}.{node.attr}" if base else ""
        return ""

    def call_name(self, call: ast.Call) -> str:
        """The dotted name of what ``call`` calls ('' for computed callees)."""
        return self.qualified(call.func)

    def _collect(self) -> None:
        package = self.src.module if self.src.path.name == "__init__.py" else self.src.module.rpartition(".")[0]
        for node in ast.walk(self.src.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.aliases[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        self.aliases[top] = top
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".") if package else []
                    parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                    base = ".".join(p for p in [*parts, base] if p)
                for alias in node.names:
                    self.aliases[alias.asname or alias.name] = f"{base}.{alias.name}" if base else alias.name
            elif isinstance(node, ast.ClassDef):
                self.classes[node.name] = node
        self._collect_functions(self.src.tree, prefix="")

    def _collect_functions(self, parent: ast.AST, prefix: str) -> None:
        for node in ast.iter_child_nodes(parent):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                fn = Function(node, self, f"{prefix}{node.name}")
                self.functions.append(fn)
                self.by_node[id(node)] = fn
                self._collect_functions(node, f"{prefix}{node.name}.")
            elif isinstance(node, ast.ClassDef):
                self._collect_functions(node, f"{prefix}{node.name}.")
            else:
                self._collect_functions(node, prefix)


class Project:
    """All checked modules, the handlers among their functions, and what runs per request."""

    def __init__(self, sources: list[SourceFile]) -> None:
        self.modules = [ModuleFacts(s) for s in sources]
        self.by_qualname: dict[str, Function] = {}
        for mod in self.modules:
            for fn in mod.functions:
                self.by_qualname.setdefault(f"{mod.src.module}.{fn.qualname}", fn)
        self._find_handlers()
        self._propagate()
        for mod in self.modules:
            by_name = {fn.qualname: fn for fn in mod.functions}
            for fn in mod.functions:  # pre-order: an enclosing function comes before its nested ones
                if fn.per_request:
                    outer = by_name.get(fn.qualname.rpartition(".")[0])
                    fn.tainted = _taint(fn, outer.tainted if outer else set())

    @property
    def flask_detected(self) -> bool:
        """True when any checked module imports Flask."""
        return any(m.uses_flask for m in self.modules)

    @property
    def teardowns(self) -> list[Function]:
        """Functions registered to run when a request or app context ends."""
        return [fn for m in self.modules for fn in m.functions if fn.is_teardown]

    def per_request(self) -> Iterator[Function]:
        """Every function that runs on each request (handlers and what they call)."""
        for mod in self.modules:
            for fn in mod.functions:
                if fn.per_request:
                    yield fn

    def resolve(self, mod: ModuleFacts, func: ast.AST, scope: Function | None = None) -> Function | None:
        """The app function a call's callee names, when it is one of the checked files' functions."""
        if isinstance(func, ast.Name):
            if scope is not None:
                nested = self.by_qualname.get(f"{mod.src.module}.{scope.qualname}.{func.id}")
                if nested:
                    return nested
            local = self.by_qualname.get(f"{mod.src.module}.{func.id}")
            if local and func.id not in mod.aliases:
                return local
        name = mod.qualified(func)
        if name in self.by_qualname:
            return self.by_qualname[name]
        if "." in name and name.split(".")[0] in mod.aliases:
            # Checked from above the import root: `notes.db.get_db` is `app.notes.db.get_db` here.
            tail = "." + name
            found = [fn for q, fn in self.by_qualname.items() if q.endswith(tail)]
            if len(found) == 1:
                return found[0]
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "self":
            owner = scope.qualname.rpartition(".")[0].rpartition(".")[0] if scope else ""
            return self.by_qualname.get(f"{mod.src.module}.{owner}.{func.attr}" if owner else "")
        return None

    def _mark(self, fn: Function | None, reason: str, teardown: bool = False) -> None:
        if fn is None:
            return
        if teardown:
            fn.is_teardown = True
        fn.is_handler = True
        fn.per_request = fn.per_request or reason

    def _find_handlers(self) -> None:
        for mod in self.modules:
            for fn in mod.functions:
                for deco in fn.node.decorator_list:
                    target = deco.func if isinstance(deco, ast.Call) else deco
                    attr = target.attr if isinstance(target, ast.Attribute) else ""
                    if attr in ROUTE_ATTRS and isinstance(deco, ast.Call):
                        self._mark(fn, f"view `{fn.qualname}`")
                    elif attr in HOOK_ATTRS:
                        self._mark(fn, f"`{attr}` hook `{fn.qualname}`")
                    elif attr in TEARDOWN_ATTRS:
                        self._mark(fn, f"teardown `{fn.qualname}`", teardown=True)
            for cls in mod.classes.values():
                if any(mod.qualified(b).rpartition(".")[2] in ("MethodView", "View") for b in cls.bases):
                    self._mark_view_class(mod, cls.name)
            for node in ast.walk(mod.src.tree):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                attr = node.func.attr
                if attr == "add_url_rule":
                    view = node.args[2] if len(node.args) > 2 else next(
                        (k.value for k in node.keywords if k.arg == "view_func"), None)
                    if isinstance(view, ast.Call) and isinstance(view.func, ast.Attribute) \
                            and view.func.attr == "as_view":
                        self._mark_view_class(mod, mod.qualified(view.func.value).rpartition(".")[2])
                    elif view is not None:
                        self._mark(self.resolve(mod, view), "view registered with add_url_rule")
                elif (attr in HOOK_ATTRS or attr in TEARDOWN_ATTRS) and node.args:
                    self._mark(self.resolve(mod, node.args[0]), f"`{attr}` hook", attr in TEARDOWN_ATTRS)

    def _mark_view_class(self, mod: ModuleFacts, class_name: str) -> None:
        for fn in mod.functions:
            owner, _, method = fn.qualname.rpartition(".")
            if owner == class_name and method in VIEW_METHODS:
                self._mark(fn, f"view method `{fn.qualname}`")

    def _propagate(self) -> None:
        queue = [fn for fn in self.per_request()]
        while queue:
            fn = queue.pop()
            for node in ast.walk(fn.node):
                if not isinstance(node, ast.Call):
                    continue
                callee = self.resolve(fn.module, node.func, fn)
                if callee is not None and not callee.per_request:
                    callee.per_request = f"called from `{fn.qualname}` ({fn.per_request})"
                    queue.append(callee)
            for node in ast.walk(fn.node):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node is not fn.node:
                    inner = fn.module.by_node.get(id(node))
                    if inner is not None and not inner.per_request:
                        inner.per_request = f"defined in `{fn.qualname}` ({fn.per_request})"
                        queue.append(inner)


def _taint(fn: Function, inherited: set[str]) -> set[str]:
    """Names in ``fn`` that hold request data: view arguments and what is computed from request.

    Arguments of helpers reached from handlers count too: they may be passed request data, and
    assuming so errs on the side of reporting. Closures inherit the enclosing function's names.
    """
    mod = fn.module
    tainted: set[str] = set(inherited)
    args = fn.node.args
    tainted.update(a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs] if a.arg not in ("self", "cls"))
    for _ in range(3):
        before = len(tainted)
        for node in ast.walk(fn.node):
            if isinstance(node, ast.Assign) and is_request_data(mod, node.value, tainted):
                for target in node.targets:
                    tainted.update(_names(target))
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.NamedExpr)) and node.value is not None \
                    and is_request_data(mod, node.value, tainted):
                tainted.update(_names(node.target))
            elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)) and is_request_data(mod, node.iter, tainted):
                tainted.update(_names(node.target))
        if len(tainted) == before:
            break
    return tainted


def is_request_data(mod: ModuleFacts, expr: ast.AST | None, tainted: set[str]) -> bool:
    """True when ``expr`` reads ``flask.request``/``session`` or a tainted name."""
    if expr is None:
        return False
    for node in ast.walk(expr):
        if isinstance(node, ast.Name):
            if node.id in tainted or mod.aliases.get(node.id, "").startswith(REQUEST_ROOTS):
                return True
        elif isinstance(node, ast.Attribute) and mod.qualified(node).startswith(REQUEST_ROOTS):
            return True
    return False


def _names(target: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}

