"""Replay's plan, as a specification: which recorded fields are numbered on, in which shape, what
stays as recorded, what is filled, what is refused; and the hammer sending a route's templates."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from memprobe.capture.format import Capture, CapturedRequest, CaptureFileError, read_capture
from memprobe.capture.replay import RouteReplay, load_replay, replay_of, route_replay
from memprobe.http.hammer import Hammer
from memprobe.http.template import RequestTemplate
from memprobe.process.child import Child
from tests.conftest import counted
from tests.helpers.capture_files import HEADER, order, orders_capture


def bodies(route: RouteReplay, numbers: range) -> list[dict[str, object]]:
    """The JSON bodies of requests ``numbers`` of ``route``."""
    out = []
    for n in numbers:
        body = route.templates[n % len(route.templates)].body_for(n)
        assert body is not None
        out.append(json.loads(body))
    return out


def post(path: str, body: dict[str, object] | str, *, route: str = "POST /orders", query: str = "",
         ctype: str = "application/json", headers: dict[str, str] | None = None) -> CapturedRequest:
    text = json.dumps(body) if isinstance(body, dict) else body
    return CapturedRequest(route, "POST", path, query, {"content-type": ctype, **(headers or {})}, text.encode(),
                           status=201)


def test_an_id_that_varies_in_the_sample_is_numbered_on_beyond_it_as_an_int_above_every_recorded_one(
        tmp_path: Path) -> None:
    replay = load_replay(orders_capture(tmp_path / "orders.jsonl"))
    route = replay.routes["POST /orders"]

    assert [str(v) for v in route.varied] == ["json id (int)"]
    sent = bodies(route, range(1000))
    ids = [b["id"] for b in sent]
    assert all(isinstance(i, int) and i > 1048 for i in ids)
    assert len(set(ids)) == 1000  # a cache keyed on it grows with every request
    # what never varied is sent as recorded; the gift flag is cycled as the sample had it
    assert {b["note"] for b in sent} == {"leave at the door"}
    assert {json.dumps(b["items"]) for b in sent} == {json.dumps([{"sku": "mug", "qty": 1}])}
    assert [b["gift"] for b in sent[:8]] == [True, False] * 4


def test_an_id_that_repeats_in_the_sample_is_not_varied_and_every_replayed_request_has_it(
        tmp_path: Path) -> None:
    route = load_replay(orders_capture(tmp_path / "same.jsonl", ids_vary=False)).routes["POST /orders"]

    assert route.varied == []
    assert {b["id"] for b in bodies(route, range(500))} == {1041}
    assert "fields numbered on: none" in route.note()


def test_each_shape_is_numbered_in_its_own_shape_at_any_depth() -> None:
    sample = [post(f"/users/{7 + i}/orders/{uuid}", {"order": {"ref": f"ord-{100 + i}", "token": tok,
                                                              "lines": [{"qty": 1.5 + i}]}},
                   route="POST /users/<int:user>/orders/<uuid>", query=f"page={i + 1}&lang=en")
              for i, (uuid, tok) in enumerate([("3fa85f64-5717-4562-b3fc-2c963f66afa6", "a1b2c3d4e5f60718"),
                                               ("1b4e28ba-2fa1-11d2-883f-0016d3cca427", "0f1e2d3c4b5a6978")])]
    route = route_replay("POST /users/<int:user>/orders/<uuid>", sample)

    assert {str(v) for v in route.varied} == {
        "query page (int)", "json order.ref (str)", "json order.token (hex)", "path <int:user> (int)",
        "path <uuid> (uuid)"}
    t = route.templates[0]
    for n in (0, 5, 123_456):
        path, _, query = t.target_for(n).partition("?")
        _, users, user, orders, uuid = path.split("/")
        assert (users, orders) == ("users", "orders")
        assert user.isdigit() and int(user) > 8
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}", uuid)
        assert int(uuid.replace("-", "")[-12:], 16) == n
        assert query.endswith("&lang=en") and query.startswith("page=")
        body = json.loads(t.body_for(n) or b"")
        assert re.fullmatch(r"ord-\d{3,}", body["order"]["ref"])
        assert re.fullmatch(r"[0-9a-f]{16}", body["order"]["token"])
        assert body["order"]["lines"] == [{"qty": 1.5}]  # a float that varies is cycled, not numbered
    assert len({t.target_for(n) for n in range(2000)}) == 2000


def test_a_form_field_that_varies_is_numbered_and_one_that_does_not_stays() -> None:
    form = "application/x-www-form-urlencoded"
    route = route_replay("POST /orders", [post("/orders", f"sku=mug&id={i}&note=hi+there", ctype=form)
                                          for i in (3, 9, 4)])

    assert [str(v) for v in route.varied] == ["form id (int)"]
    bodies_ = {route.templates[n % 3].body_for(n) for n in range(300)}
    assert len(bodies_) == 300
    assert all(b is not None and b.startswith(b"sku=mug&id=10") and b.endswith(b"&note=hi%20there")
               for b in bodies_)


def test_redacted_values_are_filled_with_a_value_of_their_shape_and_never_sent_as_placeholders() -> None:
    sample = [post("/orders", {"id": i, "card": "<redacted:str:16-31>", "pin": "<redacted:int:4-7>"},
                   query="key=%3Credacted%3Astr%3A8-15%3E",
                   headers={"authorization": "Bearer <redacted:str:32-63>", "cookie": "sid=<redacted:str:32-63>"})
              for i in (1, 2)]
    route = route_replay("POST /orders", sample)

    t = route.templates[1]
    body = json.loads(t.body_for(7) or b"")
    assert len(body["card"]) == 16 and isinstance(body["pin"], int) and len(str(body["pin"])) == 4
    assert re.fullmatch(r"/orders\?key=\w{8}", t.target_for(7))
    assert re.fullmatch(r"Bearer \w{32}", t.headers["authorization"])
    assert re.fullmatch(r"sid=\w{32}", t.headers["cookie"])
    sent = t.target_for(7) + json.dumps(dict(t.headers)) + (t.body_for(7) or b"").decode()
    assert "redacted:" not in sent and "%3Credacted" not in sent
    assert set(route.filled) == {"header authorization", "header cookie", "query key", "json card", "json pin"}
    # -H puts a real value in place of a filled one
    assert route.with_headers({"Authorization": "Bearer real"}).templates[0].headers["Authorization"] == \
        "Bearer real"
    assert "authorization" not in route.with_headers({"Authorization": "Bearer real"}).templates[0].headers


def test_a_request_recorded_with_its_body_cut_short_is_refused_with_one_line(tmp_path: Path) -> None:
    cut = CapturedRequest("POST /upload", "POST", "/upload", "", {}, b"x" * 10, body_truncated=True)
    capture = Capture(HEADER, [order(1, True, 0.0), cut], str(tmp_path / "cut.jsonl"))

    with pytest.raises(CaptureFileError) as err:
        replay_of(capture)
    assert err.value.exit_code == 2
    assert "\n" not in str(err.value)
    assert "request 2 (POST /upload) was recorded with its body cut at the capture limit of 65,536 bytes" \
        in str(err.value)
    # a route that is not replayed does not stop the others
    assert list(replay_of(capture, ["POST /orders"]).routes) == ["POST /orders"]


def test_routes_narrow_the_replay_by_name_or_by_path_and_an_unknown_one_is_named(tmp_path: Path) -> None:
    capture = read_capture(orders_capture(tmp_path / "orders.jsonl"))

    assert list(replay_of(capture).routes) == ["POST /orders", "GET /orders"]
    assert list(replay_of(capture, ["GET /orders"]).routes) == ["GET /orders"]
    assert list(replay_of(capture, ["/orders"]).routes) == ["POST /orders", "GET /orders"]
    with pytest.raises(CaptureFileError, match=r"no request of route '/items' recorded; it has POST /orders, "
                                               r"GET /orders$"):
        replay_of(capture, ["/items"])


def test_the_replay_says_its_file_its_routes_varied_fields_and_recorded_statuses_in_json(tmp_path: Path) -> None:
    replay = load_replay(orders_capture(tmp_path / "orders.jsonl"))

    data = json.loads(json.dumps(replay.to_dict()))
    assert data["file"] == str(tmp_path / "orders.jsonl")
    assert data["routes"]["POST /orders"] == {
        "requests": 8, "varied": [{"where": "json", "name": "id", "shape": "int"}],
        "filled": ["header authorization"], "recorded_statuses": {"201": 8}}
    reason = replay.routes["POST /orders"].rejected({"400": 120})
    assert "(120 x 400) where the capture recorded 8 x 201" in reason


@pytest.mark.timeout(60)
def test_the_hammer_sends_request_number_k_from_template_k_mod_their_count(counting_server: Child) -> None:
    templates = [RequestTemplate("GET", "/a/{n}"),
                 RequestTemplate("POST", "/b?id=77{n:04d}", {"Content-Type": "application/json"},
                                 b'{"id": 77{n:04d}}'),
                 RequestTemplate("DELETE", "/c")]
    load = Hammer(f"http://127.0.0.1:{counting_server.port}", 90, concurrency=3, first=10,
                  requests=templates).run()

    assert (load.sent, load.ok) == (90, 90)
    seen = counted(counting_server)
    assert seen["by_method"] == {"GET": 30, "POST": 30, "DELETE": 30}
    assert seen["paths"] == 30 + 30 + 1  # each numbered request its own, the fixed one once


def test_a_template_marks_only_n_and_formats_it_as_asked() -> None:
    t = RequestTemplate("POST", "/x/{n}/{n:06d}?h={n:x}", body=b'{"a": "{n:012x}", "b": "{m}"}')

    assert t.numbered and not RequestTemplate("GET", "/plain", body=b"{}").numbered
    assert t.target_for(255) == "/x/255/000255?h=ff"
    assert t.body_for(255) == b'{"a": "0000000000ff", "b": "{m}"}'
