"""Inside the child: what holds the memory that grew (runs in the agent, never in the parent).

Two ideas, both from objgraph:

* **roots scan**: walk from the places a leak usually hangs from - module globals of the user's
  modules, class attributes, function defaults and closures, ``functools.lru_cache`` wrappers,
  the logging manager's loggers and their handlers - down a few levels of containers and instance
  attributes, and record each container's size. Scanning at the baseline and at the end and
  comparing by path names the container that grew, as a user would: ``module leaky.py, global
  _cache (dict, 3,000 entries)``.
* **back-reference chain**: from objects allocated at a growing allocation site, the shortest
  chain of referrers back to a module, for holders the roots scan does not reach.

Growing types come from Heapy's ``bytype`` (guppy3) or ``gc.get_objects()`` type counts
(objgraph's ``show_growth``).
"""
from __future__ import annotations

import collections
import gc
import logging
import os
import sys
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from types import FunctionType, MethodType, ModuleType
from typing import Any

from memprobe.target.usercode import is_user_file

_CONTAINERS = (dict, list, set, frozenset, collections.deque, bytearray)
_LEAVES = (ModuleType, type, str, bytes, int, float, complex, bool, type(None), range)
_PROXIES = {"LocalProxy", "_ProxyLookup", "ContextVar", "proxy", "weakproxy", "CallableProxyType"}
_MAX_DEPTH = 5
_MAX_CHILDREN = 64
_MAX_NODES = 40_000


#: Whether ``__main__`` is the user's script: in a process memprobe attached to (``python
#: app.py``) it is; in the agent memprobe starts, ``__main__`` is memprobe's or pytest's.
MAIN_IS_USER = False


def user_modules() -> list[ModuleType]:
    """Imported modules whose source is the user's code."""
    out = []
    for name, module in list(sys.modules.items()):
        filename = getattr(module, "__file__", None)
        if isinstance(module, ModuleType) and filename and (name != "__main__" or MAIN_IS_USER) \
                and is_user_file(filename):
            out.append(module)
    return out


@dataclass
class Node:
    """A container seen by the roots scan: where it is, what it is and how many entries it has."""

    chain: tuple[str, ...]
    type_name: str
    size: int


def _size(obj: Any) -> int | None:
    if issubclass(type(obj), _CONTAINERS):
        return len(obj)
    info = getattr(obj, "cache_info", None)
    if callable(info) and hasattr(obj, "cache_clear"):
        try:
            return int(info().currsize)
        except Exception:  # a foreign object with a cache_info that needs arguments
            return None
    return None


def _type_name(obj: Any) -> str:
    if _is_lru(obj):
        return "lru_cache"
    return type(obj).__name__


class _Walker:
    def __init__(self) -> None:
        self.nodes: dict[tuple[str, ...], Node] = {}
        self.seen: set[int] = set()
        self.budget = _MAX_NODES

    def walk(self, obj: Any, chain: tuple[str, ...], depth: int = 0) -> None:
        if self.budget <= 0 or id(obj) in self.seen:
            return
        cls = type(obj)  # not isinstance: proxies (werkzeug's `request`) lie about __class__
        if issubclass(cls, _LEAVES) or cls.__name__ in _PROXIES:
            return
        self.seen.add(id(obj))
        self.budget -= 1
        try:
            size = _size(obj)
            if size is not None:
                self.nodes[chain] = Node(chain, _type_name(obj), size)
            if depth >= _MAX_DEPTH:
                return
            children = list(_children(obj))
        except Exception:  # an object whose attributes run code that fails outside a request
            return
        for step, child in children:
            self.walk(child, chain + (step,), depth + 1)


def _children(obj: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(obj, dict):
        for i, (key, value) in enumerate(list(obj.items())):
            if i >= _MAX_CHILDREN:
                break
            yield f"[{_short_repr(key)}]", value
    elif isinstance(obj, (list, collections.deque, tuple)):
        for i, value in enumerate(list(obj)[:_MAX_CHILDREN]):
            yield f"[{i}]", value
    elif isinstance(obj, (set, frozenset, bytearray)):
        return
    elif isinstance(obj, (FunctionType, MethodType)) or _is_lru(obj):
        return
    else:
        attrs = getattr(obj, "__dict__", None)
        if isinstance(attrs, dict):
            for i, (key, value) in enumerate(list(attrs.items())):
                if i >= _MAX_CHILDREN:
                    break
                yield f".{key}", value
        for slot in getattr(type(obj), "__slots__", ()) if not isinstance(obj, type) else ():
            if isinstance(slot, str) and hasattr(obj, slot):
                yield f".{slot}", getattr(obj, slot)


def _short_repr(key: Any) -> str:
    if not isinstance(key, (str, bytes, int, float, bool, tuple, type(None))):
        return f"<{type(key).__name__}>"
    text = repr(key)
    return text if len(text) <= 40 else text[:37] + "..."


def _module_label(module: ModuleType) -> str:
    filename = getattr(module, "__file__", "") or module.__name__
    return f"module {os.path.basename(filename)}"


def scan_roots() -> dict[tuple[str, ...], Node]:
    """Sizes of the containers reachable from the usual roots, keyed by their chain."""
    walker = _Walker()
    for module in user_modules():
        mod = _module_label(module)
        for name, value in list(vars(module).items()):
            if name.startswith("__") and name.endswith("__"):
                continue
            try:
                _scan_global(walker, module, mod, name, value)
            except Exception:  # a proxy or descriptor that only works inside a request
                continue
    _scan_logging(walker)
    return walker.nodes


def _scan_global(walker: _Walker, module: ModuleType, mod: str, name: str, value: Any) -> None:
    cls = type(value)
    if cls.__name__ in _PROXIES:
        return
    if issubclass(cls, type) and getattr(value, "__module__", None) == module.__name__:
        _scan_class(walker, mod, value)
    elif cls is FunctionType and value.__module__ == module.__name__:
        _scan_function(walker, (mod, f"function {value.__qualname__}"), value)
    elif _is_lru(value):
        walker.walk(value, (mod, f"function {name}", "lru_cache"))
    else:
        walker.walk(value, (mod, f"global {name}"))


def _is_lru(obj: Any) -> bool:
    return type(obj).__name__ == "_lru_cache_wrapper" or (
        callable(getattr(obj, "cache_info", None)) and hasattr(obj, "cache_clear"))


def _scan_class(walker: _Walker, mod: str, cls: type) -> None:
    for attr, value in list(vars(cls).items()):
        if attr.startswith("__") and attr.endswith("__"):
            continue
        raw = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
        if isinstance(raw, FunctionType):
            _scan_function(walker, (mod, f"function {raw.__qualname__}"), raw)
        elif _is_lru(raw):
            walker.walk(raw, (mod, f"class {cls.__qualname__}", f"method {attr}", "lru_cache"))
        elif not isinstance(raw, (property, type)):
            walker.walk(raw, (mod, f"class {cls.__qualname__}", f"attribute {attr}"))


def _scan_function(walker: _Walker, chain: tuple[str, ...], fn: FunctionType) -> None:
    for i, value in enumerate(fn.__defaults__ or ()):
        names = fn.__code__.co_varnames[fn.__code__.co_argcount - len(fn.__defaults__ or ()):]
        walker.walk(value, chain + (f"default argument {names[i] if i < len(names) else i}",))
    for name, value in (fn.__kwdefaults__ or {}).items():
        walker.walk(value, chain + (f"default argument {name}",))
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
        try:
            walker.walk(cell.cell_contents, chain + (f"closure variable {name}",))
        except ValueError:  # an empty cell
            continue


def _scan_logging(walker: _Walker) -> None:
    manager = logging.Logger.manager
    walker.walk(manager.loggerDict, ("logging manager", "loggers"), depth=_MAX_DEPTH)
    loggers: list[tuple[str, logging.Logger]] = [("root", logging.getLogger())]
    loggers += [(name, lg) for name, lg in list(manager.loggerDict.items())
                if isinstance(lg, logging.Logger)]
    for name, logger in loggers:
        walker.walk(logger.handlers, ("logging manager", f"logger {name!r}", "handlers"),
                    depth=_MAX_DEPTH)
        walker.walk(logger.filters, ("logging manager", f"logger {name!r}", "filters"),
                    depth=_MAX_DEPTH)


def grown(before: dict[tuple[str, ...], Node], after: dict[tuple[str, ...], Node],
          requests: int, limit: int = 10) -> list[dict[str, Any]]:
    """Containers whose size grew between two scans, biggest growth first, as JSON dicts."""
    out: list[dict[str, Any]] = []
    for chain, node in after.items():
        old = before.get(chain)
        delta = node.size - (old.size if old else 0)
        if old is None or delta <= 0:
            continue
        out.append({
            "description": describe(chain, node.type_name, node.size),
            "chain": list(chain),
            "type": node.type_name,
            "entries_before": old.size,
            "entries": node.size,
            "entries_per_request": delta / requests if requests else 0.0,
            "source": "roots",
        })
    # A child container nested in one that also grew is the more precise holder; keep both,
    # the bigger growth first.
    out.sort(key=lambda h: (-(h["entries"] - h["entries_before"]), len(h["chain"])))
    return out[:limit]


def describe(chain: tuple[str, ...] | list[str], type_name: str, size: int) -> str:
    """``module leaky.py, global _cache (dict, 3,000 entries)``."""
    head: list[str] = []
    tail = ""
    for step in chain:
        if step.startswith((".", "[")):
            tail += step
        else:
            if tail:
                head[-1] += tail
                tail = ""
            head.append(step)
    if tail:
        head[-1] += tail
    return f"{', '.join(head)} ({type_name}, {size:,} entries)"


def type_stats() -> dict[str, list[int]]:
    """``{type name: [count, bytes]}`` of the live objects: Heapy's ``bytype`` when guppy3 is
    installed (it sees every object), else ``gc.get_objects()`` counts (bytes 0; objects the
    collector does not track, such as ints, strs and dicts of them, are missing).

    No reference to any object is kept (Heapy's ``setrelheap`` would keep the baseline's
    objects alive and make a cache that evicts look like one that grows).
    """
    try:
        from guppy import hpy
    except ImportError:
        return _gc_type_counts()
    heap = hpy().heap()
    stats = {row.name: [int(row.count), int(row.size)] for row in heap.bytype.stat.get_rows()}
    del heap
    return stats


def _gc_type_counts() -> dict[str, list[int]]:
    counts: collections.Counter[str] = collections.Counter()
    for obj in gc.get_objects():
        cls = type(obj)
        name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
        counts[name] += 1
    return {name: [n, 0] for name, n in counts.items()}


def grown_types(before: dict[str, list[int]], after: dict[str, list[int]], requests: int,
                limit: int = 10) -> list[dict[str, Any]]:
    """Types whose object count grew, most bytes (then count) first; memprobe's own and
    Heapy's types are left out."""
    out: list[dict[str, Any]] = []
    per = requests or 1
    for name, (count, size) in after.items():
        if name.startswith(("memprobe.", "guppy.")):
            continue
        old_count, old_size = before.get(name, [0, 0])
        if count - old_count > 0:
            out.append({"type": name, "count_before": old_count, "count": count,
                        "count_per_request": (count - old_count) / per,
                        "bytes_before": old_size, "bytes": size,
                        "bytes_per_request": (size - old_size) / per})
    out.sort(key=lambda t: (-(t["bytes"] - t["bytes_before"]), -(t["count"] - t["count_before"])))
    return [t for t in out if t["count"] - t["count_before"] >= max(2, per // 100)][:limit]


def backref_chain(filename: str, lineno: int, max_objects: int = 5,
                  max_depth: int = 12) -> dict[str, Any] | None:
    """The shortest referrer chain from a module to objects allocated at ``filename:lineno``.

    objgraph's ``find_backref_chain``, breadth-first over referrers from objects whose
    tracemalloc traceback includes that line, until a module's ``__dict__`` is reached. Each
    level is one ``gc.get_referrers`` call for the whole frontier (one pass over the heap), so
    the search costs ``max_depth`` passes at most. Answers the chain's steps and the biggest
    container on it, the one that most likely grows.
    """
    targets: list[Any] = []
    for obj in gc.get_objects():
        tb = tracemalloc.get_object_traceback(obj)
        if tb is not None and any(f.filename == filename and f.lineno == lineno for f in tb):
            targets.append(obj)
            if len(targets) >= max_objects:
                break
    if not targets:
        return None
    module_dicts = {id(vars(m)): m for m in list(sys.modules.values()) if isinstance(m, ModuleType)}
    paths: dict[int, list[Any]] = {id(obj): [obj] for obj in targets}
    seen = set(paths)
    frontier = list(targets)
    for _ in range(max_depth):
        wanted = {id(o) for o in frontier}
        found: dict[int, list[Any]] = {}
        bookkeeping = {id(frontier), id(targets), id(paths), id(found)}
        for ref in gc.get_referrers(*frontier):
            if id(ref) in seen or id(ref) in bookkeeping or _is_frame_like(ref):
                continue
            child = next((c for c in gc.get_referents(ref) if id(c) in wanted), None)
            if child is None:
                continue
            seen.add(id(ref))
            path = [ref] + paths[id(child)]
            if id(ref) in module_dicts:
                return _describe_chain(module_dicts[id(ref)], path)
            found[id(ref)] = path
        if not found:
            return None
        paths.update(found)
        frontier = [p[0] for p in list(found.values())[:500]]
    return None


def _describe_chain(module: ModuleType, path: list[Any]) -> dict[str, Any]:
    steps = _chain_steps(module, path)
    # The container with the most entries on the way is the one that grows per request.
    sizes = [(len(o), i) for i, o in enumerate(path) if issubclass(type(o), _CONTAINERS)
             and i > 0 and getattr(path[i - 1], "__dict__", None) is not o]
    if not sizes:
        return {"chain": steps, "type": type(path[-1]).__name__, "entries": 0}
    size, index = max(sizes)
    # steps has one entry per edge (minus __dict__ hops), so cut by walking the path again
    kept = _chain_steps(module, path[:index + 1])
    return {"chain": kept, "type": type(path[index]).__name__, "entries": size}


def _is_frame_like(obj: Any) -> bool:
    return type(obj).__name__ in ("frame", "cell", "generator", "coroutine")


def _chain_steps(module: ModuleType, path: list[Any]) -> list[str]:
    steps = [_module_label(module)]
    attrs_of: set[int] = set()  # ids of dicts that are some object's __dict__
    for i, (parent, child) in enumerate(zip(path, path[1:])):
        if getattr(parent, "__dict__", None) is child:
            attrs_of.add(id(child))
            continue
        steps.append(_step(parent, child, first=i == 0, attrs=id(parent) in attrs_of))
    return steps


def _step(parent: Any, child: Any, first: bool, attrs: bool) -> str:
    if isinstance(parent, dict):
        for key, value in parent.items():
            if value is child:
                if first:
                    return f"global {key}"
                return f".{key}" if attrs else f"[{_short_repr(key)}]"
        return "(a dict key)"
    if isinstance(parent, (list, tuple, collections.deque)):
        for i, value in enumerate(parent):
            if value is child:
                return f"[{i}]"
    attrs_dict = getattr(parent, "__dict__", None)
    if isinstance(attrs_dict, dict):
        for key, value in attrs_dict.items():
            if value is child:
                return f".{key}"
    return f"-> {type(child).__name__}"
