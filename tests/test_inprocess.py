"""The in-process hunt: a WSGI app called through a test client, judged like ``hunt``."""
from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Callable

import pytest

from memprobe.errors import ExitCode, TargetError, UsageError
from memprobe.hunt import HuntFailed, HuntResult, hunt_in_process
from memprobe.hunt.probes.inprocess import WsgiCaller

APP = '''
from __future__ import annotations

_kept: list[bytes] = []
_seen_paths: list[str] = []


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/leak":
        _kept.append(bytes(100))
    elif path == "/echo":
        _seen_paths.append(environ["QUERY_STRING"])
        del _seen_paths[:-3]
    status = "404 Not Found" if path == "/missing" else "200 OK"
    start_response(status, [("Content-Type", "text/plain")])
    return [b"ok"]


async def asgi_app(scope, receive, send):
    pass
'''
#: Few requests, fast: a flat route is clean at the coarse sensitivity they can reach, not at 16 B.
SMALL = {"requests": 200, "rounds": 3, "warmup": 50, "sensitivity": 256}


@pytest.fixture
def app_file(tmp_path: Path) -> Path:
    """A stdlib WSGI app with a leaking route (/leak) and clean ones."""
    path = tmp_path / "inproc_app.py"
    path.write_text(APP, encoding="utf-8")
    return path


def test_a_route_that_keeps_an_object_per_request_is_a_python_leak_with_its_line_and_holder(
        app_file: Path) -> None:
    result = hunt_in_process(f"{app_file}:app", routes=["/leak"], **SMALL)

    assert isinstance(result, HuntResult)
    route = result.routes[0]
    assert route.verdict == "leak" and route.kind == "python"
    # bytes(100) is a 133-byte object plus its slot in the list.
    assert 135 < route.bytes_per_request["traced"] < 160
    assert route.sites[0].file == str(app_file) and route.sites[0].code == "_kept.append(bytes(100))"
    assert route.holders[0].description.startswith("module inproc_app.py, global _kept (list")


def test_a_route_that_keeps_nothing_is_clean_with_no_sites(app_file: Path) -> None:
    # A warm-up above 128 distinct URLs: urllib's urlsplit cache (128 entries) fills during the
    # warm-up, not in the rounds, where it would show as bounded growth.
    result = hunt_in_process(f"{app_file}:app", routes=["/", "/echo?q={n}"], **{**SMALL, "warmup": 200})

    assert [r.verdict for r in result.routes] == ["clean", "clean"]
    assert all(abs(r.bytes_per_request["traced"]) < 4 for r in result.routes)
    assert all(not r.sites and not r.holders for r in result.routes)


def test_the_result_says_it_was_measured_in_process_and_serialises_to_json(app_file: Path) -> None:
    result = hunt_in_process(f"{app_file}:app", routes=["/"], **SMALL)

    data = json.loads(json.dumps(result.to_dict()))
    assert data["settings"]["mode"] == "in_process"
    assert data["settings"]["client"] == "werkzeug"
    assert data["routes"][0]["series"]["requests"] == [0, 200, 400, 600]
    # load: the measured rounds, as for a child (the warm-up is not measured)
    assert data["routes"][0]["load"]["sent"] == 600


def test_an_app_object_can_be_given_instead_of_a_target_spec() -> None:
    kept: list[bytes] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        kept.append(bytes(200))
        start_response("200 OK", [])
        return [b""]

    result = hunt_in_process(app, routes=["/"], **SMALL)

    assert result.verdict == "leak"
    assert result.routes[0].bytes_per_request["traced"] > 200


def test_the_stdlib_caller_passes_path_query_and_status_like_werkzeug(app_file: Path) -> None:
    from memprobe.target import load_target

    loaded = load_target(f"{app_file}:app")
    app = loaded.app
    for caller in (WsgiCaller(app, prefer_werkzeug=False), WsgiCaller(app)):
        assert caller.call("/missing").status == 404
        answer = caller.call("/echo?q=7")
        assert answer.status == 200 and answer.body_bytes == 2
    assert caller.engine == "werkzeug"
    assert loaded.module._seen_paths[-2:] == ["q=7", "q=7"]


def test_n_in_a_route_counts_on_across_warm_up_and_rounds(app_file: Path) -> None:
    result = hunt_in_process(f"{app_file}:app", routes=["/echo?q={n}"], requests=10, rounds=2, warmup=5)

    assert result.routes[0].load["sent"] == 20  # the measured rounds
    import sys

    assert sys.modules["inproc_app"]._seen_paths == ["q=22", "q=23", "q=24"]


def test_an_asgi_app_is_refused_with_a_one_line_reason(app_file: Path) -> None:
    with pytest.raises(HuntFailed, match="in-process mode calls WSGI apps only") as info:
        hunt_in_process(f"{app_file}:asgi_app", routes=["/"], **SMALL)
    assert isinstance(info.value.cause, TargetError) and info.value.exit_code == ExitCode.TARGET
    assert info.value.partial.routes == [] and info.value.partial.error == str(info.value)


def test_bad_settings_are_a_usage_error(app_file: Path) -> None:
    with pytest.raises(UsageError):
        hunt_in_process(f"{app_file}:app", routes=["/"], requests=0)
    with pytest.raises(UsageError):
        hunt_in_process(f"{app_file}:app", routes=["/"], rounds=1)


def test_only_the_traced_heap_is_judged_unless_uss_is_asked_for(app_file: Path) -> None:
    default = hunt_in_process(f"{app_file}:app", routes=["/"], **SMALL)
    with_uss = hunt_in_process(f"{app_file}:app", routes=["/"], uss=True, **SMALL)

    assert default.routes[0].bytes_per_request["uss"] is None
    assert with_uss.routes[0].bytes_per_request["uss"] is not None


def test_tracing_is_stopped_afterwards_when_the_hunt_started_it(app_file: Path) -> None:
    assert not tracemalloc.is_tracing()
    hunt_in_process(f"{app_file}:app", routes=["/leak"], **SMALL)
    assert not tracemalloc.is_tracing()


def test_statuses_other_than_2xx_and_3xx_are_noted(app_file: Path) -> None:
    result = hunt_in_process(f"{app_file}:app", routes=["/missing"], **SMALL)

    assert result.routes[0].notes == ["/missing: answered 650 x 404"]
