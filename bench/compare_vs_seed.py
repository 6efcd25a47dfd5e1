"""A whole ``compare N T`` against the seed's method, wall time side by side.

The seed (pythonMicroframeworks' compare.py 0.4.2), step by step as ../shared/STUDIES.md reads
it: start all the hello-worlds at once as independent children, sleeping 0.3 s after each start
(1.0 s after cherrypy, 0.5 s after tornado); sleep 2 s; read ``memory_info()`` of each; sleep
1 s; then, one framework after the other, start one thread per request, each doing
``requests.get(url, timeout=T)``, and join them all; sleep 2 s; read memory again; terminate
all. This script does exactly that on memprobe's own hello-worlds, times it, then times
``python -m memprobe compare N T`` in a subprocess, and prints both side by side.

    python bench/compare_vs_seed.py [N] [TIMEOUT] [--frameworks a,b]

Needs requests (``pip install "memprobe[bench]"``). Figures, not pass/fail.
"""
from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402

from memprobe.compare import frameworks as catalog  # noqa: E402

LOOPBACK = "127.0.0.1"
#: the seed's sleep after starting each server (seconds); 0.3 s for the others
START_SLEEP = {"cherrypy": 1.0, "tornado": 0.5}


def _port() -> int:
    # The seed used fixed ports; a port the kernel just gave out is as good for a benchmark.
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _storm(url: str, n: int, timeout: float) -> tuple[int, float]:
    """The seed's load: ``n`` threads, one ``requests.get`` each, all started, then joined."""
    import requests

    ok = [0]
    lock = threading.Lock()

    def call() -> None:
        try:
            if requests.get(url, timeout=timeout).status_code == 200:
                with lock:
                    ok[0] += 1
        except requests.RequestException:
            pass

    t0 = time.monotonic()
    threads = [threading.Thread(target=call) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ok[0], time.monotonic() - t0


def seed_method(frameworks: list[catalog.Framework], n: int, timeout: float) -> dict[str, dict[str, float]]:
    """The seed's whole run over ``frameworks``; per framework: successes, storm time, rss."""
    procs: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    figures: dict[str, dict[str, float]] = {}
    try:
        for fw in frameworks:
            port = _port()
            procs[fw.name] = (subprocess.Popen(fw.command(port), stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL), f"http://{LOOPBACK}:{port}/")
            time.sleep(START_SLEEP.get(fw.name, 0.3))
        time.sleep(2)
        for name, (proc, _) in procs.items():
            figures[name] = {"rss_before": psutil.Process(proc.pid).memory_info().rss}
        time.sleep(1)
        for name, (_, url) in procs.items():
            ok, storm_s = _storm(url, n, timeout)
            figures[name].update(ok=ok, storm_s=storm_s)
        time.sleep(2)
        for name, (proc, _) in procs.items():
            figures[name]["rss_after"] = psutil.Process(proc.pid).memory_info().rss
    finally:
        for proc, _ in procs.values():
            proc.terminate()
        for proc, _ in procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("requests", nargs="?", type=int, default=2000)
    parser.add_argument("timeout", nargs="?", type=float, default=0.5)
    parser.add_argument("--frameworks", default=None)
    args = parser.parse_args()
    frameworks = [fw for fw in catalog.select(args.frameworks) if fw.installed() and not fw.unavailable]
    names = ",".join(fw.name for fw in frameworks)

    print(f"seed method: {args.requests} requests x {len(frameworks)} frameworks, timeout {args.timeout:g} s")
    seed_start = time.monotonic()
    seed = seed_method(frameworks, args.requests, args.timeout)
    seed_wall = time.monotonic() - seed_start

    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "compare.json"
        start = time.monotonic()
        subprocess.run([sys.executable, "-m", "memprobe", "compare", str(args.requests),
                        str(args.timeout), "--frameworks", names, "--quiet", "--no-save",
                        "--json", str(report)], check=False)
        ours_wall = time.monotonic() - start
        ours = {r["framework"]: r for r in json.loads(report.read_text())["results"]}

    print(f"\n{'framework':<10} {'seed ok':>8} {'seed storm s':>13} {'seed req/s':>11} "
          f"{'memprobe ok':>12} {'memprobe load s':>16} {'memprobe req/s':>15}")
    for name, s in seed.items():
        o = ours.get(name, {})
        req = o.get("requests", {})
        print(f"{name:<10} {s['ok']:>8.0f} {s['storm_s']:>13.2f} {args.requests / s['storm_s']:>11.0f} "
              f"{req.get('ok', 0):>12} {o.get('duration_s', float('nan')):>16.2f} "
              f"{o.get('throughput_rps', 0):>15.0f}")
    print(f"\nwhole run: seed method {seed_wall:.1f} s, memprobe compare {ours_wall:.1f} s "
          f"({ours_wall / seed_wall:.0%} of the seed's time)")
    print("memprobe also reads uss, pss, swap, a memory time series, latency percentiles and "
          "the status histogram, which the seed does not.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
