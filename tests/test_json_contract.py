"""The JSON contract: every command's JSON, from a real small run, keeps every key the code
wrote before the result layer (tests/fixtures/json_keys/<kind>.json, saved from that code),
carries the envelope (``memprobe``, ``schema``, ``result``, ``started``, ``machine``,
``settings``, ``duration_s``), and renders again through ``memprobe report``.

Key paths come from tests/helpers/json_keys.py: lists are entered, maps keyed by data (statuses,
pids) collapse to ``*``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from memprobe.process.child import LOOPBACK, Child, free_port
from memprobe.results.envelope import KEYS, SCHEMA
from tests.helpers.json_keys import key_paths
from tests.test_compare_cli import memprobe

pytestmark = pytest.mark.slow
pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
KEY_FIXTURES = REPO / "tests" / "fixtures" / "json_keys"


#: a line of each kind's text report
REPORT_HEADLINE = {"compare": "Memory before -> after", "hunt": "memprobe hunt ", "check": "memprobe check ",
                   "hammer": " sent, ", "pytest": "memprobe pytest session: "}


def saved_keys(kind: str) -> set[str]:
    """The key paths of ``kind``'s JSON as the code before the result layer wrote it."""
    return set(json.loads((KEY_FIXTURES / f"{kind}.json").read_text(encoding="utf-8")))


def assert_keeps_the_contract(kind: str, data: dict[str, Any]) -> None:
    missing = saved_keys(kind) - key_paths(data)
    assert not missing, f"{kind} lost keys: {sorted(missing)}"
    assert list(data)[:len(KEYS)] == list(KEYS), f"{kind}: the envelope comes first"
    assert data["schema"] == SCHEMA and data["result"] == kind
    assert data["started"] and isinstance(data["machine"], dict) and data["machine"].get("python")
    assert isinstance(data["settings"], dict)


def assert_reports_again(path: Path, headline: str) -> None:
    """``memprobe report`` reads the file back: exit 0, and the text has the kind's headline."""
    run = memprobe("report", str(path))
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    assert headline in run.stdout, run.stdout[:300]


def run_json(tmp_path: Path, *args: str, codes: tuple[int, ...] = (0,), save: bool = False) -> dict[str, Any]:
    out = tmp_path / "out.json"
    run = memprobe(*args, *(() if save else ("--no-save",)), "--json", str(out))
    assert run.returncode in codes, run.stderr
    assert_reports_again(out, REPORT_HEADLINE[args[0]])
    return json.loads(out.read_text(encoding="utf-8"))


@pytest.mark.timeout(300)
def test_compare_keeps_every_key(tmp_path: Path) -> None:
    data = run_json(tmp_path, "compare", "200", "0.5", "--frameworks", "flask", "--rounds", "2")
    assert_keeps_the_contract("compare", data)


@pytest.mark.timeout(600)
def test_hunt_keeps_every_key(tmp_path: Path) -> None:
    data = run_json(tmp_path, "hunt", str(REPO / "examples" / "leaky_flask" / "app.py") + ":app",
                    "--route", "/history", "--route", "/", "--requests", "300", "--rounds", "3",
                    "--warmup", "50", codes=(1,), save=True)
    assert_keeps_the_contract("hunt", data)


@pytest.mark.timeout(300)
def test_check_keeps_every_key(tmp_path: Path) -> None:
    data = run_json(tmp_path, "check", str(REPO / "examples" / "leaky_flask"), codes=(1,), save=True)
    assert_keeps_the_contract("check", data)


@pytest.mark.timeout(300)
def test_hammer_keeps_every_key(tmp_path: Path) -> None:
    port = free_port()
    server = Child([sys.executable, str(REPO / "frameworks" / "hello_bottle.py"), "--port", str(port),
                    "--host", LOOPBACK], name="hello_bottle", url=f"http://{LOOPBACK}:{port}/")
    with server:
        data = run_json(tmp_path, "hammer", server.url, "-n", "300", "-c", "4", "--pid", str(server.pid))
    assert_keeps_the_contract("hammer", data)


PLUGIN_TESTS = '''
import pytest

@pytest.mark.memprobe_limit("app.py:app", route="/leak", requests=300, rounds=3, warmup=100)
def test_leak():
    pass

def test_with_the_fixture(memprobe):
    memprobe.hunt("app.py:app", routes=["/"], requests=200, rounds=3, warmup=50, in_process=True)
'''

PLUGIN_APP = '''
_kept = []

def app(environ, start_response):
    if environ["PATH_INFO"] == "/leak":
        _kept.append(bytes(1000))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
'''


@pytest.mark.timeout(300)
def test_the_pytest_plugins_file_keeps_every_key(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(app=PLUGIN_APP, test_contract=PLUGIN_TESTS)
    pytester.runpytest("-p", "no:randomly", "--memprobe-json", "memprobe.json")
    data = json.loads((pytester.path / "memprobe.json").read_text(encoding="utf-8"))
    assert_keeps_the_contract("pytest", data)
    assert_reports_again(pytester.path / "memprobe.json", REPORT_HEADLINE["pytest"])
