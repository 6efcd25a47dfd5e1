"""Inside the measured process: the chain of referrers from objects that grew back to a root
(runs in the agent), for holders the roots scan does not reach.

objgraph's ``find_backref_chain``, breadth-first over referrers from objects whose tracemalloc
traceback includes the site's line, one ``gc.get_referrers`` pass over the heap per level, until
a root: any module's globals, any class (its attributes: a library's class-level store), a
thread's contextvars context, an event loop, or (last) a running function's variables. The
path is named in the user's terms: ``class cherrypy.lib.sessions.RamSession.cache (dict, 10,500
entries)``.

When no root is reached, the chain of referrers ends at objects no Python object refers to:
something in C or in the interpreter holds them; the answer says so, where the chain ends and
what was searched, with ``"source": "outside-python"``.
"""
from __future__ import annotations

import collections
import contextvars
import gc
import itertools
import operator
import os
import sys
import time
import tracemalloc
from collections.abc import Iterator
from types import FrameType, ModuleType
from typing import Any

from memprobe.agent import interp
from memprobe.agent.holders import CONTAINERS, short_repr, user_modules

_HERE = os.path.dirname(os.path.abspath(__file__))
#: the roots' ranks: a module's, a class's, a thread's or a loop's before a running frame's
_FRAME_RANK = 1
#: entries an untracked container needs to be taken for a store that grew per request
_STORE_MIN = 32
#: objects whose referents one gc.get_referents call returns, in the search for untracked ones
_CHUNK = 1000
_KINDS = frozenset((dict, tuple, list))


def _module_step(module: ModuleType, user: set[int]) -> str:
    if id(module) in user:
        return f"module {os.path.basename(getattr(module, '__file__', '') or module.__name__)}"
    return f"module {module.__name__}"


def _roots() -> dict[int, tuple[tuple[str, ...], Any]]:
    """``{id: (steps naming it, the object)}`` for the roots other than classes and frames."""
    user = {id(m) for m in user_modules()}
    out: dict[int, tuple[tuple[str, ...], Any]] = {}
    for module in list(sys.modules.values()):
        if isinstance(module, ModuleType):
            out[id(vars(module))] = ((_module_step(module, user),), vars(module))
    for thread, ctx in interp.thread_contexts():
        out[id(ctx)] = ((f"thread {thread}", "contextvars context"), ctx)
    for loop in interp.event_loops():
        label = (f"event loop {type(loop).__module__}.{type(loop).__qualname__} "
                 f"(thread {interp.loop_thread(loop)})")
        out[id(loop)] = ((label,), loop)
    return out


def _own_frame(obj: Any) -> bool:
    return isinstance(obj, FrameType) and obj.f_code.co_filename.startswith(_HERE)


def _excluded(obj: Any) -> bool:
    return type(obj).__name__ in ("cell", "generator", "coroutine", "async_generator") or _own_frame(obj)


def backref_chain(filename: str, lineno: int, max_objects: int = 5, max_depth: int = 12,
                  budget_s: float = 5.0) -> dict[str, Any] | None:
    """The shortest referrer chain from a root to objects allocated at ``filename:lineno``
    (None when no live object was allocated there). Answers ``chain`` (steps from the root),
    ``type`` and ``entries`` of the biggest container on it and ``source``: ``referrers``, or
    ``outside-python`` with a ``note`` when the referrers end before any root."""
    started = time.monotonic()
    targets = _targets(filename, lineno, max_objects)
    if not targets:
        return None
    roots = _roots()
    paths: dict[int, list[Any]] = {id(obj): [obj] for obj in targets}
    # The search's own lists refer to the objects too: never a holder.
    mine = {id(p) for p in paths.values()}
    seen = set(paths)
    frontier = list(targets)
    ends: list[list[Any]] = []
    levels, stopped = 0, ""
    for level in range(1, max_depth + 1):
        levels = level
        if level > 1 and time.monotonic() - started > budget_s:
            stopped = f"stopped after {budget_s:g} s, its time budget"
            break
        wanted = {id(o) for o in frontier}
        found: dict[int, list[Any]] = {}
        referred: set[int] = set()
        best: tuple[int, list[Any], tuple[str, ...]] | None = None
        bookkeeping = {id(frontier), id(targets), id(paths), id(found), id(roots), id(ends)} | mine
        for ref in gc.get_referrers(*frontier):
            if id(ref) in bookkeeping or _excluded(ref):
                continue
            children = [c for c in gc.get_referents(ref) if id(c) in wanted]
            if not children:
                continue
            referred.update(id(c) for c in children)
            if id(ref) in seen:
                continue
            seen.add(id(ref))
            path = [ref] + paths[id(children[0])]
            mine.add(id(path))
            rank, head = _rank(ref, roots)
            if head and (best is None or rank > best[0]):
                best = (rank, path, head)
            found[id(ref)] = path
        if best is not None:
            return _describe(best[2], best[1])
        ends += [paths[id(o)] for o in frontier if id(o) not in referred]
        if not found:
            break
        paths.update(found)
        frontier = [p[0] for p in list(found.values())[:500]]
    return _outside(filename, lineno, len(targets), levels, ends, stopped or (
        f"no root within {max_depth} levels" if frontier and levels == max_depth else ""),
        time.monotonic() - started)


def _targets(filename: str, lineno: int, wanted: int, sample: int = 200) -> list[Any]:
    """Objects allocated at ``filename:lineno``, of the type most of them have (a singleton
    that happened to be made there first is not what grows). Dicts and tuples of atomic values
    are not tracked by the collector: they are looked for among the tracked objects' referents
    when no tracked object was made there, and failing them the untracked dicts and lists whose
    newest entry was made there (the holder itself, then)."""
    def made_there(obj: Any) -> bool:
        tb = tracemalloc.get_object_traceback(obj)
        return tb is not None and any(f.filename == filename and f.lineno == lineno for f in tb)

    def last_made_there(container: Any) -> bool:
        if len(container) < _STORE_MIN:
            return False
        if type(container) is dict:
            key = next(reversed(container))
            return made_there(key) or made_there(container[key])
        return made_there(container[-1])

    # The heap is filtered by map and compress, with no frame of this module's per object: a
    # test process holds a million objects, and a Python test on each cost seconds. ``heap``
    # is deleted before the referrer search, where it would be every object's referrer.
    heap = gc.get_objects()
    traced = itertools.compress(heap, map(tracemalloc.get_object_traceback, heap))
    found = list(itertools.islice(filter(made_there, traced), sample))
    if not found:
        # Untracked objects made there, or else the untracked containers whose newest entry
        # was (a library's dict of tuples: the collector tracks neither it nor its entries).
        ids: set[int] = set()
        holding: list[Any] = []
        for start in range(0, len(heap), _CHUNK):
            for child in _untracked_containers(heap[start:start + _CHUNK]):
                if id(child) in ids:
                    continue
                ids.add(id(child))
                if made_there(child):
                    found.append(child)
                elif type(child) is not tuple and not holding and last_made_there(child):
                    holding.append(child)
            if len(found) >= sample or (holding and not found):
                break
        found = found or holding
    del heap, traced
    if not found:
        return []
    common = collections.Counter(type(o) for o in found).most_common(1)[0][0]
    return [o for o in found if type(o) is common][-wanted:]


def _untracked_containers(objs: list[Any]) -> Iterator[Any]:
    """The dicts, tuples and lists among ``objs``' referents that the collector does not track."""
    refs = gc.get_referents(*objs)
    kinds = list(itertools.compress(refs, map(_KINDS.__contains__, map(type, refs))))
    return itertools.compress(kinds, map(operator.not_, map(gc.is_tracked, kinds)))


def _rank(ref: Any, roots: dict[int, tuple[tuple[str, ...], Any]]) -> tuple[int, tuple[str, ...]]:
    if id(ref) in roots:
        return 2, roots[id(ref)][0]
    if isinstance(ref, type):
        return 2, (f"class {ref.__module__}.{ref.__qualname__}",)
    if isinstance(ref, FrameType):
        code = ref.f_code
        return _FRAME_RANK, (f"a running {code.co_name}() ({os.path.basename(code.co_filename)}:"
                             f"{ref.f_lineno})",)
    return 0, ()


def _describe(head: tuple[str, ...], path: list[Any]) -> dict[str, Any]:
    """The chain from a root (``path[0]``), cut at its biggest container."""
    if type(path[0]) is contextvars.Context:
        # The context's mapping is a tree of C nodes: named by the variable that holds it.
        ctx = path[0]
        held = {id(value): var for var, value in ctx.items()}
        at = next((i for i, o in enumerate(path) if id(o) in held), None)
        tail = ([f"[{held[id(path[at])].name}]"] + _steps(path[at:], from_module=False)
                if at is not None else [])
        return {"chain": list(head) + tail, "type": "Context", "entries": len(ctx),
                "source": "outside-python",
                "note": "no Python object holds it: the thread's interpreter state holds its "
                        "contextvars context"}
    sizes = [(len(o), i) for i, o in enumerate(path) if i > 0 and issubclass(type(o), CONTAINERS)
             and not _is_attrs(path[i - 1], o)]
    index = max(sizes)[1] if sizes else len(path) - 1
    entries = max(sizes)[0] if sizes else 0
    return {"chain": list(head) + _steps(path[:index + 1]), "type": type(path[index]).__name__,
            "entries": entries, "source": "referrers"}


def _is_attrs(parent: Any, child: Any) -> bool:
    """Whether ``child`` is ``parent``'s attribute dict (a class's, reached through the type)."""
    if getattr(parent, "__dict__", None) is child:
        return True
    return isinstance(parent, type) and isinstance(child, dict) and any(
        c is child for c in gc.get_referents(parent.__dict__))


def _steps(path: list[Any], from_module: bool = True) -> list[str]:
    """The steps from ``path[0]`` down; ``from_module``: ``path[0]`` is a module's globals."""
    steps: list[str] = []
    attrs: set[int] = set()
    for i, (parent, child) in enumerate(zip(path, path[1:])):
        if _is_attrs(parent, child):
            attrs.add(id(child))
            continue
        steps.append(_step(parent, child, first=i == 0 and from_module, attrs=id(parent) in attrs))
    return steps


def _step(parent: Any, child: Any, first: bool, attrs: bool) -> str:
    if isinstance(parent, FrameType):
        for key, value in parent.f_locals.items():
            if value is child:
                return f"local {key}"
        return f"-> {type(child).__name__}"
    if type(parent).__name__ == "Context":
        for var, value in parent.items():
            if value is child:
                return f"[{var.name}]"
        return f"-> {type(child).__name__}"
    if isinstance(parent, dict):
        for key, value in parent.items():
            if value is child:
                if first and not attrs:
                    return f"global {key}"
                return f".{key}" if attrs else f"[{short_repr(key)}]"
        return "(a dict key)"
    if isinstance(parent, (list, tuple, collections.deque)):
        for i, value in enumerate(parent):
            if value is child:
                return f"[{i}]"
    if isinstance(parent, (set, frozenset)) and interp.is_timer(child):
        return "scheduled timers"
    attrs_dict = getattr(parent, "__dict__", None)
    if isinstance(attrs_dict, dict):
        for key, value in attrs_dict.items():
            if value is child:
                return f".{key}"
    return f"-> {type(child).__name__}"


def _outside(filename: str, lineno: int, objects: int, levels: int, ends: list[list[Any]],
             stopped: str, took: float) -> dict[str, Any]:
    """No root reached: where the referrers end, and what was searched."""
    searched = (f"searched {levels} level{'s' if levels != 1 else ''} of referrers from {objects} "
                f"object{'s' if objects != 1 else ''} allocated at {os.path.basename(filename)}:"
                f"{lineno} for a module, a class, a thread's context or an event loop "
                f"({took:.1f} s{'; ' + stopped if stopped else ''})")
    end = max(ends, key=len) if ends else None
    if end is None:
        return {"chain": ["(no chain)"], "type": "", "entries": 0, "source": "outside-python",
                "note": f"no root found: {searched}"}
    last = end[0]
    kind = type(last).__name__
    size = len(last) if issubclass(type(last), CONTAINERS) else 0
    steps = [f"{kind} (referred to by no Python object)"] + _steps(end, from_module=False)
    note = (f"their only referrers are not Python objects: the chain ends at a {kind}, which "
            f"something in C or in the interpreter holds; {searched}")
    return {"chain": steps, "type": kind, "entries": size, "source": "outside-python", "note": note}
