"""watch's rolling report: built from simulated windows, written atomically, read back by
``memprobe report`` as text, Markdown and HTML, the advice with its figures or its reason, and
the OpenMetrics endpoint scraped over real HTTP on loopback."""
from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from memprobe.cli import main
from memprobe.render import render
from memprobe.results import load
from memprobe.results.watch import CgroupReading, WatchResult, Window, write_atomically
from memprobe.watch.advice import SHARE
from memprobe.watch.analysis import Analysis
from memprobe.watch.report import build_report
from tests.test_watch_analysis import simulate

MIB = 2**20


def leaking_server(seconds: int = 1200) -> Analysis:
    """Two workers; GET /a keeps 2 blocks a request; USS read from outside grows with it
    (4 KiB pages: 2 blocks x 64 B x 20 requests/s a worker)."""
    analysis = Analysis()
    uss: dict[int, float] = {}
    for w in simulate(seconds, leak={"GET /a": 2.0}):
        grown = uss.setdefault(w.pid, 40 * MIB) + 128.0 * w.requests.get("GET /a", 0)
        uss[w.pid] = grown
        analysis.add(Window(w.pid, w.start, w.end, w.requests, w.blocks, w.heap_bytes, int(grown * 1.1),
                            int(grown) // 4096 * 4096, w.max_in_flight, w.alone_deltas, int(grown * 0.9)))
    return analysis


LIMIT = CgroupReading(2, "/app.service", limit=512 * MIB, usage=200 * MIB,
                      breakdown={"anon": 150 * MIB, "file": 40 * MIB, "kernel": 10 * MIB, "sock": 0},
                      events={"oom": 0, "oom_kill": 0})


@pytest.fixture(scope="module")
def report() -> WatchResult:
    return build_report(leaking_server(), cgroup=LIMIT, settings={"pid": 4242, "interval_s": 1.0})


def test_the_report_names_the_leak_and_gives_the_advice_with_its_figures(report: WatchResult) -> None:
    assert report.verdict == "leak"
    assert [r.route for r in report.routes if r.verdict == "leak"] == ["GET /a"]
    advice = report.advice
    assert advice is not None and advice.given, advice
    assert advice.gunicorn.startswith("--max-requests ") and "--max-requests-jitter" in advice.gunicorn
    assert advice.uvicorn.startswith("--limit-max-requests ")
    assert advice.share == SHARE and advice.budget_from == "cgroup"
    # the bound holds: a fresh worker plus N+J requests at the pessimistic growth stays under the share
    n, jitter = (int(x) for x in advice.gunicorn.split()[1::2])
    f = advice.figures
    assert f["fresh_size"] + (n + jitter) * (f["growth_per_request"] - 0.001) <= SHARE * advice.budget_per_worker
    assert advice.time_to_limit_s is not None and advice.time_to_limit_s.value > 0
    assert all(w.time_to_limit_s is not None for w in report.workers if w.alive)
    assert len(report.timeline.t) > 10 and "GET /a" in report.timeline.retained


def test_the_advice_is_withheld_without_a_leak_or_without_a_budget() -> None:
    clean = build_report(leaking_server(30), cgroup=LIMIT)
    assert clean.advice is not None and not clean.advice.given and "withheld" in clean.advice.reason
    no_limit = build_report(leaking_server(), cgroup=CgroupReading(2, "/", None, 100 * MIB))
    assert no_limit.advice is not None and not no_limit.advice.given and "--budget" in no_limit.advice.reason
    budget = build_report(leaking_server(), cgroup=None, budget=256 * MIB)
    assert budget.advice is not None and budget.advice.given and budget.advice.budget_from == "--budget"


def test_written_atomically_and_read_back_by_report(report: WatchResult, tmp_path: Path) -> None:
    path = write_atomically(report, tmp_path / "watch.json")
    assert [p.name for p in tmp_path.iterdir()] == ["watch.json"]  # no temporary file left
    data = json.loads(path.read_text())
    assert data["result"] == "watch" and data["verdict"] == "leak"
    again = load(path)
    assert isinstance(again, WatchResult)
    assert again.to_dict() == data
    for fmt in ("text", "markdown"):
        assert render(again, fmt) == render(report, fmt)


def test_a_failed_write_leaves_the_last_report(report: WatchResult, tmp_path: Path) -> None:
    path = write_atomically(report, tmp_path / "watch.json")
    before = path.read_text()
    report.settings["bad"] = object()  # not JSON
    try:
        with pytest.raises(TypeError):
            write_atomically(report, path)
    finally:
        del report.settings["bad"]
    assert path.read_text() == before and os.listdir(tmp_path) == ["watch.json"]


def test_text_markdown_and_html(report: WatchResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_atomically(report, tmp_path / "watch.json")
    assert main(["report", str(path)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("memprobe watch pid 4242: ")  # what was watched, then the headline
    assert text.splitlines()[1].startswith("LEAK on GET /a: GET /a keeps")
    assert "Routes (the server)" in text and "recycling: gunicorn --max-requests" in text
    assert "cgroup v2 /app.service: usage 200.0 MiB of 512.0 MiB" in text
    md = render(report, "markdown")
    assert "| GET /a |" in md and "### Workers" in md
    pytest.importorskip("matplotlib")
    assert main(["report", str(path), "-o", str(tmp_path / "watch.html")]) == 0
    html = (tmp_path / "watch.html").read_text()
    assert "<svg" in html and "cumulative bytes retained per route" in html and "GET /a" in html


def test_the_metrics_endpoint_over_real_http(report: WatchResult) -> None:
    pytest.importorskip("prometheus_client")
    from prometheus_client.parser import text_string_to_metric_families

    from memprobe.watch.metrics import serve_metrics

    server = serve_metrics(lambda: report, "127.0.0.1:0")
    try:
        assert server.host == "127.0.0.1" and server.port > 0
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as response:
            body = response.read().decode()
    finally:
        server.stop()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(body) for s in family.samples}
    a = next(r for r in report.routes if r.route == "GET /a")
    assert a.bytes is not None
    assert samples[("memprobe_watch_route_retained_bytes_per_request",
                    (("route", "GET /a"), ("verdict", "leak")))] == pytest.approx(a.bytes.value)
    live = [w for w in report.workers if w.alive]
    for w in live:
        assert samples[("memprobe_watch_worker_uss_bytes", (("pid", str(w.pid)),))] == w.uss
        assert ("memprobe_watch_worker_time_to_limit_seconds", (("pid", str(w.pid)),)) in samples
    assert samples[("memprobe_watch_cgroup_limit_bytes", ())] == 512 * MIB


def test_a_missing_prometheus_client_names_its_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from memprobe.errors import MissingDependency
    from memprobe.watch.metrics import serve_metrics

    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(MissingDependency, match=r"pip install memprobe\[watch\]"):
        serve_metrics(lambda: None)
