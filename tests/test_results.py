"""The result layer: one envelope, a typed result per kind that reads back what it wrote, and
medians over rounds with a rule per field. Runs no process: the JSON is what real runs wrote
before the result layer existed (tests/fixtures/results)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from memprobe.errors import UsageError
from memprobe.http.load import LoadResult
from memprobe.process.memory import MemoryReading
from memprobe.results import KINDS, load, read
from memprobe.results.compare import FrameworkResult, Round
from memprobe.results.envelope import KEYS, SCHEMA
from memprobe.results.rounds import median_round, missing
from tests.helpers.json_keys import key_paths

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "results"


def fixture(kind: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{kind}.json").read_text(encoding="utf-8"))


def leaves(data: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf value by its path (list items by index)."""
    if isinstance(data, dict):
        return {k: v for key, value in data.items() for k, v in leaves(value, f"{prefix}.{key}").items()}
    if isinstance(data, list) and data:
        return {k: v for i, value in enumerate(data) for k, v in leaves(value, f"{prefix}[{i}]").items()}
    return {prefix: data}


@pytest.mark.parametrize("kind", ["compare", "hunt", "check", "hammer"])
def test_a_result_read_back_keeps_every_key_and_every_figure_of_its_json(kind: str) -> None:
    data = fixture(kind)
    again = read(data, f"{kind}.json").to_dict()
    assert key_paths(data) <= key_paths(again)
    old, new = leaves(data), leaves(again)
    assert {path: value for path, value in old.items() if new.get(path) != value} == {}


@pytest.mark.parametrize("kind", ["compare", "hunt", "check", "hammer"])
def test_every_result_has_the_envelope_and_reads_back_what_it_wrote(kind: str) -> None:
    written = read(fixture(kind), kind).to_dict()
    assert list(written)[:len(KEYS)] == list(KEYS)
    assert written["schema"] == SCHEMA and written["result"] == kind
    assert isinstance(written["settings"], dict)
    assert read(json.loads(json.dumps(written)), kind).to_dict() == written


def test_a_live_result_reads_the_machine_once_and_a_saved_one_keeps_its_own() -> None:
    data = fixture("hammer")
    data["machine"] = {"python": "3.99", "cpus": 64}
    assert read(data, "x").to_dict()["machine"] == {"python": "3.99", "cpus": 64}
    live = KINDS["hammer"]({k: v for k, v in data.items() if k != "machine"})
    live.envelope.machine = None
    machine = live.to_dict()["machine"]
    assert machine["cpus"] and machine is not live.to_dict()["machine"]


@pytest.mark.parametrize("data, words", [
    ([], "not a memprobe result"),
    ({"result": "hunt"}, "not a hunt result this memprobe can read (no 'target'"),
    ({"result": "compare", "settings": {}, "results": [{}]}, "not a compare result this memprobe can read"),
    ({"result": "check", "target": "x", "checklist": [],
      "findings": [{"rule": "MP101", "severity": "???", "file": "a", "line": 1, "title": "", "message": ""}]},
     "not a check result"),
])
def test_what_is_not_a_result_fails_in_from_dict_naming_the_file(data: Any, words: str) -> None:
    with pytest.raises(UsageError, match="^bad.json: ") as err:
        read(data, "bad.json")
    assert words in str(err.value) and err.value.exit_code == 2


def test_load_names_the_file_it_could_not_read(tmp_path: Path) -> None:
    path = tmp_path / "garbage.json"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(UsageError, match="garbage.json"):
        load(path)


# -- medians over rounds ------------------------------------------------------------------------

def a_round(pid: int, uss: int | None, sent: int, ok: int, rps: float, p50: float) -> Round:
    load = LoadResult(url="http://127.0.0.1:1/", mode="keepalive", concurrency=10, timeout_s=0.5, sent=sent,
                      ok=ok, failed=sent - ok, status_counts={"200": ok}, duration_s=sent / rps,
                      rate=rps, percentiles={"p50": p50, "p99": 2 * p50})
    return Round(pid=pid, url=f"http://127.0.0.1:{pid}/", ready_s=0.1 * pid,
                 before=MemoryReading(rss=10_000, vms=50_000, uss=8_000, pss=9_000, swap=0),
                 after=MemoryReading(rss=10_000 + pid, vms=50_000, uss=uss, pss=9_001, swap=0), load=load,
                 samples={"requests": [pid]})


def test_medians_are_real_medians_of_each_field() -> None:
    rounds = [a_round(1, 8_001, 100, 100, 900.0, 1.0), a_round(2, 8_002, 100, 98, 1000.0, 2.0)]
    median = median_round(rounds)
    assert median.after is not None and median.after.rss == 10_002  # median of 10_001 and 10_002, rounded
    assert median.ready_s == 0.15
    assert median.load is not None
    assert median.load.throughput_rps == 950.0 and median.load.latency_ms["p50"] == 1.5
    assert median.change is not None and median.change["rss"] == 2  # the median of the changes (1, 2)


def test_a_row_of_medians_still_adds_up() -> None:
    rounds = [a_round(1, 8_001, 100, 90, 900.0, 1.0), a_round(2, 8_001, 100, 99, 900.0, 1.0),
              a_round(3, 8_001, 80, 80, 900.0, 1.0)]
    load = median_round(rounds).load
    assert load is not None and (load.sent, load.ok, load.failed) == (100, 90, 10)
    assert load.sent == load.ok + load.failed


def test_what_names_a_round_comes_from_the_first_and_every_pid_is_kept() -> None:
    rounds = [a_round(1, 8_001, 100, 100, 900.0, 1.0), a_round(2, 8_003, 100, 100, 900.0, 1.0)]
    median = median_round(rounds)
    assert median.pid == 1 and median.url == "http://127.0.0.1:1/" and median.samples == {"requests": [1]}
    row = FrameworkResult("flask", "Flask", "3.0", "werkzeug", rounds=rounds).to_dict()
    assert row["pids"] == [1, 2] and len(row["rounds"]) == 2 and row["spread"]["uss_after"]["max"] == 8_003


def test_a_figure_some_rounds_lack_is_the_median_of_the_others_and_is_named() -> None:
    rounds = [a_round(1, 8_001, 100, 100, 900.0, 1.0), a_round(2, None, 100, 100, 900.0, 1.0),
              a_round(3, 8_005, 100, 100, 900.0, 1.0)]
    median = median_round(rounds)
    assert median.after is not None and median.after.uss == 8_003
    assert missing(rounds) == ["after.uss: round 2 of 3"]
    assert FrameworkResult("flask", rounds=rounds).to_dict()["missing"] == ["after.uss: round 2 of 3"]
    assert "missing" not in FrameworkResult("flask", rounds=rounds[:1] + rounds[2:]).to_dict()
