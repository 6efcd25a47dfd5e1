"""Scenarios as data: parsing, the request mix, the shipped files, and pooled load results."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from memprobe.compare import scenario
from memprobe.errors import UsageError
from memprobe.http.hammer import Hammer
from memprobe.http.load import LoadResult, merge_loads


def test_the_shipped_scenarios_are_hello_echo_and_crud() -> None:
    assert set(scenario.shipped()) >= {"hello", "echo", "crud"}
    for name in ("hello", "echo", "crud"):
        assert scenario.load(name).name == name


def test_crud_sends_the_published_benchmark_counts_in_its_order() -> None:
    crud = scenario.load("crud")
    assert crud.app == "crud" and crud.records == 1500
    assert [(s.name, s.method) for s in crud.steps] == [
        ("list all", "GET"), ("get one", "GET"), ("create", "POST"), ("update", "PUT"), ("delete", "DELETE")]
    assert crud.counts(None) == [100, 1000, 1000, 1000, 100] and crud.total == 3200
    assert crud.steps[-1].concurrency == 1


def test_echo_posts_json_with_its_content_type() -> None:
    step = scenario.load("echo").steps[0]
    assert step.method == "POST" and step.path == "/echo"
    assert step.headers["Content-Type"] == "application/json"
    assert json.loads(step.body or b"")["message"] == "hello memprobe"


def test_n_is_split_by_weight_and_adds_up_exactly() -> None:
    crud = scenario.load("crud")
    assert crud.counts(320) == [10, 100, 100, 100, 10]
    counts = crud.counts(1001)
    assert sum(counts) == 1001 and counts[1] == counts[2] == counts[3]


def test_every_kind_gets_at_least_one_request() -> None:
    s = scenario.parse({"requests": [{"path": "/", "weight": 1000}, {"path": "/rare", "weight": 1}]})
    assert s.counts(10) == [10, 1]


def test_a_user_scenario_file_is_read_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"requests": [
        {"name": "search", "path": "/search?q={n}", "weight": 3},
        {"name": "post", "method": "post", "path": "/form", "body": "a=1",
         "headers": {"Content-Type": "application/x-www-form-urlencoded"}}]}))
    s = scenario.load(str(path))
    assert s.name == "mine" and s.app == "hello" and s.source == str(path)
    assert s.steps[1].method == "POST" and s.steps[1].body == b"a=1"
    assert s.counts(None) == [3, 1]


@pytest.mark.parametrize("data, message", [
    ([], "expected a JSON object"),
    ({"requests": []}, "non-empty list"),
    ({"requests": [{"path": "items"}]}, "must start with '/'"),
    ({"requests": [{"path": "/", "method": "FETCH"}]}, "method must be one of"),
    ({"requests": [{"path": "/", "weight": 0}]}, "'weight' must be a positive number"),
    ({"requests": [{"path": "/", "json": {}, "body": "x"}]}, "not both"),
    ({"requests": [{"path": "/", "colour": "red"}]}, "unknown key(s) colour"),
    ({"app": "shop", "requests": [{"path": "/"}]}, "app must be one of"),
    ({"requests": [{"name": "a", "path": "/"}, {"name": "a", "path": "/b"}]}, "names must differ"),
])
def test_a_bad_scenario_is_a_usage_error_that_says_what_is_wrong(data: object, message: str) -> None:
    with pytest.raises(UsageError, match=None) as err:
        scenario.parse(data, source="x.json")
    assert message in str(err.value) and "x.json" in str(err.value)


def test_an_unknown_scenario_name_lists_the_shipped_ones() -> None:
    with pytest.raises(UsageError) as err:
        scenario.load("nosuchscenario")
    assert "crud" in str(err.value)


def test_placeholder_counts_from_first_and_wraps_at_cycle() -> None:
    plain = Hammer("http://127.0.0.1:9/items/{n}", 5)
    assert [plain.placeholder(i) for i in range(3)] == [0, 1, 2]
    ids = Hammer("http://127.0.0.1:9/items/{n}", 5, first=1, cycle=3)
    assert [ids.placeholder(i) for i in range(5)] == [1, 2, 3, 1, 2]


def test_merged_loads_add_counts_and_pool_latencies() -> None:
    a, b = LoadResult("u", "keepalive", 10, 5.0), LoadResult("u", "keepalive", 1, 5.0)
    for r, statuses, seconds in ((a, {"200": 3}, 0.001), (b, {"204": 1, "404": 1}, 0.1)):
        r.status_counts.update(statuses)
        r.sent = sum(statuses.values())
        r.ok = sum(v for k, v in statuses.items() if int(k) < 400)
        r.failed = r.sent - r.ok
        r.duration_s = 1.0
        for _ in range(r.sent):
            r.latency.add(seconds)
    total = merge_loads("u", [a, b])
    assert (total.sent, total.ok, total.failed) == (5, 4, 1)
    assert total.status_counts == {"200": 3, "204": 1, "404": 1}
    assert total.duration_s == 2.0 and total.concurrency == 10
    assert total.latency.count == 5 and total.latency.max == pytest.approx(0.1)
