"""Rules about the app as a whole: configuration, caches, debug mode (import time: importtime.py)."""
from __future__ import annotations

import ast
import math
from collections.abc import Iterator
from typing import Any

from memprobe.check.context import RuleContext
from memprobe.check.facts import ModuleFacts

_SIMPLE_CACHE = frozenset({"simple", "simplecache", "flask_caching.backends.simplecache",
                           "flask_caching.backends.simplecache.simplecache",
                           "flask_caching.backends.simple"})
#: a CACHE_THRESHOLD this large means the in-process cache is never pruned in practice
HUGE_THRESHOLD = 100_000


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
