"""A whole ``compare 2000 0.5`` against the seed's method, wall time side by side.

The seed (pythonMicroframeworks' compare.py): start each hello-world, sleep 2 s, read
``memory_info()``, start one thread per request each doing ``requests.get(url, timeout=T)``,
join them, sleep 2 s, read memory again. This script re-implements that method faithfully on
the same hello-worlds, times it, then times ``python -m memprobe compare N T`` in a subprocess,
and prints both wall times, success rates and the ratio. Goal (issue 2): memprobe takes at most
half the seed's wall time while measuring more.

    python bench/compare_vs_seed.py [N] [TIMEOUT] [--frameworks a,b]

Needs requests (pip install requests). Figures, not pass/fail.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402

from memprobe.compare import frameworks as catalog  # noqa: E402
from memprobe.process.child import LOOPBACK, Child, free_port  # noqa: E402


def seed_method(fw: catalog.Framework, n: int, timeout: float) -> dict[str, float]:
    """The seed's measurement of one framework; returns its figures."""
    import requests

    port = free_port()
    url = f"http://{LOOPBACK}:{port}/"
    ok = [0]
    lock = threading.Lock()

    def call() -> None:
        try:
            if requests.get(url, timeout=timeout).status_code == 200:
                with lock:
                    ok[0] += 1
        except requests.RequestException:
            pass

    start = time.monotonic()
    # The seed slept 2 s after Popen instead of polling; the readiness poll below costs less
    # than that, so the seed's figure here is, if anything, flattering to the seed.
    with Child(fw.command(port), name=fw.name, url=url) as child:
        time.sleep(2)
        before = psutil.Process(child.pid).memory_info().rss
        t0 = time.monotonic()
        threads = [threading.Thread(target=call) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        hammer_s = time.monotonic() - t0
        time.sleep(2)
        after = psutil.Process(child.pid).memory_info().rss
    return {"wall_s": time.monotonic() - start, "hammer_s": hammer_s, "ok": ok[0],
            "rss_before": before, "rss_after": after}


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
    seed = {fw.name: seed_method(fw, args.requests, args.timeout) for fw in frameworks}
    seed_wall = time.monotonic() - seed_start

    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "compare.json"
        start = time.monotonic()
        subprocess.run([sys.executable, "-m", "memprobe", "compare", str(args.requests),
                        str(args.timeout), "--frameworks", names, "--quiet", "--no-save",
                        "--json", str(report)], check=False)
        ours_wall = time.monotonic() - start
        ours = {r["framework"]: r for r in json.loads(report.read_text())["results"]}

    print(f"\n{'framework':<10} {'seed s':>7} {'seed ok':>8} {'seed hammer s':>14} "
          f"{'memprobe s':>11} {'memprobe ok':>12} {'memprobe req/s':>15}")
    for name, s in seed.items():
        o = ours.get(name, {})
        req = o.get("requests", {})
        print(f"{name:<10} {s['wall_s']:>7.1f} {s['ok']:>8} {s['hammer_s']:>14.2f} "
              f"{o.get('duration_s', float('nan')):>11.2f} {req.get('ok', 0):>12} "
              f"{o.get('throughput_rps', 0):>15.0f}")
    print(f"\nwhole run: seed method {seed_wall:.1f} s, memprobe compare {ours_wall:.1f} s "
          f"({ours_wall / seed_wall:.0%} of the seed's time)")
    print("memprobe also reads uss, pss, swap, a memory time series, latency percentiles and "
          "the status histogram, which the seed does not.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
