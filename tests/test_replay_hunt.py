"""``memprobe hunt --replay`` end to end, on tests/servers/capture/orders.py: a leak that needs a
POST body with ``"gift": true`` and ids that vary is invisible to a plain hunt and found by the
replay of the requests production recorded; the pytest plugin turns the capture file into a
regression test; a file that cannot be replayed is one line, exit 2, nothing started."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from memprobe.capture.format import CapturedRequest, CaptureHeader, write_capture
from memprobe.errors import UsageError
from tests.conftest import SERVERS, run_cli
from tests.helpers.capture_files import HEADER, order, orders_capture
from tests.test_hunt_cli import run_hunt

pytest_plugins = ["pytester"]

APP = SERVERS / "capture" / "orders.py"
FIXED = SERVERS / "capture" / "orders_fixed.py"
#: planted leak of ~250 B/request on average (512 B for every other order): a coarse target
FAST = ["--sensitivity", "64", "--warmup", "300"]
LEAK_LINE = next(i for i, line in enumerate(APP.read_text().splitlines(), 1) if "_gift_wraps[" in line)


@pytest.mark.timeout(180)
def test_a_plain_hunt_of_orders_says_clean_whether_it_gets_or_posts_without_the_gift(
        tmp_path: Path, no_orphans: None) -> None:
    get = run_hunt(f"{APP}:app", "--route", "/orders", *FAST, "--json", str(tmp_path / "get.json"))
    post = run_hunt(f"{APP}:app", "--route", "/orders", "-X", "POST", "-H", "Content-Type: application/json",
                    "--body", '{"id": 7}', *FAST, "--json", str(tmp_path / "post.json"))

    for proc, name in ((get, "get"), (post, "post")):
        assert proc.returncode == 0, proc.stdout + proc.stderr
        data = json.loads((tmp_path / f"{name}.json").read_text())
        assert [(r["route"], r["verdict"]) for r in data["routes"]] == [("/orders", "clean")]


@pytest.mark.timeout(180)
def test_the_replay_finds_the_leak_on_post_orders_its_line_and_its_dict_and_names_the_varied_field(
        tmp_path: Path, no_orphans: None) -> None:
    capture = orders_capture(tmp_path / "orders.jsonl")
    proc = run_hunt(f"{APP}:app", "--replay", str(capture), *FAST, "--json", str(tmp_path / "out.json"))

    assert proc.returncode == 1, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "out.json").read_text())
    routes = {r["route"]: r for r in data["routes"]}
    assert {k: r["verdict"] for k, r in routes.items()} == {"POST /orders": "leak", "GET /orders": "clean"}
    leak = routes["POST /orders"]
    top = leak["sites"][0]
    assert (Path(top["file"]).name, top["line"]) == ("orders.py", LEAK_LINE)
    assert leak["holders"][0]["description"].startswith("module orders.py, global _gift_wraps (dict, ")
    said = ("POST /orders: replayed 8 recorded requests, cycled; fields numbered on: json id (int); "
            "redacted values filled with one of their shape: header authorization")
    assert said in leak["notes"]
    assert data["settings"]["replay"] == str(capture)
    assert f"the routes and requests replayed from the capture file {capture}" in data["notes"]
    text = " ".join(proc.stdout.split())
    assert "LEAK on POST /orders" in text and said in text
    # the placeholder's shape was filled: no redacted value, and no placeholder, reached a report
    assert "<redacted" not in proc.stdout + (tmp_path / "out.json").read_text()


@pytest.mark.timeout(180)
def test_a_replay_whose_ids_repeat_does_not_grow_which_is_why_replay_numbers_varied_ids_on(
        tmp_path: Path, no_orphans: None) -> None:
    # The same gift orders, every one with id 1041: the dict keyed on the id holds one wrap after
    # the first request, and stays so. Production's ids vary; a replay that repeated its sample
    # would call this leak clean.
    capture = orders_capture(tmp_path / "same.jsonl", ids_vary=False)
    proc = run_hunt(f"{APP}:app", "--replay", str(capture), "--route", "POST /orders", *FAST,
                    "--json", str(tmp_path / "out.json"))

    assert proc.returncode == 0, proc.stdout + proc.stderr
    route = json.loads((tmp_path / "out.json").read_text())["routes"][0]
    assert (route["route"], route["verdict"]) == ("POST /orders", "clean")
    assert any("fields numbered on: none" in n for n in route["notes"])


@pytest.mark.timeout(180)
def test_a_replay_the_app_rejects_is_an_errors_verdict_naming_the_statuses_received_and_recorded(
        tmp_path: Path, no_orphans: None) -> None:
    # recorded as accepted (201), but without the id this app now requires: every answer is 400
    rejected = [CapturedRequest("POST /orders", "POST", "/orders", "", {"content-type": "application/json"},
                                json.dumps({"gift": True, "n": i}).encode(), status=201) for i in range(3)]
    capture = write_capture(tmp_path / "old.jsonl", HEADER, rejected)
    proc = run_hunt(f"{APP}:app", "--replay", str(capture), *FAST, "--json", str(tmp_path / "out.json"))

    assert proc.returncode == 6, proc.stdout + proc.stderr
    route = json.loads((tmp_path / "out.json").read_text())["routes"][0]
    assert route["verdict"] == "errors"
    assert "the app rejected every replayed request (" in route["reason"]
    assert " x 400) where the capture recorded 3 x 201" in route["reason"]
    assert "add what the replayed requests lack with -H" in proc.stderr


def bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Capture files replay refuses, and what its one line says of each."""
    good = orders_capture(tmp_path / "good.jsonl").read_text()
    lines = good.splitlines(keepends=True)
    malformed = tmp_path / "malformed.jsonl"
    malformed.write_text(lines[0] + '{"route": "POST /orders", "method": \n')
    truncated = tmp_path / "truncated.jsonl"
    truncated.write_text(good[:-40])
    other = tmp_path / "v2.jsonl"
    other.write_text(good.replace('{"memprobe_capture": 1,', '{"memprobe_capture": 2,', 1))
    cut = write_capture(tmp_path / "cut.jsonl", CaptureHeader(limits={"body": 64}),
                        [order(1, True, 0.0), CapturedRequest("POST /orders", "POST", "/orders", "",
                                                              {"content-type": "application/json"},
                                                              b'{"id": 2, "gift": tr', body_truncated=True)])
    return {"malformed": (malformed, "not JSON"), "truncated": (truncated, "truncated"),
            "other version": (other, "a capture file of version 2"),
            "cut body": (cut, "request 2 (POST /orders) was recorded with its body cut at the capture limit "
                              "of 64 bytes"),
            "missing": (tmp_path / "nowhere.jsonl", "cannot read the capture file")}


@pytest.mark.timeout(60)
def test_a_capture_file_that_cannot_be_replayed_is_one_line_exit_2_and_the_app_never_starts(
        tmp_path: Path, no_orphans: None) -> None:
    started = tmp_path / "started"
    app = tmp_path / "app.py"
    app.write_text(f"open({str(started)!r}, 'w').close()\n"
                   "def app(environ, start_response):\n"
                   "    start_response('200 OK', [])\n    return [b'ok']\n")
    for name, (path, said) in bad_files(tmp_path).items():
        for reach in ([f"{app}:app"], ["--cmd", f"python {app} {{port}}"]):
            code, out, err = run_cli("hunt", *reach, "--replay", str(path), "--quiet")
            assert code == 2, (name, reach, out, err)
            lines = err.strip().splitlines()
            assert len(lines) == 1 and said in lines[0], (name, err)
            assert not started.exists(), name


@pytest.mark.timeout(30)
def test_a_replay_is_sent_by_memprobes_hammer_and_refuses_another_engine_or_a_method_of_its_own(
        tmp_path: Path) -> None:
    from memprobe.hunt import hunt

    capture = orders_capture(tmp_path / "orders.jsonl")
    with pytest.raises(UsageError, match="drop --engine locust"):
        hunt(f"{APP}:app", replay=str(capture), load_engine=object())  # type: ignore[arg-type]
    code, _, err = run_cli("hunt", f"{APP}:app", "--replay", str(capture), "-X", "POST")
    assert code == 2
    assert "--replay sends the methods and bodies the capture recorded: drop -X/--method and --body" in err


LIMIT_TESTS = '''
import pytest

# few requests on a loaded machine: a clean route that could not see 64 B/request passes (a leak fails)
FAST = dict(sensitivity=64, warmup=300, inconclusive="pass")


@pytest.mark.memprobe_limit("{app}:app", replay="orders.jsonl", **FAST)
def test_orders_as_production_sends_them():
    pass


def test_post_orders_replayed_from_the_fixture(memprobe):
    result = memprobe.hunt("{app}:app", replay="orders.jsonl", routes=["POST /orders"], sensitivity=64, warmup=300)
    print("VERDICT", result.routes[0].route, result.routes[0].judgement.verdict)
'''


@pytest.mark.timeout(300)
@pytest.mark.parametrize("app, outcome, verdict", [(APP, "failed", "leak"), (FIXED, "passed", "clean")],
                         ids=["leaky", "fixed"])
def test_a_pytest_test_built_from_the_capture_file_fails_on_the_leak_and_passes_once_fixed(
        pytester: pytest.Pytester, tmp_path: Path, no_orphans: None, app: Path, outcome: str,
        verdict: str) -> None:
    shutil.copy(orders_capture(tmp_path / "orders.jsonl"), pytester.path / "orders.jsonl")
    shutil.copy(app, pytester.path / "orders_app.py")
    pytester.makepyfile(test_orders=LIMIT_TESTS.replace("{app}", "orders_app.py"))

    result = pytester.runpytest_subprocess("-s")

    result.assert_outcomes(**{outcome: 1, "passed": 1} if outcome == "failed" else {"passed": 2})
    result.stdout.fnmatch_lines([f"*VERDICT POST /orders {verdict}"])
    if outcome == "failed":
        result.stdout.fnmatch_lines(["*memprobe: POST /orders leaks*"])
