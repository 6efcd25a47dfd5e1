"""Inside the child: what holds the memory that grew (runs in the agent, never in the parent).

Two ideas, both from objgraph:

* **roots scan**: walk from the places a leak usually hangs from - module globals of the user's
  modules (their dunder registries too), class attributes (of the libraries' classes they
  import as well), function defaults and closures, ``functools.lru_cache`` wrappers, the logging
  manager's loggers and their handlers, each thread's contextvars context, the event loops'
  scheduled callbacks, the ``re`` and ``fnmatch`` caches and the interpreter's registries - down
  a few levels of containers and instance attributes, and record each container's size (and its
  cap or timers, :mod:`memprobe.agent.bounds`). Scanning at the baseline and at the end and
  comparing by path names the container that grew, as a user would: ``module leaky.py, global
  _cache (dict, 3,000 entries)``.
* **back-reference chain** (:mod:`memprobe.agent.backrefs`): from objects allocated at a growing
  allocation site, the shortest chain of referrers back to a root, for holders the roots scan
  does not reach.

Growing types come from Heapy's ``bytype`` (guppy3) or ``gc.get_objects()`` type counts
(objgraph's ``show_growth``).
"""
from __future__ import annotations

import collections
import contextvars
import gc
import logging
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import FunctionType, MethodType, ModuleType
from typing import Any

from memprobe.agent import bounds, interp
from memprobe.target.usercode import is_user_file

#: The container types whose size a holder is judged by (and whose items a walk reads).
CONTAINERS = (dict, list, set, frozenset, collections.deque, bytearray)
_LEAVES = (ModuleType, type, str, bytes, int, float, complex, bool, type(None), range)
_PROXIES = {"LocalProxy", "_ProxyLookup", "ContextVar", "proxy", "weakproxy", "CallableProxyType"}
_MAX_DEPTH = 5
_MAX_CHILDREN = 64
_MAX_NODES = 40_000
#: what the roots scan (:func:`scan_roots`) reads, as a report says it
ROOTS_SEARCHED = ("your modules' globals and classes, the library classes they import, every "
                  "module's warning registry, the logging manager, each thread's context, the "
                  "event loops' timers and the interpreter's registries")
#: roots every library uses: their growth is the app's only when it keeps pace with requests
_SHARED_ROOTS = ("interpreter", "module re", "module fnmatch")


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
    #: what bounds it (:func:`memprobe.agent.bounds.bounds`): a cap, timers due
    bounds: dict[str, Any] | None = None
    #: the container itself, when the scan was asked to keep it (``scan_roots(keep=True)``)
    ref: Any = field(default=None, repr=False, compare=False)


def entries(obj: Any) -> int | None:
    """How many entries a container the scan measures has (an lru_cache's current size); None
    for anything else."""
    if issubclass(type(obj), CONTAINERS) or type(obj) is contextvars.Context:
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
    def __init__(self, keep: bool = False) -> None:
        self.nodes: dict[tuple[str, ...], Node] = {}
        self.seen: set[int] = set()
        self.budget = _MAX_NODES
        self.keep = keep

    def walk(self, obj: Any, chain: tuple[str, ...], depth: int = 0,
             cap: dict[str, Any] | None = None) -> None:
        """``cap``: the cap the object owning ``obj`` keeps on it (a cache's threshold)."""
        if self.budget <= 0 or id(obj) in self.seen:
            return
        cls = type(obj)  # not isinstance: proxies (werkzeug's `request`) lie about __class__
        if issubclass(cls, _LEAVES) or cls.__name__ in _PROXIES:
            return
        self.seen.add(id(obj))
        self.budget -= 1
        try:
            size = entries(obj)
            if size is not None:
                found = bounds.bounds(obj) or (cap if isinstance(obj, dict) else None)
                if found and isinstance(obj, dict) and "cap" in found:
                    found = {**found, "bytes_per_entry": bounds.dict_per_entry(obj)}
                self.nodes[chain] = Node(chain, _type_name(obj), size, found, obj if self.keep else None)
            if depth >= _MAX_DEPTH:
                return
            children = list(_children(obj))
            owned = None if size is not None else bounds.owner_cap(obj)
        except Exception:  # an object whose attributes run code that fails outside a request
            return
        for step, child in children:
            self.walk(child, chain + (step,), depth + 1, owned)


def _children(obj: Any) -> Iterator[tuple[str, Any]]:
    if type(obj) is contextvars.Context:
        for i, (var, value) in enumerate(list(obj.items())):
            if i >= _MAX_CHILDREN:
                break
            yield f"[{var.name}]", value
    elif isinstance(obj, dict):
        for i, (key, value) in enumerate(list(obj.items())):
            if i >= _MAX_CHILDREN:
                break
            yield f"[{short_repr(key)}]", value
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


def short_repr(key: Any) -> str:
    """A dict key as a path shows it: its repr up to 40 characters, or ``<type>`` for an object."""
    if not isinstance(key, (str, bytes, int, float, bool, tuple, type(None))):
        return f"<{type(key).__name__}>"
    text = repr(key)
    return text if len(text) <= 40 else text[:37] + "..."


def _module_label(module: ModuleType) -> str:
    filename = getattr(module, "__file__", "") or module.__name__
    return f"module {os.path.basename(filename)}"


def scan_roots(keep: bool = False) -> dict[tuple[str, ...], Node]:
    """Sizes of the containers reachable from the usual roots, keyed by their chain: the user's
    modules' globals (dunder registries such as ``__warningregistry__`` too) and the classes
    they import from libraries, every module's ``__warningregistry__``, the logging manager,
    each thread's contextvars context, the event loops' scheduled callbacks and the
    interpreter's registries. ``keep``: each node holds its container (``Node.ref``), for a
    caller that looks into what grew; drop the result soon."""
    walker = _Walker(keep)
    for module in user_modules():
        mod = _module_label(module)
        for name, value in list(vars(module).items()):
            if name.startswith("__") and name.endswith("__") and (
                    name == "__builtins__" or not isinstance(value, (dict, list, set))):
                continue
            try:
                _scan_global(walker, module, mod, name, value)
            except Exception:  # a proxy or descriptor that only works inside a request
                continue
    _scan_registries(walker, {id(m) for m in user_modules()})
    _scan_logging(walker)
    _scan_interpreter(walker)
    return walker.nodes


def _scan_registries(walker: _Walker, user: set[int]) -> None:
    """The ``__warningregistry__`` the warnings module keeps in the globals of the module that
    warns (a library's too, when it warns with ``stacklevel=1``): one entry per message, so a
    warning whose text changes per request grows it for ever."""
    for name, module in list(sys.modules.items()):
        if not isinstance(module, ModuleType) or id(module) in user:
            continue
        registry = getattr(module, "__dict__", {}).get("__warningregistry__")
        if isinstance(registry, dict):
            chain = (f"module {name}", "global __warningregistry__")
            walker.nodes[chain] = Node(chain, "dict", len(registry))


def _scan_interpreter(walker: _Walker) -> None:
    """Roots only the interpreter holds: threads' contexts, event loops, registries."""
    for thread, ctx in interp.thread_contexts():
        walker.walk(ctx, (f"thread {thread}", "contextvars context"))
    for loop in interp.event_loops():
        label = (f"event loop {type(loop).__module__}.{type(loop).__qualname__} "
                 f"(thread {interp.loop_thread(loop)})")
        walker.walk(loop, (label,))
        # uvloop keeps its timers in C-level attributes: reached as the loop's referents.
        for i, ref in enumerate(gc.get_referents(loop)):
            if issubclass(type(ref), CONTAINERS) and id(ref) not in walker.seen:
                what = "scheduled timers" if any(interp.is_timer(x) for x in list(ref)[:8]) else ""
                walker.walk(ref, (label, what or f"({type(ref).__name__} {i})"))
    for name, cache in (("re", "_cache"), ("fnmatch", "_compile_pattern")):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, cache):
            value = getattr(module, cache)
            tail = ("lru_cache",) if _is_lru(value) else ()
            walker.walk(value, (f"module {name}", f"{'function' if tail else 'global'} {cache}") + tail)
    for name, size in registries().items():
        walker.nodes[("interpreter", name)] = Node(("interpreter", name), "registry", size)


def registries() -> dict[str, int]:
    """The sizes of the interpreter's registries, some of which only C can see (atexit's
    callbacks), each read where it can be."""
    import atexit
    import copyreg
    import weakref
    out = {"atexit callbacks": atexit._ncallbacks(), "gc.callbacks": len(gc.callbacks),
           "weakref.finalize registry": len(getattr(weakref.finalize, "_registry", {})),
           "threads alive (threading._active)": len(threading._active),  # type: ignore[attr-defined]
           "sys.modules": len(sys.modules),
           "sys.path_importer_cache": len(sys.path_importer_cache),
           "copyreg.dispatch_table": len(copyreg.dispatch_table)}
    return out


def _scan_global(walker: _Walker, module: ModuleType, mod: str, name: str, value: Any) -> None:
    cls = type(value)
    if cls.__name__ in _PROXIES:
        return
    if issubclass(cls, type) and getattr(value, "__module__", None) == module.__name__:
        _scan_class(walker, mod, value)
    elif issubclass(cls, type):
        # A library's class the user imported: its class attributes are a store shared by
        # every instance (CherryPy's RamSession.cache), named from the library.
        _scan_class(walker, f"class {value.__module__}.{value.__qualname__}", value, named=True)
    elif cls is FunctionType and value.__module__ == module.__name__:
        _scan_function(walker, (mod, f"function {value.__qualname__}"), value)
    elif _is_lru(value):
        walker.walk(value, (mod, f"function {name}", "lru_cache"))
    else:
        walker.walk(value, (mod, f"global {name}"))


def _is_lru(obj: Any) -> bool:
    return type(obj).__name__ == "_lru_cache_wrapper" or (
        callable(getattr(obj, "cache_info", None)) and hasattr(obj, "cache_clear"))


def _scan_class(walker: _Walker, mod: str, cls: type, named: bool = False) -> None:
    """``named``: ``mod`` already names the class (a library's, imported by the user)."""
    head = (mod,) if named else (mod, f"class {cls.__qualname__}")
    for attr, value in list(vars(cls).items()):
        if attr.startswith("__") and attr.endswith("__"):
            continue
        raw = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
        if isinstance(raw, FunctionType):
            if not named:
                _scan_function(walker, (mod, f"function {raw.__qualname__}"), raw)
        elif _is_lru(raw):
            walker.walk(raw, head + (f"method {attr}", "lru_cache"))
        elif not isinstance(raw, (property, type)):
            walker.walk(raw, head + ((f".{attr}",) if named else (f"attribute {attr}",)))


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
        if (chain[0] in _SHARED_ROOTS or chain[-1] == "global __warningregistry__") \
                and delta < max(2, requests // 20):
            continue  # a module imported lazily, a pattern compiled by a library now and then
        outside = chain[0].startswith("thread ") and chain[1:2] == ("contextvars context",)
        out.append({
            "description": describe(chain, node.type_name, node.size),
            "chain": list(chain),
            "type": node.type_name,
            "entries_before": old.size,
            "entries": node.size,
            "entries_per_request": delta / requests if requests else 0.0,
            # A thread's context is held by its C-level thread state, not by a Python object.
            "source": "outside-python" if outside else "roots",
            "note": ("no Python object holds it: the thread's interpreter state holds its "
                     "contextvars context" if outside else ""),
            **({"bounds": node.bounds} if node.bounds else {}),
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
