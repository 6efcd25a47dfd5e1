"""memprobe's hammer against wrk, on the same hello-world server, at the same concurrency.

For each framework: start its hello-world, warm it up, then alternate wrk (C connections, one
thread) and memprobe's hammer (C connections) for D seconds each, T times, and print the median
throughput of each and their ratio. Alternating spreads whatever else the machine does over
both; seven trials because Bottle's wsgiref (backlog 5) drops SYNs at random and a dropped SYN
costs a 1 s retry, which makes three trials of it swing by 10 %. The goal (issue 2): the hammer
reaches at least 90 % of wrk's throughput on every framework, i.e. it measures the server, not
itself.

    python bench/hammer_vs_wrk.py [--duration 5] [--concurrency 10] [--trials 7] [--frameworks a,b]
                                   [--json FILE]

Needs wrk (Debian: apt-get install -y wrk). Figures, not pass/fail.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from memprobe.compare import frameworks as catalog  # noqa: E402
from memprobe.http.hammer import Hammer  # noqa: E402
from memprobe.process.child import LOOPBACK, Child, free_port  # noqa: E402


def run_wrk(url: str, duration: float, connections: int) -> dict[str, float]:
    """wrk's requests/s and its count of non-2xx/socket errors."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", url],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    return {"rps": rps, "errors": errors,
            "p50_ms": float(p50.group(1)) * scale[p50.group(2)] if p50 else float("nan")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--frameworks", default=None)
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 4
    rows = []
    print(f"{'framework':<12} {'wrk req/s':>10} {'memprobe req/s':>15} {'ratio':>7} "
          f"{'wrk p50 ms':>11} {'memprobe p50 ms':>16}")
    for fw in catalog.select(args.frameworks):
        if fw.unavailable or not fw.installed():
            print(f"{fw.name:<12} skipped: {fw.unavailable or 'not installed'}")
            continue
        port = free_port()
        url = f"http://{LOOPBACK}:{port}/"
        with Child(fw.command(port), name=fw.name, url=url):
            Hammer(url, 300, concurrency=args.concurrency).run()  # warm both up alike
            wrks, ours = [], []
            for _ in range(args.trials):
                wrks.append(run_wrk(url, args.duration, args.concurrency))
                ours.append(Hammer(url, concurrency=args.concurrency, duration=args.duration,
                                   timeout=5.0).run())
        wrk = sorted(wrks, key=lambda w: w["rps"])[len(wrks) // 2]
        mine = sorted(ours, key=lambda r: r.throughput_rps)[len(ours) // 2]
        ratio = mine.throughput_rps / wrk["rps"] if wrk["rps"] else float("nan")
        rows.append({"framework": fw.name, "version": fw.version(), "wrk_rps": wrk["rps"],
                     "memprobe_rps": round(mine.throughput_rps, 1), "ratio": round(ratio, 3),
                     "wrk_p50_ms": wrk["p50_ms"], "memprobe_p50_ms": mine.latency_ms["p50"],
                     "memprobe_failed": mine.failed, "wrk_errors": wrk["errors"],
                     "wrk_trials_rps": [w["rps"] for w in wrks],
                     "memprobe_trials_rps": [round(r.throughput_rps, 1) for r in ours]})
        print(f"{fw.name:<12} {wrk['rps']:>10.0f} {mine.throughput_rps:>15.0f} {ratio:>6.0%} "
              f"{wrk['p50_ms']:>11.2f} {mine.latency_ms['p50']:>16.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"duration_s": args.duration,
                                               "concurrency": args.concurrency, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
