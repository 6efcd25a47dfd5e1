"""Memory timelines in mprof's ``.dat`` format (``--mprof FILE``), so ``mprof plot FILE`` draws them.

memory_profiler's ``mprof run`` writes ``CMDLINE <command>``, then one ``MEM <MiB> <seconds since
the epoch>`` line per reading of the main process, ``CHLD <name> <MiB> <seconds>`` per reading of
each child process (``mprof plot`` draws one line per name, labelled ``child <name>``), and
``FUNC <name> <MiB at start> <start> <MiB at end> <end>`` for a profiled function's span (drawn
as brackets on the main line). Here:

* ``compare``: each framework's server is a child named after the framework (``flask``, with
  ``#2``... for its later rounds), its RSS as sampled while it was hammered; the main line is the
  RSS of the server measured at each moment (``compare`` measures one at a time).
* ``hunt``: the main line is the outside signal (USS of the process, or PSS summed over a
  server's processes) at each reading, each route a ``FUNC`` span over its readings; a server
  hunted worker by worker has one child per process (``pid1234``), its own USS. Routes hunted
  side by side (``--jobs``) are read in separate children at once: each route is also a child
  of its own name, so that each process has its line, and the main line is every reading in
  time order.

Results read back from JSON written before the timestamps were kept are laid out one after the
other, a second apart, from the envelope's start.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from memprobe.render import renders
from memprobe.results.compare import CompareResult
from memprobe.results.hunt import HuntResult, Reading

_MIB = 1024 * 1024


def _mem(value: float) -> str:
    return f"{value / _MIB:.6f}"


def _started(result: Any) -> float:
    """The envelope's start, in seconds since the epoch (now when unknown)."""
    try:
        return datetime.fromisoformat(str(result.envelope.started)).timestamp()
    except (AttributeError, TypeError, ValueError):
        return datetime.now().timestamp()


@renders("mprof", "compare")
def compare(result: CompareResult) -> str:
    """``compare``'s RSS timelines: one child per framework (and round), the main line the
    server measured at each moment."""
    cursor = _started(result)
    main: list[tuple[float, int]] = []
    children: list[str] = []
    for row in result.results:
        for i, rnd in enumerate(r for r in row.rounds if r.samples):
            samples: dict[str, Any] = rnd.samples or {}
            start = samples.get("started")
            t0 = float(start) if start is not None else cursor
            name = row.name if i == 0 else f"{row.name}#{i + 1}"
            for dt, rss in zip(samples.get("t_s") or [], samples.get("rss") or []):
                if rss is None:
                    continue
                when = t0 + float(dt)
                main.append((when, int(rss)))
                children.append(f"CHLD {name} {_mem(rss)} {when:.4f}")
                cursor = max(cursor, when + 1.0)
    main.sort()
    return _dat(f"memprobe compare {' '.join(r.name for r in result.results)}",
                [f"MEM {_mem(m)} {t:.4f}" for t, m in main] + children)


@renders("mprof", "hunt")
def hunt(result: HuntResult) -> str:
    """``hunt``'s timelines: the outside signal at each reading, one span per route, one child
    per process of a server hunted worker by worker."""
    cursor = _started(result)
    main: list[tuple[float, int]] = []
    lines: list[str] = []
    apart = isinstance(result.settings.jobs, int) and result.settings.jobs > 1
    for route in result.routes:
        times = _times(route.readings, cursor)
        points = [(t, r.uss) for t, r in zip(times, route.readings) if r.uss is not None]
        main += points
        if apart:
            lines += [f"CHLD {route.route} {_mem(m)} {t:.4f}" for t, m in points]
        if points:
            (t_a, m_a), (t_b, m_b) = points[0], points[-1]
            lines.append(f"FUNC {route.route} {_mem(m_a)} {t_a:.4f} {_mem(m_b)} {t_b:.4f}")
        for worker in route.workers:
            # A worker read at each of the route's readings: its own times, or the route's.
            own = _times(worker.readings, cursor) if all(r.t for r in worker.readings) else times
            lines += [f"CHLD pid{worker.pid} {_mem(r.uss)} {t:.4f}"
                      for t, r in zip(own, worker.readings) if r.uss is not None]
        if times:
            cursor = times[-1] + 1.0
    main.sort()
    return _dat(f"memprobe hunt {result.target}", [f"MEM {_mem(m)} {t:.4f}" for t, m in main] + lines)


def _times(readings: list[Reading], cursor: float) -> list[float]:
    """Each reading's time; a second apart from ``cursor`` where it was not kept."""
    out: list[float] = []
    for reading in readings:
        cursor = reading.t if reading.t is not None else (out[-1] + 1.0 if out else cursor)
        out.append(cursor)
    return out


def _dat(cmdline: str, lines: list[str]) -> str:
    return "\n".join([f"CMDLINE {cmdline}", *lines]) + "\n"
