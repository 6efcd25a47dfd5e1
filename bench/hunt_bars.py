"""Figures for hunt's bars: false leaks on the five hello-worlds over repeated runs, the
smallest leak found with the default settings, and how long a default hunt takes.

    python bench/hunt_bars.py [--repeat 3] [--frameworks flask,bottle,...]

Prints one line per hunt and a summary; figures, not pass/fail.
"""
from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from memprobe.compare import frameworks as catalog  # noqa: E402
from memprobe.hunt import hunt  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--frameworks", default=",".join(catalog.DEFAULT_NAMES))
    args = parser.parse_args()
    verdicts: dict[str, collections.Counter[str]] = {}
    for i in range(args.repeat):
        for fw in catalog.select(args.frameworks):
            name = fw.name
            t0 = time.monotonic()
            result = hunt(fw.hello_target, routes=["/"], cwd=catalog.frameworks_dir())
            took = time.monotonic() - t0
            route = result.routes[0]
            verdicts.setdefault(name, collections.Counter())[route.verdict] += 1
            print(f"run {i + 1} {name:9s} {route.verdict:8s} {took:5.1f} s  {route.judgement.reason}",
                  flush=True)
    t0 = time.monotonic()
    small = hunt("flask_app.py:app", routes=["/list_append"], cwd=ROOT / "tests" / "leak_corpus")
    print(f"sensitivity: one small int per request -> {small.summary()} "
          f"({time.monotonic() - t0:.1f} s)")
    print("hello-worlds:", ", ".join(f"{k} {dict(v)}" for k, v in verdicts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
