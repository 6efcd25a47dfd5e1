"""Where ``compare N T`` spends the time it does not spend hammering.

Runs ``python -m memprobe compare N T`` in a subprocess ``--runs`` times and prints, per run,
the wall time (interpreter start to exit), the sum of the hammering durations the JSON reports
(the time the servers need to answer the requests), and their ratio. With ``--breakdown`` it
also runs one comparison in this process with the runner's phases timed from outside (wrapped,
nothing in memprobe prints or keeps these timings): start-up to readiness, the settles, the
readings, the hammering and the stop, per framework, and the CLI's own import time.

    python bench/compare_overhead.py [N] [TIMEOUT] [--runs 3] [--breakdown] [--frameworks a,b]

Figures, not pass/fail.
"""
from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def one_run(n: int, timeout: float, frameworks: str | None, tree: Path = ROOT,
            extra: tuple[str, ...] = ()) -> dict[str, float]:
    """One ``compare`` of the checkout ``tree`` in a subprocess: wall, hammering sum, ratio,
    per-framework throughput."""
    with tempfile.TemporaryDirectory(prefix="memprobe-overhead-") as folder:
        out = Path(folder) / "compare.json"
        argv = [sys.executable, "-m", "memprobe", "compare", str(n), str(timeout), "--quiet", "--no-save",
                "--json", str(out)]
        if frameworks:
            argv += ["--frameworks", frameworks]
        argv += extra
        env = {**os.environ, "PYTHONPATH": str(tree)}
        t0 = time.monotonic()
        subprocess.run(argv, check=False, cwd=tree, env=env, stdout=subprocess.DEVNULL)
        wall = time.monotonic() - t0
        data = json.loads(out.read_text(encoding="utf-8"))
    rows = [r for r in data["results"] if r.get("duration_s")]
    hammer = sum(r["duration_s"] for r in rows)
    figures = {"wall_s": wall, "run_s": data["duration_s"], "hammer_s": hammer, "ratio": wall / hammer}
    figures.update({f"rps:{r['framework']}": r["throughput_rps"] for r in rows})
    return figures


def breakdown(n: int, timeout: float, frameworks: str | None, alone: bool) -> None:
    """One comparison in this process with its phases timed from outside."""
    t_import = time.monotonic()
    from memprobe.compare import frameworks as catalog
    from memprobe.compare import runner
    import_s = time.monotonic() - t_import

    spans: dict[str, list[tuple[str, float, float]]] = collections.defaultdict(list)
    t_origin = time.monotonic()

    def timed(phase: str, fn: Callable[..., Any], fw_of: Callable[..., str] | None = None) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            fw = fw_of(*args, **kwargs) if fw_of else "?"
            t0 = time.monotonic()
            try:
                return fn(*args, **kwargs)
            finally:
                spans[fw].append((phase, t0 - t_origin, time.monotonic() - t0))
        return wrapper

    def label(self: Any, *args: Any, **kwargs: Any) -> str:
        return str(self.label)

    from memprobe.compare.stages import Measurement as stages
    for stage, phase in (("launch", "launch"), ("wait_ready", "wait ready"), ("start", "start (alone)"),
                         ("read_before", "settle+before"), ("hammer", "hammer"),
                         ("read_after", "settle+after"), ("close", "stop")):
        setattr(stages, stage, timed(phase, getattr(stages, stage), label))
    settings = runner.Settings(requests=n, timeout=timeout, overlap=not alone)
    t0 = time.monotonic()
    result = runner.run(catalog.select(frameworks), settings)
    wall = time.monotonic() - t0
    print(f"memprobe imports (in this process): {import_s:.3f} s")
    print(f"runner.run: {wall:.3f} s wall")
    phases = ["launch", "wait ready", "start (alone)", "settle+before", "hammer", "settle+after", "stop"]
    print(f"{'framework':10} " + " ".join(f"{p:>15}" for p in phases) + f" {'ready_s':>8}")
    totals: dict[str, float] = collections.defaultdict(float)
    for fw, rows in spans.items():
        sums: dict[str, float] = collections.defaultdict(float)
        counts: dict[str, int] = collections.defaultdict(int)
        for phase, _, dur in rows:
            sums[phase] += dur
            counts[phase] += 1
        cells = []
        for p in phases:
            cells.append(f"{sums[p]:9.3f} s x{counts[p]}" if counts[p] else f"{'-':>15}")
            totals[p] += sums[p]
        ready = next((r.figures.ready_s for r in result.results if r.name == fw and r.figures), None)
        print(f"{fw:10} " + " ".join(f"{c:>15}" for c in cells) + f" {ready or float('nan'):8.3f}")
    print(f"{'total':10} " + " ".join(f"{totals[p]:13.3f} s" for p in phases))
    hammer = sum(r.figures.load.duration_s for r in result.measured if r.figures and r.figures.load)
    print(f"hammering (the results' durations): {hammer:.3f} s; run/hammering {wall / hammer:.2f}")
    print("timeline (s since run start):")
    for fw, rows in spans.items():
        print(f"  {fw:10} " + ", ".join(f"{p} {t:.2f}+{d:.2f}" for p, t, d in sorted(rows, key=lambda r: r[1])))


def main(argv: list[str] | None = None) -> int:
    """Print the runs side by side, then their medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("requests", nargs="?", type=int, default=2000)
    parser.add_argument("timeout", nargs="?", type=float, default=0.5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--frameworks")
    parser.add_argument("--alone", action="store_true", help="pass --alone to compare")
    parser.add_argument("--tree", action="append", default=[], metavar="DIR",
                        help="also time the compare of another checkout (e.g. main's files, "
                        "unpacked with git archive), interleaved run by run")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time each phase of one in-process run")
    args = parser.parse_args(argv)
    if args.breakdown:
        breakdown(args.requests, args.timeout, args.frameworks, args.alone)
    trees = [("this", ROOT)] + [(str(t), Path(t).resolve()) for t in args.tree]
    extra = ("--alone",) if args.alone else ()
    runs: dict[str, list[dict[str, float]]] = {name: [] for name, _ in trees}
    for _ in range(args.runs):  # interleaved, so that the machine's drift hits every tree alike
        for name, tree in trees:
            runs[name].append(one_run(args.requests, args.timeout, args.frameworks, tree,
                                      extra if tree == ROOT else ()))
    for name, rows in runs.items():
        if not rows:
            continue
        keys = list(rows[0])
        print(f"{name}:")
        print(f"{'run':>6} " + " ".join(f"{k:>14}" for k in keys))
        for i, figures in enumerate(rows, 1):
            print(f"{i:>6} " + " ".join(f"{figures.get(k, float('nan')):14.2f}" for k in keys))
        print(f"{'median':>6} " + " ".join(f"{statistics.median(r.get(k, 0.0) for r in rows):14.2f}"
                                           for k in keys))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
