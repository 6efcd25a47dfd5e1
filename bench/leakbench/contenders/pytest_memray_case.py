"""pytest-memray's ``limit_leaks`` on one case, as its docs show: a test that sends the measured
requests through the framework's test client (the warm-up in a fixture, outside the tracked
body), marked ``@pytest.mark.limit_leaks(LIMIT)``, run with ``pytest --memray`` and
``PYTHONMALLOC=malloc``. The rule: the test fails (one stack location leaked more than
``THRESHOLD`` B/request x the requests) -> leak. The line: per leaked location listed, the
innermost frame in the app's folder (``--stacks 40``: Python frames among the native ones)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from answer import Answer, Contender

HERE = Path(__file__).resolve().parent
CONTENDER = Contender("pytest-memray", kind="n/a: limit_leaks passes or fails, with no native-vs-Python verdict",
                      holder="n/a: memray reports where memory was allocated, not who holds it")
THRESHOLD = 4.0

TEST = '''\
import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, {contenders!r})
import drive  # noqa: E402


@pytest.fixture(scope="module")
def app():
    send = drive.sender(drive.load(os.environ["LB_TARGET"], Path(os.environ["LB_DIR"])))
    next_path = drive.paths(json.loads(os.environ["LB_ROUTES"]))
    for _ in range(int(os.environ["LB_WARMUP"])):
        send(next_path())
    return send, next_path


@pytest.mark.limit_leaks({limit!r})
def test_route(app):
    send, next_path = app
    for _ in range(int(os.environ["LB_REQUESTS"])):
        send(next_path())
'''
FRAME = re.compile(r"^\s+\S+:(/\S+):(\d+)$")


def run(directory: Path, case: dict[str, Any], warmup: int, requests: int, timeout: float) -> Answer:
    """The case's answer by pytest-memray's ``limit_leaks``."""
    started = time.monotonic()
    limit = f"{int(THRESHOLD * requests)}B"
    with tempfile.TemporaryDirectory() as tmp:
        test = Path(tmp) / "test_route.py"
        test.write_text(TEST.format(contenders=str(HERE), limit=limit))
        env = {**os.environ, "PYTHONMALLOC": "malloc", "LB_TARGET": case["target"], "LB_DIR": str(directory),
               "LB_ROUTES": json.dumps(case["routes"]), "LB_WARMUP": str(warmup), "LB_REQUESTS": str(requests)}
        try:
            done = subprocess.run([sys.executable, "-m", "pytest", "--memray", "--stacks", "40", "-q",
                                   "-p", "no:cacheprovider", "-p", "no:locust", "-o", "addopts=", "--rootdir", tmp,
                                   str(test)], capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp)
        except subprocess.TimeoutExpired:
            return Answer(None, time.monotonic() - started, error=f"timed out after {timeout:.0f} s")
    seconds = time.monotonic() - started
    if done.returncode == 0:
        return Answer("clean", seconds, detail={"limit": limit})
    if "allowed to leak" not in done.stdout:
        tail = (done.stdout.strip().splitlines() or ["no output"])[-1]
        return Answer(None, seconds, error=f"pytest exit {done.returncode}: {tail[:200]}")
    return Answer("leak", seconds, sites=_sites(done.stdout, directory), detail={"limit": limit})


def _sites(output: str, directory: Path) -> list[tuple[str, int]]:
    """Per leaked location (biggest first, as listed), its innermost frame in ``directory`` (the
    bench's own driver, when the corpus is bench/leakbench, is not the app's code)."""
    report = output.split("List of leaked allocations:", 1)[-1].split("MEMRAY REPORT", 1)[0]
    root = str(directory.resolve())
    sites: list[tuple[str, int]] = []
    for block in report.split("allocated here:")[1:]:
        for line in block.splitlines():
            match = FRAME.match(line)
            if match and match.group(1).startswith(root) and not match.group(1).startswith(str(HERE)):
                site = (Path(match.group(1)).name, int(match.group(2)))
                if site not in sites:
                    sites.append(site)
                break
    return sites[:3]
