"""The peers, each run on one case in a fresh interpreter, the way its documentation shows:

    python peers.py METHOD DIR TARGET ROUTES_JSON --warmup W --requests N

prints one JSON answer. Every method: import the app from DIR, send ``W`` warm-up requests,
take the tool's "before", send ``N`` requests, ``gc.collect()``, take its "after". The
decision rule, the same for every case (``THRESHOLD``):

- tracemalloc: ``tracemalloc.start()`` before the warm-up, snapshots before and after
  (``<frozen importlib._bootstrap>`` and ``<unknown>`` filtered, as the docs' example does),
  ``after.compare_to(before, "lineno")``: a leak when the summed ``size_diff`` is at least
  ``THRESHOLD`` B/request; the line: the top 3 entries by ``size_diff``; no holder.
- objgraph: ``objgraph.growth()`` before (the baseline) and after: a leak when a type grew by
  at least ``OBJECTS`` objects per request; the holder: ``find_backref_chain`` from a new object
  of the type that grew most (``get_new_ids``) to a module (``is_proper_module``), as objgraph's
  docs show, named ``module.global``; no line (objgraph counts objects, not allocations).
- heapy: ``hpy().setrelheap()`` before, ``hp.heap()`` after (the seed's method): a leak when the
  new heap's size is at least ``THRESHOLD`` B/request; the holder: the shortest path from the
  root to an object of the largest type in it (``.byid[0].shpaths``); no line (the heap is
  grouped by type, and ``byprod`` needs tracemalloc running, which the seed's method does not).
- memray: run by ``memray run --trace-python-allocators --aggregate`` (what its docs require
  for a leak report); here only the requests: the measured ones go through :func:`measured`,
  so the leak report's stacks through it are the route's (see leaks_memray.py).
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import drive  # noqa: E402

#: B/request of growth a peer's diff must show to call it a leak
THRESHOLD = 4.0
#: objects per request of one type's growth that objgraph's rule calls a leak
OBJECTS = 0.05


def warm(send: drive.Send, next_path: Callable[[], str], count: int) -> None:
    """The warm-up requests (a function of their own: memray's report leaves them out)."""
    for _ in range(count):
        send(next_path())


def measured(send: drive.Send, next_path: Callable[[], str], count: int) -> None:
    """The measured requests (memray's report counts what stays from stacks through here)."""
    for _ in range(count):
        send(next_path())


def by_tracemalloc(send: drive.Send, next_path: Callable[[], str], warmup: int, n: int) -> dict[str, Any]:
    import tracemalloc

    tracemalloc.start()
    warm(send, next_path, warmup)
    gc.collect()
    noise = [tracemalloc.Filter(False, "<frozen importlib._bootstrap>"), tracemalloc.Filter(False, "<unknown>"),
             tracemalloc.Filter(False, tracemalloc.__file__)]
    before = tracemalloc.take_snapshot().filter_traces(noise)
    measured(send, next_path, n)
    gc.collect()
    after = tracemalloc.take_snapshot().filter_traces(noise)
    stats = after.compare_to(before, "lineno")
    growth = sum(s.size_diff for s in stats)
    top = [s for s in sorted(stats, key=lambda s: s.size_diff, reverse=True) if s.size_diff > 0][:3]
    leak = growth / n >= THRESHOLD
    return {"verdict": "leak" if leak else "clean", "bytes_per_request": growth / n,
            "sites": [[s.traceback[0].filename, s.traceback[0].lineno] for s in top] if leak else []}


def _module_global(chain: list[Any]) -> str:
    """``module.name`` for a backref chain that starts at a module, else the chain's types."""
    import types

    if len(chain) >= 2 and isinstance(chain[0], types.ModuleType):
        namespace = vars(chain[0])
        step = chain[2] if len(chain) > 2 and chain[1] is namespace else chain[1]
        for key, value in namespace.items():
            if value is step:
                return f"{chain[0].__name__}.{key} ({' -> '.join(type(o).__name__ for o in chain[2:])})"
    return " -> ".join(type(o).__name__ for o in chain)


def by_objgraph(send: drive.Send, next_path: Callable[[], str], warmup: int, n: int) -> dict[str, Any]:
    import objgraph

    warm(send, next_path, warmup)
    objgraph.get_new_ids(limit=0)  # first: its own bookkeeping is then part of the baseline
    objgraph.growth(limit=None)
    measured(send, next_path, n)
    grown = objgraph.growth(limit=10)  # collects garbage first
    top = [(name, delta) for name, _count, delta in grown]
    leak = bool(top) and top[0][1] / n >= OBJECTS
    holders: list[str] = []
    if leak:
        new = objgraph.get_new_ids(limit=0)
        ids = new.get(top[0][0], set())
        if ids:
            obj = objgraph.at(next(iter(ids)))
            if obj is not None:
                chain = objgraph.find_backref_chain(obj, objgraph.is_proper_module, max_depth=12)
                if len(chain) > 1:
                    holders.append(_module_global(chain))
    return {"verdict": "leak" if leak else "clean", "objects": top[:3], "holders": holders,
            "objects_per_request": top[0][1] / n if top else 0.0}


def by_heapy(send: drive.Send, next_path: Callable[[], str], warmup: int, n: int) -> dict[str, Any]:
    from guppy import hpy

    warm(send, next_path, warmup)
    hp = hpy()
    gc.collect()
    hp.setrelheap()
    measured(send, next_path, n)
    gc.collect()
    heap = hp.heap()
    leak = heap.size / n >= THRESHOLD
    holders: list[str] = []
    if leak and heap.count:
        paths = str(heap.bytype[0].byid[0].shpaths)
        holders = [line.split(":", 1)[-1].strip() for line in paths.splitlines()[:3] if line.strip()]
    return {"verdict": "leak" if leak else "clean", "bytes_per_request": heap.size / n,
            "types": _types(heap), "holders": holders}


def _types(heap: Any) -> list[str]:
    """The top 3 rows of the heap by type, as Heapy prints them."""
    return [line.strip() for line in str(heap.bytype).splitlines()[2:5]] if heap.count else []


def by_memray_driver(send: drive.Send, next_path: Callable[[], str], warmup: int, n: int) -> dict[str, Any]:
    warm(send, next_path, warmup)
    measured(send, next_path, n)
    gc.collect()
    return {}


METHODS = {"tracemalloc": by_tracemalloc, "objgraph": by_objgraph, "heapy": by_heapy, "memray": by_memray_driver}


def main() -> None:
    """One case, one method, one JSON answer on stdout."""
    parser = argparse.ArgumentParser()
    parser.add_argument("method", choices=list(METHODS))
    parser.add_argument("dir", type=Path)
    parser.add_argument("target")
    parser.add_argument("routes")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    send = drive.sender(drive.load(args.target, args.dir.resolve()))
    started = time.monotonic()
    answer = METHODS[args.method](send, drive.paths(json.loads(args.routes)), args.warmup, args.requests)
    answer["tool_s"] = time.monotonic() - started
    sys.stdout.write("\n@@ANSWER@@" + json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
