"""Capturing requests from real servers: the in-code middleware under gunicorn (2 workers sharing
one capture file), and ``memprobe watch --cmd "gunicorn ..." --capture FILE``. Real POSTs with JSON
and form bodies must come out in the file as sent, redacted fields as placeholders, no secret
anywhere in the file, and the capture bounded."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path
from urllib.parse import quote, quote_plus, urlencode

import pytest

from memprobe.capture.format import Capture, CaptureFileError, read_capture
from memprobe.capture.record import record_size
from memprobe.process.child import Child, free_port, start_on_free_port
from tests.conftest import REPO, ctrl_c_reaches_it, wait_until

APP = REPO / "tests" / "servers" / "capture"
SECRET = "tok-9f8e7d6c5b4a"
CARD = "4111111111111111"

pytestmark = pytest.mark.slow

MIDDLEWARE_APP = '''
from memprobe.watch.middleware import middleware
from store import app as orders

app = middleware(orders, json={json!r}, interval=0.5, capture={capture!r}, redact=["token", "card"],
                 **{limits!r})
'''


def _post(base: str, path: str, body: bytes, content_type: str, **headers: str) -> int:
    request = urllib.request.Request(base + path, data=body, method="POST",
                                     headers={"Content-Type": content_type, **headers})
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
        return int(response.status)


def _get(base: str, path: str) -> None:
    with urllib.request.urlopen(base + path, timeout=10) as response:
        response.read()


def _json_body(i: int) -> bytes:
    return json.dumps({"id": i, "customer": {"name": f"n{i}", "token": SECRET}, "items": [i, i + 1]}).encode()


def _form_body(i: int) -> bytes:
    return urlencode({"item": f"sku-{i}", "card": CARD, "note": "a b&c"}).encode()


def _capture(path: Path, enough: int) -> Capture | None:
    try:
        capture = read_capture(path)
    except CaptureFileError:
        return None
    return capture if len(capture.requests) >= enough else None


def _assert_no_secret(path: Path) -> None:
    raw = path.read_bytes()
    for secret in (SECRET, CARD):
        for form in {secret, quote(secret), quote_plus(secret), json.dumps(secret)}:
            assert form.encode() not in raw, form


def _middleware_server(tmp_path: Path, limits: dict[str, int]) -> tuple[Child, Path]:
    capture = tmp_path / "capture.jsonl"
    (tmp_path / "wrapped.py").write_text(MIDDLEWARE_APP.format(json=str(tmp_path / "windows.json"),
                                                               capture=str(capture), limits=limits), encoding="utf-8")

    def gunicorn(port: int) -> Child:
        argv = ["gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "--pythonpath", str(APP), "wrapped:app"]
        return Child(argv, name="gunicorn", url=f"http://127.0.0.1:{port}/health", cwd=tmp_path,
                     env={**os.environ, "PYTHONPATH": str(REPO)})

    return start_on_free_port(gunicorn), capture


@pytest.mark.timeout(60)
def test_the_middleware_writes_json_and_form_posts_as_sent_with_redacted_fields_as_placeholders(
        tmp_path: Path, no_orphans: None) -> None:
    server, path = _middleware_server(tmp_path, {})
    with server:
        base = server.url.rsplit("/", 1)[0]
        for i in range(6):
            assert _post(base, "/api/orders", _json_body(i), "application/json", Authorization=f"Bearer {SECRET}") == 200
            assert _post(base, "/orders", _form_body(i), "application/x-www-form-urlencoded") == 200
        capture = wait_until(lambda: _capture(path, 12 + 1), 20, "the 12 posts (and the readiness check) in the file")
    assert isinstance(capture, Capture)
    assert capture.header.source == "middleware" and "token" in capture.header.redacted
    routes = capture.routes()
    posted = sorted(routes["POST /api/orders"], key=lambda r: json.loads(r.body or b"")["id"])
    assert [json.loads(r.body or b"") for r in posted] == [
        {"id": i, "customer": {"name": f"n{i}", "token": "<redacted:str:16-31>"}, "items": [i, i + 1]}
        for i in range(6)]
    assert all(r.status == 200 and r.method == "POST" and r.path == "/api/orders" for r in posted)
    assert posted[0].headers == {"content-type": "application/json", "authorization": "Bearer <redacted:str:16-31>"}
    forms = sorted(r.body or b"" for r in routes["POST /orders"])
    assert forms == sorted(f"item=sku-{i}&card=%3Credacted%3Astr%3A16-31%3E&note=a+b%26c".encode() for i in range(6))
    _assert_no_secret(path)


@pytest.mark.timeout(60)
def test_the_middlewares_capture_is_bounded_in_requests_per_route_bytes_and_body(
        tmp_path: Path, no_orphans: None) -> None:
    limits = {"capture_requests": 40, "capture_bytes": 2000, "capture_body": 64}
    server, path = _middleware_server(tmp_path, limits)
    with server:
        base = server.url.rsplit("/", 1)[0]
        for i in range(30):
            _get(base, f"/items/{i}")
        for i in range(30):
            _post(base, "/orders", urlencode({"item": f"sku-{i}", "note": "x" * 200}).encode(),
                  "application/x-www-form-urlencoded")

        def settled() -> Capture | None:
            capture = _capture(path, 1)
            if capture is None:
                return None
            return capture if len(capture.routes().get("POST /orders", ())) >= 5 else None

        capture = wait_until(settled, 20, "posts in the file")
    assert isinstance(capture, Capture)
    counts = Counter(r.route for r in capture.requests)
    assert counts["GET /items/<int:item_id>"] == 10  # a quarter of 40: one route cannot fill it
    assert len(capture.requests) <= 40
    assert sum(record_size(r) for r in capture.requests) <= 2000
    posts = capture.routes()["POST /orders"]
    assert all(len(r.body or b"") == 64 and r.body_truncated for r in posts)
    assert capture.header.limits == {"requests": 40, "bytes": 2000, "body": 64}


@pytest.mark.timeout(90)
def test_watch_cmd_capture_writes_the_named_routes_posts_redacted_and_leaves_nothing_behind(
        tmp_path: Path, no_leftovers: None) -> None:
    port = free_port()
    path = tmp_path / "capture.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "memprobe", "watch", "--cmd",
         f"gunicorn -w 2 -b 127.0.0.1:{port} --chdir {APP} store:app", "--interval", "1",
         "--json", str(tmp_path / "w.json"), "--capture", str(path), "--capture-route", "POST /api/orders",
         "--capture-route", "/orders", "--redact", "token", "--redact", "card"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=ctrl_c_reaches_it)
    try:
        def recording() -> bool:
            try:
                workers = json.loads((tmp_path / "w.json").read_text(encoding="utf-8"))["settings"]["workers"]
            except (OSError, ValueError, KeyError):
                return False
            return sum(1 for w in workers.values() if w["recording"]) >= 2

        wait_until(recording, 30, "both workers recording")
        base = f"http://127.0.0.1:{port}"
        for i in range(5):
            _post(base, "/api/orders", _json_body(i), "application/json")
            _post(base, "/orders", _form_body(i), "application/x-www-form-urlencoded", Cookie=f"sid={SECRET}")
            _get(base, f"/items/{i}")
        wait_until(lambda: _capture(path, 10), 20, "the 10 posts in the capture file, written at a poll")
        proc.send_signal(signal.SIGINT)
        _stdout, stderr = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert f"wrote {path}" in stderr
    capture = read_capture(path)
    assert capture.header.source.startswith("watch --cmd gunicorn")
    assert sorted(capture.routes()) == ["POST /api/orders", "POST /orders"]  # GET /items was not asked for
    bodies = sorted(json.loads(r.body or b"")["id"] for r in capture.routes()["POST /api/orders"])
    assert bodies == list(range(5))
    form = capture.routes()["POST /orders"][0]
    assert form.headers["cookie"] == "sid=<redacted:str:16-31>"
    assert b"card=%3Credacted%3Astr%3A16-31%3E" in (form.body or b"")
    _assert_no_secret(path)
    assert not list(tmp_path.glob(".capture.jsonl.*")), "a temporary file was left behind"

