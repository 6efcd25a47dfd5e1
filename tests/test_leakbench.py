"""bench/leakbench.py on two tiny cases: it runs a peer and memprobe, and writes the JSON the issue names."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUMMARY_KEYS = {"cases", "precision", "recall", "false_leaks", "line_top3", "holder_named", "median_s", "max_s"}

APP = '''\
from flask import Flask

app = Flask(__name__)
_kept = []


@app.get("/leak")
def leak():
    _kept.append(bytes(200))
    return "ok"


@app.get("/ok")
def ok():
    return "ok"
'''


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    (tmp_path / "tiny_app.py").write_text(APP)
    manifest = {
        "tiny/leak": {"target": "tiny_app.py:app", "routes": ["/leak"], "verdict": ["leak"], "kind": ["python"],
                      "sites": [["tiny_app.py", 9]], "holders": ["_kept"]},
        "tiny/ok": {"target": "tiny_app.py:app", "routes": ["/ok"], "verdict": ["clean"], "kind": [],
                    "sites": [], "holders": []},
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path


def bench(corpus: Path, only: str, *extra: str) -> dict:
    out = corpus / f"{only}.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "leakbench.py"), str(corpus), "--only", only,
                           "--json", str(out), *extra], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert only in done.stdout  # the table names the contender
    return json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_tracemalloc_diff_finds_the_leak_and_its_line_and_says_why_it_names_no_holder(corpus: Path) -> None:
    report = bench(corpus, "tracemalloc", "--requests", "300", "--warmup", "20")
    result = report["contenders"]["tracemalloc"]
    assert SUMMARY_KEYS <= set(result["summary"])
    assert set(result["cases"]) == {"tiny/leak", "tiny/ok"}
    assert {"verdict", "seconds", "sites"} <= set(result["cases"]["tiny/leak"])
    assert result["cases"]["tiny/leak"]["verdict"] == "leak"
    assert result["summary"]["recall"] == 1.0
    assert result["summary"]["line_top3"] == 1.0
    assert result["summary"]["holder_named"].startswith("n/a: ")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_memprobe_answers_every_case_with_verdict_line_and_holder(corpus: Path) -> None:
    report = bench(corpus, "memprobe", "--memprobe-settings", '{"max_seconds": 6, "warmup": 50}')
    result = report["contenders"]["memprobe"]
    assert SUMMARY_KEYS <= set(result["summary"])
    assert {case["verdict"] for case in result["cases"].values()} <= {"leak", "bounded", "clean"}
    assert result["cases"]["tiny/leak"]["verdict"] == "leak"
    assert result["summary"]["false_leaks"] == 0
