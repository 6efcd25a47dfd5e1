"""memprobe's native hammer against Locust (1 and 2 local workers) and wrk, on one server.

One hello-world (Tornado by default: one process, asynchronous, among the fastest here) is
started once; then, T times in turn, each client sends the same load to it: the native hammer
and Locust exactly N requests, wrk for as long as the native hammer took. For each client:
the median throughput, and its CPU per request (user + system of every client process, from
psutil: this process for the native hammer, the Locust master and its workers, wrk), measured
around the load only (Locust's start-up, ~1 s of CPU a process, is left out and printed apart).

    python bench/locust_vs_native.py [-n 20000] [-c 10] [--trials 3] [--framework tornado]
                                     [--json FILE]

Needs memprobe[locust] and wrk (Debian: apt-get install -y wrk). Figures, not pass/fail; on a
machine of two cores the server and the client share them, so every client also takes CPU
from the server it measures.
"""
from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from memprobe.compare import frameworks as catalog  # noqa: E402
from memprobe.http.hammer import Hammer  # noqa: E402
from memprobe.http.locust_engine import LocustEngine, LocustHammer  # noqa: E402
from memprobe.process.child import LOOPBACK, Child, free_port  # noqa: E402


def _cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def native(url: str, n: int, c: int) -> dict[str, Any]:
    me = psutil.Process()
    cpu0 = _cpu([me])
    load = Hammer(url, n, concurrency=c).run()
    cpu = _cpu([me]) - cpu0
    return {"rps": load.throughput_rps, "sent": load.sent, "ok": load.ok, "duration_s": load.duration_s,
            "cpu_us_per_request": cpu / load.sent * 1e6, "p50_ms": load.latency_ms["p50"]}


def locust(engine: LocustEngine, url: str, n: int, c: int) -> dict[str, Any]:
    assert engine.pid is not None
    driver = psutil.Process(engine.pid)
    procs = [driver, *driver.children(recursive=True)]
    cpu0 = _cpu(procs)
    load = LocustHammer(url, n, concurrency=c, engine=engine).run()
    cpu = _cpu(procs) - cpu0
    return {"rps": load.throughput_rps, "sent": load.sent, "ok": load.ok, "duration_s": load.duration_s,
            "cpu_us_per_request": cpu / load.sent * 1e6, "p50_ms": load.latency_ms["p50"]}


def wrk(url: str, duration: float, c: int) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(["wrk", "-t1", f"-c{c}", f"-d{max(1, round(duration))}s", url],
                         capture_output=True, text=True, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    sent = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "sent": sent, "cpu_us_per_request": cpu / sent * 1e6 if sent else float("nan")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20000)
    parser.add_argument("-c", type=int, default=10)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--framework", default="tornado")
    parser.add_argument("--json")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 4
    fw = next(iter(catalog.select(args.framework)))
    port = free_port()
    url = f"http://{LOOPBACK}:{port}/"
    runs: dict[str, list[dict[str, Any]]] = {"native": [], "locust-1": [], "locust-2": [], "wrk": []}
    startup: dict[str, float] = {}
    with Child(fw.command(port), name=fw.name, url=url):
        Hammer(url, 1000, concurrency=args.c).run()
        engines = {}
        for w in (1, 2):
            t0 = time.perf_counter()
            engines[w] = LocustEngine(w).start()
            startup[f"locust-{w}"] = time.perf_counter() - t0
        try:
            for engine in engines.values():
                LocustHammer(url, 1000, concurrency=args.c, engine=engine).run()  # users spawned, warm
            for _ in range(args.trials):
                runs["native"].append(native(url, args.n, args.c))
                for w, engine in engines.items():
                    runs[f"locust-{w}"].append(locust(engine, url, args.n, args.c))
                runs["wrk"].append(wrk(url, runs["native"][-1]["duration_s"], args.c))
        finally:
            for engine in engines.values():
                engine.close()
    rows = []
    print(f"{fw.name} {fw.version()}, -n {args.n} -c {args.c}, median of {args.trials}")
    print(f"{'client':<10} {'req/s':>8} {'CPU us/req':>11} {'sent':>8} {'p50 ms':>7}")
    for name, trials in runs.items():
        mid = sorted(trials, key=lambda r: r["rps"])[len(trials) // 2]
        cpu = sorted(r["cpu_us_per_request"] for r in trials)[len(trials) // 2]
        rows.append({"client": name, "rps": round(mid["rps"], 1), "cpu_us_per_request": round(cpu, 1),
                     "sent": mid["sent"], "p50_ms": mid.get("p50_ms"),
                     "trials_rps": [round(r["rps"], 1) for r in trials]})
        p50 = f"{mid['p50_ms']:.2f}" if "p50_ms" in mid else "-"
        print(f"{name:<10} {mid['rps']:>8.0f} {cpu:>11.1f} {mid['sent']:>8} {p50:>7}")
    print("start-up: " + ", ".join(f"{k} {v:.1f} s" for k, v in startup.items()))
    if args.json:
        Path(args.json).write_text(json.dumps({"framework": fw.name, "version": fw.version(), "n": args.n,
                                               "c": args.c, "trials": args.trials, "rows": rows,
                                               "startup_s": startup}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
