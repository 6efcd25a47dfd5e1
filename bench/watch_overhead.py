"""What ``memprobe watch`` costs a server: throughput and p99 latency with watch off and on,
side by side in one run, and tracemalloc left on for comparison.

The app is bench/apps/watch_shop.py (five routes, a Jinja template, sqlite) under
``gunicorn -w 2``; the load is wrk (a Lua script spreading requests over the routes, a POST
among them) at C connections for D seconds per trial; the configurations alternate, trial after
trial, so that a drift of the machine hits them alike, and each row is the median of its trials.

* ``off``: the server as deployed;
* ``watch``: the same command started by ``memprobe watch --cmd`` on its default settings (10 s
  windows: each trial of 20 s sees two collections) but no attribution window: what watch
  costs between them;
* ``capture``: ``watch`` also capturing ``POST /orders`` (``--capture``, redacting ``note``);
* ``window``: ``watch`` (2 s windows, so that one opens soon) with an attribution window open
  in one of the two workers during the whole trial, on its defaults (one request in 200
  traced, 8 frames deep, for 0.5 % of the worker's time at most: ``--trace-share``); the trial
  starts once the report says one opened and its screening seconds are over (the app keeps
  ~100 B per gift order, so watch has something to trace); ``window:F`` is the same with
  ``--trace-share F``;
* ``tracemalloc``: the server with ``PYTHONTRACEMALLOC=1`` (1 frame), as left on in production;
* ``memray``: ``memray attach`` (its gdb method, the default on Python 3.11) in both workers for
  the trial, recording to a file, as its docs show for a running process.

    nice -n 19 python bench/watch_overhead.py [--duration 20] [--trials 3] [--connections 16] [--configs off,watch]

Needs wrk (Debian: apt-get install -y wrk). Figures, not pass/fail.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from memprobe.agent.watch_trace import SCREEN_S  # noqa: E402

APPS = ROOT / "bench" / "apps"
LUA = """
local paths = {"/", "/items/17", "/items/1234", "/search?q=12", "/health", "/items/99", "/search?q=7"}
local i = 0
request = function()
  i = i + 1
  if i % 8 == 0 then
    local gift = (i % 16 == 0) and "1" or "0"
    local form = {["Content-Type"] = "application/x-www-form-urlencoded"}
    return wrk.format("POST", "/orders", form, "note=hello&gift=" .. gift)
  end
  return wrk.format("GET", paths[i % #paths + 1])
end
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


WATCH = {
    "watch": ["--no-trace"],
    "capture": ["--no-trace", "--capture", "{tmp}/orders.jsonl", "--capture-route", "POST /orders", "--redact", "note"],
    "window": ["--interval", "2", "--trace-every", "1", "--trace-seconds", "3600", "--trace-requests", "100000000"],
}


def start(config: str, port: int, json_path: str) -> subprocess.Popen[bytes]:
    cmd = f"gunicorn -w 2 -b 127.0.0.1:{port} --chdir {APPS} watch_shop:app"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if config == "tracemalloc":
        env["PYTHONTRACEMALLOC"] = "1"
    config, _, share = config.partition(":")
    if config in WATCH:
        extra = [a.replace("{tmp}", os.path.dirname(json_path)) for a in WATCH[config]]
        extra += ["--trace-share", share] if share else []
        argv = [sys.executable, "-m", "memprobe", "watch", "--cmd", cmd, "--json", json_path, "--quiet", *extra]
    else:
        argv = cmd.split()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                break
        except OSError:
            time.sleep(0.1)
    if config in WATCH:  # the workers record once the first report is written
        while not os.path.exists(json_path) and time.monotonic() < deadline:
            time.sleep(0.1)
    return proc


def window_opened(json_path: str) -> bool:
    """Whether watch's report says an attribution window opened."""
    try:
        notes = json.loads(Path(json_path).read_text(encoding="utf-8")).get("notes") or []
    except (OSError, ValueError):
        return False
    return any("attribution window opened" in n for n in notes)


def attach_memray(server: int, seconds: float, folder: str) -> list[subprocess.Popen[bytes]]:
    """``memray attach`` in each worker of the server for ``seconds``; returns once attached."""
    import psutil

    workers = [c.pid for c in psutil.Process(server).children(recursive=True) if "gunicorn" in " ".join(c.cmdline())]
    procs = [subprocess.Popen(["memray", "attach", "--duration", f"{seconds:g}", "-f", "-o",
                               os.path.join(folder, f"memray-{pid}.bin"), str(pid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for pid in workers]
    time.sleep(8)  # gdb's attach and memray's start in each worker
    return procs


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)  # watch detaches and stops the server it started
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_wrk(port: int, duration: float, connections: int, script: str) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration:g}s", "--latency", "-s", script,
                          f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    return {"rps": rps, "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--configs", default="off,watch,capture,window,tracemalloc,memray",
                        help="the configurations to run, comma-separated (off first: the others are compared to it)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 4
    configs = tuple(args.configs.split(","))
    results: dict[str, list[dict[str, float]]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "mix.lua")
        Path(script).write_text(LUA, encoding="utf-8")
        for trial in range(args.trials):
            for config in configs:
                port = free_port()
                proc = start(config, port, os.path.join(tmp, f"watch-{trial}.json"))
                json_path = os.path.join(tmp, f"watch-{trial}.json")
                attached: list[subprocess.Popen[bytes]] = []
                try:
                    run_wrk(port, 2, args.connections, script)  # warm-up
                    windowed = config.startswith("window")
                    for _ in range(30 if windowed else 0):
                        if window_opened(json_path):
                            run_wrk(port, SCREEN_S + 1, args.connections, script)  # its screening: nothing traced
                            break
                        run_wrk(port, 2, args.connections, script)  # the leak grows until a window opens
                    else:
                        if windowed:
                            print("no attribution window opened: the trial runs without one", file=sys.stderr)
                    if config == "memray":
                        attached = attach_memray(proc.pid, args.duration + 20, tmp)
                    results[config].append(run_wrk(port, args.duration, args.connections, script))
                finally:
                    for a in attached:
                        a.wait(60)
                    stop(proc)
    base = statistics.median(r["rps"] for r in results["off"])
    base_p99 = statistics.median(r["p99_ms"] for r in results["off"])
    print(f"gunicorn -w 2 (sync), wrk -c{args.connections} {args.duration:g} s x {args.trials} trials, medians")
    print(f"{'config':<14} {'req/s':>9} {'vs off':>8} {'p99 ms':>8} {'vs off':>8}   trials (req/s p99)")
    for config in configs:
        rps = statistics.median(r["rps"] for r in results[config])
        p99 = statistics.median(r["p99_ms"] for r in results[config])
        trials = ", ".join(f"{r['rps']:.0f} {r['p99_ms']:.2f}" for r in results[config])
        print(f"{config:<14} {rps:>9.0f} {rps / base - 1:>+8.1%} {p99:>8.2f} {p99 / base_p99 - 1:>+8.1%}   {trials}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
