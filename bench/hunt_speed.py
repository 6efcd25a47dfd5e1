"""How long hunt takes to decide, and what it decides, on the bars of issue #16: the 5-route
leaky example, one Flask route, a Tornado and a CherryPy route, the one-int-per-request leak,
and a route allocating 50,000 short strings per request.

    python bench/hunt_speed.py [--protocol both|default|thorough] [--cases a,b] [--cap 300]
                               [--jobs auto|N]

``thorough`` is today's fixed protocol (500 warm-up + 5 x 2,000 requests per route, as
``--thorough``); ``default`` the sequential one. Prints one line per case and protocol
(verdicts, seconds, requests measured, sensitivity) and a side-by-side table; figures, not
pass/fail. ``--cap`` ends a case that runs longer (its line says so). ``--jobs``: children
hunting a case's routes side by side, as ``hunt --jobs`` (default ``auto``
here, the faster choice on an idle machine; the CLI's default is 1).
"""
from __future__ import annotations

import argparse
import inspect
import multiprocessing
import signal
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from memprobe.hunt import hunt  # noqa: E402

FRAMEWORKS = ROOT / "frameworks"
CASES: dict[str, tuple[str, list[str] | None, Path]] = {
    "leaky_example": ("app.py:app", None, ROOT / "examples" / "leaky_flask"),
    "flask_route": ("hello_flask.py:app", ["/"], FRAMEWORKS),
    "tornado_route": ("hello_tornado.py:make_app()", ["/"], FRAMEWORKS),
    "cherrypy_route": ("hello_cherrypy.py:wsgi_app()", ["/"], FRAMEWORKS),
    "one_int_leak": ("flask_app.py:app", ["/list_append"], ROOT / "tests" / "leak_corpus"),
    "heavy_50k_strings": ("heavy_flask.py:app", ["/export"], ROOT / "bench" / "apps"),
}


def _one(case: str, protocol: str, out: Any, jobs: str) -> None:
    # The cap ends this child with SIGTERM: as in the CLI, it takes Ctrl-C's path, so that the
    # hunt's `finally` blocks stop its app and remove its channel folder (the default action
    # would end the process there and then, and leave /tmp/memprobe-hunt-* behind).
    signal.signal(signal.SIGTERM, _interrupt)
    target, routes, cwd = CASES[case]
    options: dict[str, Any] = {}
    if "jobs" in inspect.signature(hunt).parameters:
        options["jobs"] = jobs
    if protocol == "thorough" and "thorough" in inspect.signature(hunt).parameters:
        options["thorough"] = True
    t0 = time.monotonic()
    try:
        result = hunt(target, routes=routes, cwd=cwd, **options)
    except KeyboardInterrupt:
        return
    took = time.monotonic() - t0
    rows = []
    for r in result.routes:
        d = r.to_dict()
        sens = (d.get("sensitivity_b_per_request") or {}).get("traced")
        rows.append((r.route, r.verdict, r.requests, sens, d.get("stopped_because")))
    out.send((took, rows))


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def run(case: str, protocol: str, cap: float, jobs: str = "auto") -> tuple[float | None, list[Any]]:
    """One hunt in a child process (so ``cap`` can end it): seconds and per-route rows."""
    recv, send = multiprocessing.Pipe(duplex=False)
    proc = multiprocessing.Process(target=_one, args=(case, protocol, send, jobs))
    proc.start()
    if recv.poll(cap):
        took, rows = recv.recv()
        proc.join()
        return took, rows
    proc.terminate()
    proc.join(30)
    return None, []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="both", choices=("both", "default", "thorough"))
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--cap", type=float, default=300.0, help="seconds before a case is ended")
    parser.add_argument("--jobs", default="auto", help="children per hunt, as hunt --jobs (default auto)")
    args = parser.parse_args()
    protocols = ["thorough", "default"] if args.protocol == "both" else [args.protocol]
    table: dict[str, dict[str, str]] = {}
    for case in args.cases.split(","):
        for protocol in protocols:
            took, rows = run(case, protocol, args.cap, args.jobs)
            if took is None:
                shown = f"> {args.cap:.0f} s (ended, no verdict)"
            else:
                verdicts = " ".join(f"{route}={verdict}" for route, verdict, *_ in rows)
                shown = f"{took:5.1f} s  {verdicts}"
            for route, verdict, requests, sens, why in rows:
                print(f"  {case} [{protocol}] {route}: {verdict} after {requests:,} requests"
                      f"{'' if sens is None else f', sees >= {sens:g} B/request'}"
                      f"{'' if why is None else f' ({why})'}", flush=True)
            print(f"{case:18s} {protocol:8s} {shown}", flush=True)
            table.setdefault(case, {})[protocol] = shown.strip().split("  ")[0]
    print("\ncase               " + "  ".join(f"{p:>24s}" for p in protocols))
    for case, cols in table.items():
        print(f"{case:18s} " + "  ".join(f"{cols.get(p, ''):>24s}" for p in protocols))
    return 0


if __name__ == "__main__":
    sys.exit(main())
