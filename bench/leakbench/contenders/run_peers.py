"""Run a peer (peers.py, or memray around it) on one case in a fresh interpreter, and read its answer."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from answer import Answer, Contender

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers.py"

CONTENDERS = {
    "tracemalloc": Contender("tracemalloc", kind="n/a: sees only Python's allocators, so no native-vs-Python verdict",
                             holder="n/a: a snapshot diff names where memory was allocated, not who holds it"),
    "objgraph": Contender("objgraph", kind="n/a: counts Python objects only, so no native-vs-Python verdict",
                          line="n/a: growth() counts objects by type; it records no allocation line"),
    "heapy": Contender("heapy", kind="n/a: sees Python objects only, so no native-vs-Python verdict",
                       line="n/a: the heap diff groups by type; byprod needs tracemalloc, which the seed's "
                            "method does not run"),
    "memray": Contender("memray", kind="n/a: memray reports allocations, with no native-vs-Python verdict",
                        holder="n/a: memray reports where memory was allocated, not who holds it"),
}
#: B/request of the measured requests' leaked allocations that memray's rule calls a leak
MEMRAY_THRESHOLD = 4.0


def _run(cmd: list[str], timeout: float) -> tuple[dict[str, Any] | None, str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    for line in done.stdout.splitlines():
        if line.startswith("@@ANSWER@@"):
            return json.loads(line.removeprefix("@@ANSWER@@")), ""
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return None, f"exit {done.returncode}: {tail[:200]}"


def run(name: str, directory: Path, case: dict[str, Any], warmup: int, requests: int,
        timeout: float) -> Answer:
    """``name``'s answer on ``case`` (a manifest entry), by its rule in peers.py."""
    args = [str(PEERS), name, str(directory), case["target"], json.dumps(case["routes"]),
            "--warmup", str(warmup), "--requests", str(requests)]
    started = time.monotonic()
    if name != "memray":
        got, error = _run([sys.executable, *args], timeout)
        seconds = time.monotonic() - started
        if got is None:
            return Answer(None, seconds, error=error)
        return Answer(got["verdict"], seconds, sites=[(Path(f).name, n) for f, n in got.get("sites", [])],
                      holders=got.get("holders", []), detail={k: v for k, v in got.items()
                                                               if k not in ("verdict", "sites", "holders")})
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.bin"
        got, error = _run([sys.executable, "-m", "memray", "run", "--trace-python-allocators", "--aggregate",
                           "-q", "-o", str(out), *args], timeout)
        if got is None:
            return Answer(None, time.monotonic() - started, error=error)
        answer = memray_leaks(out, directory, requests)
    answer.seconds = time.monotonic() - started
    return answer


def memray_leaks(path: Path, directory: Path, requests: int) -> Answer:
    """memray's leak report, read with its FileReader: the allocations still alive at exit whose
    stack goes through peers.measured (the measured requests). A leak when they add up to
    ``MEMRAY_THRESHOLD`` B/request; the line: per record, the innermost frame in the app's
    folder (the user's code), ranked by bytes."""
    from memray import FileReader

    reader = FileReader(str(path))
    total = 0
    by_line: dict[tuple[str, int], int] = {}
    root = str(directory.resolve())
    for record in reader.get_leaked_allocation_records(merge_threads=True):
        stack = record.stack_trace()
        if not any(fn == "measured" and file == str(PEERS) for fn, file, _ in stack):
            continue
        total += record.size
        user = next(((file, line) for _, file, line in stack
                     if file.startswith(root) and not file.startswith(str(HERE))), None)
        if user is not None:
            key = (Path(user[0]).name, user[1])
            by_line[key] = by_line.get(key, 0) + record.size
    leak = total / requests >= MEMRAY_THRESHOLD
    top = sorted(by_line, key=lambda k: -by_line[k])[:3] if leak else []
    return Answer("leak" if leak else "clean", 0.0, sites=top, detail={"bytes_per_request": total / requests})
