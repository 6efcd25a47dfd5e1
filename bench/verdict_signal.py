"""What the hunt's verdict needs: each signal's slope and noise, traced and untraced.

    python bench/verdict_signal.py [--rounds 8] [--requests 1000] [--warmup 500] [--repeat 1]
                                   [--only flask,list_append,...]
    python bench/verdict_signal.py --hunts [--signals traced,blocks] [--repeat 1]

For the five hello-worlds and a few leak-corpus cases, one child per case and mode (the agent
inside, as ``hunt`` starts it): warm-up, baseline, ``--rounds`` rounds of ``--requests``, each
followed by the agent's reading after ``gc.collect()``. Mode ``traced``: tracemalloc on one
frame deep, as the hunt's rounds run today; ``untraced``: off. Per signal: the least-squares
slope per request, its standard error, and the residual standard deviation of the readings
(the noise, in the signal's own units). Prints a table; figures, not pass/fail.

``--hunts``: whole hunts with each ``--signals`` (defaults), judged as the tests judge them: the
leak corpus on its five frameworks (tests/test_hunt_corpus.py's settings and checks), the five
hello-worlds (``clean``), and the 8 B/request ``_none.append(None)`` leak; verdict and seconds.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from memprobe.compare import frameworks as catalog  # noqa: E402
from memprobe.hunt.probes import compose  # noqa: E402
from memprobe.process.memory import read_memory  # noqa: E402
from memprobe.results.hunt import HuntSettings  # noqa: E402

APPS = ROOT / "bench" / "apps"
SIGNALS = ("traced", "blocks", "objects", "uss")


@dataclass
class Case:
    """One app and route to measure."""

    name: str
    target: str
    cwd: Path
    route: str


def cases() -> list[Case]:
    """The five hello-worlds, then corpus leaks of each kind."""
    out = [Case(fw.name, fw.hello_target, catalog.frameworks_dir(), "/")
           for fw in catalog.select(",".join(catalog.DEFAULT_NAMES))]
    for route in ("ok", "list_append", "none_append", "lru_unbounded", "dict_keyed",
                  "native_malloc", "bounded_cache", "regex_cache"):
        out.append(Case(route, "signal_flask.py:app", APPS, f"/{route}"))
    return out


@dataclass
class Run:
    """One case in one mode: requests per second and each signal's series."""

    case: str
    mode: str
    rps: float = 0.0
    read_ms: float = 0.0
    xs: list[int] = field(default_factory=list)
    ys: dict[str, list[int]] = field(default_factory=dict)


def fit(xs: list[int], ys: list[int]) -> tuple[float, float, float]:
    """Slope, its standard error, and the residual standard deviation."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    res = sum((y - my - slope * (x - mx)) ** 2 for x, y in zip(xs, ys))
    sd = math.sqrt(res / (n - 2))
    return slope, sd / math.sqrt(sxx), sd


def measure(case: Case, trace: bool, rounds: int, requests: int, warmup: int) -> Run:
    """Start the case's app with the agent, run the rounds, read every signal."""
    settings = HuntSettings.chosen(requests=requests, rounds=rounds, warmup=warmup, cwd=case.cwd)
    probe = compose.child(case.target, settings)
    agent = probe.reader
    run = Run(case.name, "traced" if trace else "untraced")
    try:
        probe.open()
        agent._call("begin", trace=trace, objects=True)
        probe.send(case.route, warmup, 0)
        sent, took, reading_s, done = 0, 0.0, 0.0, 0
        for i in range(rounds + 1):
            if i:
                load = probe.send(case.route, requests, warmup + done)
                sent += load.sent
                took += load.duration_s
                done += load.sent
            t0 = time.perf_counter()
            inside = agent._call("baseline" if i == 0 else "measure")
            if i:
                reading_s += time.perf_counter() - t0
            uss = read_memory(agent.pid).uss or 0
            run.xs.append(done)
            values = {"traced": inside.get("traced"), "blocks": inside["blocks"],
                      "objects": inside.get("objects"), "uss": uss - int(inside.get("overhead", 0))}
            for name, value in values.items():
                if value is not None:
                    run.ys.setdefault(name, []).append(int(value))
        run.rps = sent / took if took else 0.0
        run.read_ms = 1000 * reading_s / rounds
    finally:
        probe.close()
    return run


def row(run: Run) -> str:
    cells = [f"{run.case:14s}", f"{run.mode:8s}", f"{run.rps:7.0f}", f"{run.read_ms:6.0f}"]
    for name in SIGNALS:
        ys = run.ys.get(name)
        if not ys:
            cells.append(f"{'-':>22s}")
            continue
        slope, error, sd = fit(run.xs, ys)
        digits = 3 if name in ("blocks", "objects") else 2
        cells.append(f"{slope:+8.{digits}f} ±{error:5.{digits}f} ({sd:7.0f})")
    return " ".join(cells)


def hunts(signals: list[str], repeat: int) -> None:
    """Whole hunts per signal: every corpus verdict, the hello-worlds, the 8 B/request leak."""
    from memprobe.hunt import hunt
    from tests import test_hunt_corpus as corpus

    for _ in range(repeat):
        for signal in signals:
            for name, (target, settings, routes) in corpus.FRAMEWORKS.items():
                t0 = time.monotonic()
                result = hunt(target, routes=[f"/{c}" for c in routes], cwd=corpus.CORPUS,
                              signal=signal, **settings)
                wrong = [p for route in result.routes for p in corpus.problems(route)]
                print(f"{signal:6s} corpus {name:9s} {time.monotonic() - t0:6.1f} s  "
                      f"{len(result.routes) - len({w.split(':')[0] for w in wrong})}/{len(result.routes)} right"
                      + "".join(f"\n    {w}" for w in wrong), flush=True)
            for fw in catalog.select(",".join(catalog.DEFAULT_NAMES)):
                t0 = time.monotonic()
                route = hunt(fw.hello_target, routes=["/"], cwd=catalog.frameworks_dir(), signal=signal).routes[0]
                print(f"{signal:6s} hello  {fw.name:9s} {time.monotonic() - t0:6.1f} s  {route.verdict:8s} "
                      f"{route.judgement.reason}", flush=True)
            t0 = time.monotonic()
            route = hunt("signal_flask.py:app", routes=["/none_append"], cwd=APPS, signal=signal).routes[0]
            print(f"{signal:6s} 8 B/request none_append {time.monotonic() - t0:6.1f} s  {route.verdict:8s} "
                  f"{route.judgement.reason}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--only", default="", help="case names, comma-separated")
    parser.add_argument("--hunts", action="store_true", help="whole hunts per signal instead")
    parser.add_argument("--signals", default="traced,blocks")
    args = parser.parse_args()
    if args.hunts:
        hunts(args.signals.split(","), args.repeat)
        return 0
    only = {n for n in args.only.split(",") if n}
    print("per signal: slope per request ± its standard error (residual SD of the readings, in "
          "the signal's units: bytes, blocks, objects, bytes)")
    print(f"{'case':14s} {'mode':8s} {'req/s':>7s} {'read':>6s} "
          + " ".join(f"{name + (' B' if name in ('traced', 'uss') else ''):>22s}" for name in SIGNALS))
    for _ in range(args.repeat):
        for case in cases():
            if only and case.name not in only:
                continue
            for trace in (True, False):
                print(row(measure(case, trace, args.rounds, args.requests, args.warmup)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
