"""Rules about the app as a whole: configuration, import time, caches, debug mode."""
from __future__ import annotations

import ast
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from memprobe.check.context import RuleContext
from memprobe.check.facts import ModuleFacts

_SIMPLE_CACHE = frozenset({"simple", "simplecache", "flask_caching.backends.simplecache",
                           "flask_caching.backends.simplecache.simplecache",
                           "flask_caching.backends.simple"})
#: a CACHE_THRESHOLD this large means the in-process cache is never pruned in practice
HUGE_THRESHOLD = 100_000
#: files at least this large, read at import time, are "large data"
LARGE_FILE = 1 << 20
_HEAVY_LOADERS = frozenset({
    "numpy.load", "numpy.loadtxt", "numpy.genfromtxt", "numpy.fromfile", "pickle.load", "joblib.load",
    "torch.load", "tensorflow.keras.models.load_model", "keras.models.load_model", "h5py.File",
    "spacy.load", "datasets.load_dataset", "sentence_transformers.SentenceTransformer",
    "pyarrow.parquet.read_table", "gensim.models.KeyedVectors.load",
})
_HEAVY_PREFIXES = ("pandas.read_", "polars.read_", "dask.dataframe.read_")
_FILE_READS = frozenset({"read", "readlines", "read_bytes", "read_text"})
_PARSERS = frozenset({"json.load", "yaml.load", "yaml.safe_load", "yaml.full_load", "tomllib.load",
                      "csv.reader", "csv.DictReader"})


def _config_values(mod: ModuleFacts) -> Iterator[tuple[str, ast.AST, ast.AST]]:
    """(key, value node, where) for every ``CACHE_*``/``DEBUG`` setting written in ``mod``."""
    for node in ast.walk(mod.src.tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    yield key.value, value, key
        elif isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg:
                    yield kw.arg, kw.value, kw.value
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant) \
                        and isinstance(target.slice.value, str) and isinstance(target.value, ast.Attribute) \
                        and target.value.attr == "config":
                    yield target.slice.value, node.value, node
                elif isinstance(target, ast.Name) and target.id.startswith("CACHE_"):
                    yield target.id, node.value, node


def _literal(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "float" \
                and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value in ("inf", "Infinity"):
            return math.inf
        return None


def _caching_modules(ctx: RuleContext) -> list[ModuleFacts]:
    return [m for m in ctx.project.modules if m.uses_flask or any(k.startswith("CACHE_") for k, _, _ in _config_values(m))]


def cache_unbounded(ctx: RuleContext) -> None:
    """MP104: Flask-Caching entries that never expire, or an in-process cache never pruned."""
    for mod in _caching_modules(ctx):
        for key, value, where in _config_values(mod):
            literal = _literal(value)
            if key == "CACHE_DEFAULT_TIMEOUT" and literal == 0 and not isinstance(literal, bool):
                ctx.report("MP104", mod, where, "`CACHE_DEFAULT_TIMEOUT = 0`: cached entries never expire",
                           symbol=key)
            elif key == "CACHE_THRESHOLD" and isinstance(literal, (int, float)) and literal >= HUGE_THRESHOLD:
                ctx.report("MP104", mod, where,
                           f"`CACHE_THRESHOLD = {literal}`: the in-process cache is effectively never pruned",
                           symbol=key)
        if not mod.uses_flask:
            continue
        for node in ast.walk(mod.src.tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            method = node.func.attr
            if method not in ("cached", "memoize", "set", "add", "set_many"):
                continue
            receiver = mod.qualified(node.func.value) or ""
            if method in ("set", "add", "set_many") and "cache" not in receiver.lower():
                continue
            timeout = next((k.value for k in node.keywords if k.arg == "timeout"), None)
            if timeout is None and method in ("set", "add") and len(node.args) > 2:
                timeout = node.args[2]
            if timeout is None and method in ("cached", "memoize") and node.args:
                timeout = node.args[0]
            if timeout is not None and _literal(timeout) == 0 and not isinstance(_literal(timeout), bool):
                ctx.report("MP104", mod, node,
                           f"`{receiver}.{method}(timeout=0)`: these entries never expire", symbol=f"{receiver}.{method}")


def per_process_cache(ctx: RuleContext) -> None:
    """MP105: SimpleCache (one copy per worker) where the deployment runs several workers."""
    deploy = ctx.deployment
    if deploy.workers <= 1:
        return
    for mod in _caching_modules(ctx):
        for key, value, where in _config_values(mod):
            literal = _literal(value)
            if key == "CACHE_TYPE" and isinstance(literal, str) and literal.lower() in _SIMPLE_CACHE:
                ctx.report("MP105", mod, where,
                           f"`CACHE_TYPE = {literal!r}` keeps one cache per process, and "
                           f"{deploy.workers} workers run ({deploy.workers_evidence})", symbol=key)


def debug_mode(ctx: RuleContext) -> None:
    """MP110: ``debug=True`` in code: ``app.run(debug=True)``, ``app.debug = True``, ``DEBUG`` config."""
    for mod in ctx.project.modules:
        if not mod.uses_flask:
            continue
        for node in ast.walk(mod.src.tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                for kw in node.keywords:
                    if kw.arg in ("debug", "DEBUG") and _literal(kw.value) is True \
                            and node.func.attr in ("run", "update", "from_mapping"):
                        ctx.report("MP110", mod, kw.value, f"`{node.func.attr}(..., {kw.arg}=True)`")
            elif isinstance(node, ast.Assign) and _literal(node.value) is True:
                for target in node.targets:
                    if isinstance(target, ast.Attribute) and target.attr == "debug":
                        ctx.report("MP110", mod, node, f"`{mod.qualified(target) or 'app.debug'} = True`")
                    elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Attribute) \
                            and target.value.attr == "config" and _literal(target.slice) == "DEBUG":
                        ctx.report("MP110", mod, node, "`config['DEBUG'] = True`")
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values):
                    if key is not None and _literal(key) == "DEBUG" and _literal(value) is True:
                        ctx.report("MP110", mod, key, "`'DEBUG': True` in the app's config")


def import_time_load(ctx: RuleContext) -> None:
    """MP107: datasets, models or large files loaded when the module is imported."""
    for mod in ctx.project.modules:
        for call in _import_time_calls(mod.src.tree):
            name = mod.call_name(call)
            if name in _HEAVY_LOADERS or name.startswith(_HEAVY_PREFIXES) \
                    or (isinstance(call.func, ast.Attribute) and call.func.attr == "from_pretrained"):
                shown = name or getattr(call.func, "attr", "")
                ctx.report("MP107", mod, call, f"`{shown}(...)` runs at import time",
                           symbol=name)
            elif isinstance(call.func, ast.Attribute) and call.func.attr == "fetchall":
                ctx.report("MP107", mod, call, "`.fetchall()` at import time loads a whole table into every worker")
            elif name in _PARSERS or (isinstance(call.func, ast.Attribute) and call.func.attr in _FILE_READS):
                size, path = _file_size(mod, call)
                if size >= LARGE_FILE:
                    ctx.report("MP107", mod, call,
                               f"`{path}` ({size / (1 << 20):.1f} MiB) is read at import time", symbol=path)


def _import_time_calls(tree: ast.Module) -> list[ast.Call]:
    """Calls executed on import: module and class bodies, not functions, not ``__main__`` blocks."""
    out: list[ast.Call] = []
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            stack.extend(node.decorator_list if not isinstance(node, ast.Lambda) else [])
            continue
        if isinstance(node, ast.If) and _is_main_guard(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Call):
            out.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return sorted(out, key=lambda c: (c.lineno, c.col_offset))


def _is_main_guard(test: ast.AST) -> bool:
    return isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"


def _file_size(mod: ModuleFacts, call: ast.Call) -> tuple[int, str]:
    """The size of the literal file path a read at import time refers to (0 when unknown)."""
    found = _literal_file(mod, call)
    # `with open(PATH) as f: DATA = json.load(f)`: the path is in the enclosing with statement
    return found if found[0] else _with_file_size(mod, call)


def _literal_file(mod: ModuleFacts, expr: ast.AST) -> tuple[int, str]:
    """The size and text of the first string literal in ``expr`` that names an existing file,
    from the module's folder or the working directory (0 and "" when none does)."""
    for node in ast.walk(expr):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and 0 < len(node.value) < 300:
            for base in (mod.src.path.parent, Path.cwd()):
                candidate = base / node.value
                try:
                    if candidate.is_file():
                        return candidate.stat().st_size, node.value
                except (OSError, ValueError):
                    continue
    return 0, ""


def _with_file_size(mod: ModuleFacts, call: ast.Call) -> tuple[int, str]:
    names = {n.id for n in ast.walk(call) if isinstance(n, ast.Name)}
    for node in ast.walk(mod.src.tree):
        if not isinstance(node, ast.With):
            continue
        for item in node.items:
            if isinstance(item.optional_vars, ast.Name) and item.optional_vars.id in names \
                    and isinstance(item.context_expr, ast.Call):
                found = _literal_file(mod, item.context_expr)
                if found[0]:
                    return found
    return 0, ""


def lru_cache_method(ctx: RuleContext) -> None:
    """MP112: ``lru_cache``/``cache`` on a method: the cache keeps every ``self`` alive."""
    for mod in ctx.project.modules:
        for node in ast.walk(mod.src.tree):
            if not isinstance(node, ast.ClassDef):
                continue
            for item in node.body:
                if not isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                names = [mod.qualified(d.func if isinstance(d, ast.Call) else d) for d in item.decorator_list]
                if any(n in ("staticmethod", "classmethod") for n in names):
                    continue
                args = item.args.posonlyargs + item.args.args
                if not args or args[0].arg != "self":
                    continue
                for deco, name in zip(item.decorator_list, names):
                    if name in ("functools.lru_cache", "functools.cache"):
                        ctx.report("MP112", mod, deco,
                                   f"`@{name.rpartition('.')[2]}` on method `{node.name}.{item.name}`",
                                   symbol=f"{node.name}.{item.name}")
