"""A server hunted worker by worker, as the reports show it: the server as a whole (traced heap and
PSS summed over its processes) and each process side by side, in text, Markdown and HTML.

No process runs here: the result is the JSON of a real ``memprobe hunt --cmd "gunicorn -w 2 -k
gthread --threads 2 ..." --route /leak --route /ok`` on tests/servers/workers/wsgi_leaky.py
(tests/fixtures/results/hunt_workers.json), read back as ``memprobe report`` reads it.
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

from memprobe.hunt.model import judge
from memprobe.render import render
from memprobe.results.hunt import HuntResult, Reading, RouteResult

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "results" / "hunt_workers.json"


def saved() -> HuntResult:
    return HuntResult.from_dict(json.loads(FIXTURE.read_text(encoding="utf-8")))


def leak(result: HuntResult) -> RouteResult:
    return next(r for r in result.routes if r.route == "/leak")


def growing(memory: str) -> str:
    """The reason of a series whose outside signal alone grows (a native leak)."""
    readings = [Reading(i * 2000, 1_000_000, 30_000_000 + i * 2000 * 1024) for i in range(6)]
    return judge(readings, memory).reason


def test_the_reason_names_pss_for_a_server_and_uss_for_one_process() -> None:
    assert growing("pss").startswith("PSS grows per request and the Python heap does not (")
    assert "USS" not in growing("pss")
    assert growing("uss").startswith("USS grows per request")
    result = saved()
    route = leak(result)
    assert route.memory == "pss" and "PSS +" in route.judgement.reason and "USS" not in route.judgement.reason
    assert "B/request PSS" in result.summary()


def test_the_text_says_pss_for_the_server_and_has_one_line_per_process() -> None:
    text = render(saved(), "text", width=160)
    header = next(line for line in text.splitlines() if line.startswith("route  verdict"))
    assert "PSS B/req" in header and "USS" not in header
    assert "PSS +" in text.split("/leak: leak (python): ", 1)[1].splitlines()[0]
    workers = [line for line in text.splitlines() if re.match(r"^(/\w+)?\s+\d+\s+(master|worker)\s", line)]
    assert len(workers) == 6  # two routes x (master + 2 workers)
    assert sum(" master " in line for line in workers) == 2
    assert all("wsgi_leaky.py:11" in line and "global _seen" in line
               for line in workers if " worker " in line and " leak " in line)


def test_the_markdown_has_the_server_in_pss_and_a_table_per_worker() -> None:
    result = saved()
    md = render(result, "markdown")
    assert "| route | verdict | kind | traced B/request | PSS B/request | held by |" in md
    assert "## Worker by worker" in md
    rows = [line for line in md.splitlines() if re.match(r"^\| `/\w+` \| \d+ \| (master|worker) \|", line)]
    assert len(rows) == 6
    for w in leak(result).workers:
        row = next(r for r in rows if r.startswith(f"| `/leak` | {w.pid} |"))
        if w.role == "worker":
            assert f"| {w.requests} | **leak** |" in row and "`wsgi_leaky.py:11` (your code)" in row
            assert "global _seen" in row
        else:
            assert "| master | - | **clean** | - |" in row


def test_the_html_shows_the_workers_side_by_side_per_route() -> None:
    result = saved()
    page = render(result, "html")
    # bytes/request; per route: the server's series and the workers' side by side
    assert page.count('class="plot" role="img"') == 1 + 2 * 2
    for route in result.routes:
        assert f'aria-label="memory of each process over the requests it served, route {route.route}"' in page
    assert page.count("<h3>Worker by worker</h3>") == 2
    assert "<th class=\"num\">PSS B/request</th>" in page and "PSS summed over the processes" in page
    table = page.split("<h3>Worker by worker</h3>", 1)[1].split("</table>", 1)[0]
    for w in leak(result).workers:
        assert f'<span class="mono">{w.pid}</span>' in table
    assert table.count('<span class="badge b-leak">leak</span>') == 2
    assert table.count("your code") == 2 and table.count("global _seen") == 2
    served = [w.requests for w in leak(result).workers if w.role == "worker"]
    assert all(f'<td class="num">{n}</td>' in table for n in served)
    assert "<th>respawned</th>" not in table  # no worker was: no empty column
    assert page == render(HuntResult.from_dict(result.to_dict()), "html")


def test_a_respawned_worker_is_named_in_every_format() -> None:
    result = saved()
    route = leak(result)
    dead, other = [w for w in route.workers if w.role == "worker"]
    successor = copy.deepcopy(other)
    successor.pid = 99999
    dead.respawned = {"died_after_requests": 812, "readings": 3, "successor": successor.pid}
    successor.respawned = {"replaces": dead.pid}
    route.workers.append(successor)
    note = f"died after 812 requests, respawned as pid {successor.pid}"
    assert note in render(result, "text", width=200)
    assert note in render(result, "markdown")
    page = render(result, "html")
    assert "<th>respawned</th>" in page and note in page and f"respawned, replaces pid {dead.pid}" in page


def test_a_single_process_hunt_still_says_uss() -> None:
    data = json.loads(FIXTURE.read_text(encoding="utf-8"))
    for r in data["routes"]:
        r["memory"], r["workers"] = "uss", []
    result = HuntResult.from_dict(data)
    assert "USS B/req" in render(result, "text", width=160)
    assert "| USS B/request |" in render(result, "markdown") and "Worker by worker" not in render(result, "markdown")
    page = render(result, "html")
    assert "Worker by worker" not in page and page.count('class="plot" role="img"') == 3
