"""Verdicts that explain (issue 15): what the allocators hold when USS grows and the Python
heap does not.

Real children, real HTTP on 127.0.0.1; the model's weighing of the allocators' figures is
also checked on its own, as a pure function.
"""
from __future__ import annotations

import html
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from memprobe.hunt import hunt
from memprobe.hunt.model import account, will_it_stop
from memprobe.hunt.probes import Attribution
from memprobe.hunt.probes.merge import merge
from memprobe.render import render
from memprobe.results.hunt import Fit, HuntResult, Judgement
from tests.conftest import text_of

SERVERS = Path(__file__).parent / "servers"
SHORT: dict[str, Any] = {"requests": 1000, "rounds": 4, "warmup": 200}
#: The fast protocol, for leaks of one object per request (no bounds, no allocator figures):
#: rounds until decided, a flat route stopping once it could see leaks of 64 B/request.
FAST: dict[str, Any] = {"sensitivity": 64.0, "warmup": 200}


@pytest.fixture(scope="module")
def native() -> HuntResult:
    # /malloc first: the arenas /retention leaves free would take its blocks without USS growth.
    return hunt(f"{SERVERS / 'explain_native.py'}:app", routes=["/malloc", "/retention"], **SHORT)


def _route(result: HuntResult, path: str) -> Any:
    return next(r for r in result.routes if r.route == path)


@pytest.mark.timeout(300)
def test_c_memory_never_freed_stays_a_native_leak_with_its_bytes_in_use(native: HuntResult) -> None:
    route = _route(native, "/malloc")
    assert (route.verdict, route.kind) == ("leak", "native"), route.judgement.reason
    alloc = route.allocator
    assert alloc is not None and alloc["glibc"] is True
    # 1 KiB per request and malloc's chunk header: in use, not only resident.
    assert 1000 <= alloc["in_use_growth"] / alloc["requests"] <= 1200
    assert "in use" in alloc["explanation"]


@pytest.mark.timeout(300)
def test_memory_freed_but_kept_in_glibc_arenas_is_allocator_retention_not_a_leak(
        native: HuntResult) -> None:
    route = _route(native, "/retention")
    assert (route.verdict, route.kind) == ("bounded", "retention"), route.judgement.reason
    alloc = route.allocator
    assert alloc["in_use_growth"] < 0.1 * alloc["uss_growth"]
    assert alloc["free_growth"] > 0.5 * alloc["uss_growth"]
    assert alloc["trim_released"] > 0  # malloc_trim(0) gave the free pages back
    assert route.judgement.reason.startswith("allocator retention, not a leak")
    assert not native.leaked or _route(native, "/malloc").verdict == "leak"


@pytest.mark.timeout(300)
def test_the_reports_say_it_in_one_sentence_and_json_keeps_it(native: HuntResult) -> None:
    text = text_of(native)
    assert "/retention: bounded (retention): allocator retention, not a leak" in text
    assert "allocators: the memory is in use, not only resident" in text
    markdown = render(native, "markdown")
    assert "allocator retention, not a leak" in markdown
    back = HuntResult.from_dict(native.to_dict())
    assert _route(back, "/retention").allocator == _route(native, "/retention").allocator
    assert render(back, "text") == render(native, "text")


def _native_leak(slope: float = 1000.0) -> Judgement:
    return Judgement("leak", "native", Fit(0.0, 0.1, 0.0, 0.0, 0, "clean"),
                     Fit(slope, 5.0, slope, slope, int(slope * 4000), "leak"), "USS grows")


def _figures(**changes: Any) -> dict[str, Any]:
    out = {"glibc": True, "libc": "glibc 2.36", "requests": 4000, "in_use_growth": 0,
           "free_growth": 0, "trim_released": 0, "outside_glibc_growth": 0, "pymalloc_free": None}
    return {**out, **changes}


def test_a_native_verdict_needs_the_bytes_in_use() -> None:
    j, said = account(_native_leak(), _figures(in_use_growth=4_100_000))
    assert (j.verdict, j.kind) == ("leak", "native") and said and "in use" in said
    j, said = account(_native_leak(), _figures(free_growth=3_900_000, trim_released=3_000_000))
    assert (j.verdict, j.kind) == ("bounded", "retention")
    assert said == j.reason and "+975.0 B/request in glibc's arenas" in said


def test_pymalloc_free_space_explains_growth_outside_glibc() -> None:
    j, _ = account(_native_leak(), _figures(outside_glibc_growth=4_000_000, pymalloc_free=5_000_000))
    assert j.kind == "retention"
    j, said = account(_native_leak(), _figures(outside_glibc_growth=4_000_000))
    assert j.kind == "native" and said and "neither in use nor held free" in said


def test_where_the_c_library_is_not_glibc_the_check_says_it_was_not_available() -> None:
    j, said = account(_native_leak(), _figures(glibc=False, libc="musl"))
    assert (j.verdict, j.kind) == ("leak", "native")
    assert said == "the allocator check was not available: the C library is musl, not glibc"


def test_a_python_or_mixed_leak_keeps_its_verdict_and_gets_the_figures() -> None:
    mixed = Judgement("leak", "mixed", Fit(400.0, 1.0, 400.0, 400.0, 1_600_000, "leak"),
                      Fit(2000.0, 5.0, 2000.0, 2000.0, 8_000_000, "leak"), "both grow")
    j, said = account(mixed, _figures(free_growth=8_000_000))
    assert j is mixed and said and said.startswith("bytes in use +0.0 B/request")


@pytest.mark.timeout(300)
def test_lxml_documents_kept_in_a_list_stay_a_mixed_leak() -> None:
    pytest.importorskip("lxml", reason="lxml is not installed: pip install lxml")
    result = hunt(f"{SERVERS / 'explain_lxml.py'}:app", routes=["/"], **SHORT)
    route = result.routes[0]
    assert (route.verdict, route.kind) == ("leak", "mixed"), route.judgement.reason
    assert route.allocator is not None and route.allocator["explanation"].startswith("bytes in use +")


# -- holders inside libraries and outside Python (parts 0 and 1) -----------------------------

@pytest.fixture(scope="module")
def library() -> HuntResult:
    routes = ["/session", "/contextvar", "/warn", "/plain", "/orphan"]
    return hunt(f"{SERVERS / 'explain_holders.py'}:app", routes=routes, **FAST)


@pytest.mark.timeout(300)
def test_a_library_class_attribute_is_named_from_the_library(library: HuntResult) -> None:
    route = _route(library, "/session")
    assert route.verdict == "leak"
    described = [h.description for h in route.holders]
    assert any(d.startswith("class cherrypy.lib.sessions.RamSession.cache (dict, ") for d in described), described
    assert any(d.startswith("class cherrypy.lib.sessions.RamSession.locks (dict, ") for d in described), described
    top = route.holders[0]
    assert 0.9 <= top.entries_per_request <= 1.1 and top.source == "roots"


@pytest.mark.timeout(300)
def test_a_librarys_warning_registry_and_its_untracked_store_are_named_from_the_library(
        library: HuntResult) -> None:
    warn, plain = _route(library, "/warn"), _route(library, "/plain")
    assert warn.verdict == plain.verdict == "leak"
    assert warn.holders[0].description.startswith(
        "module explain_lib, global __warningregistry__ (dict, "), warn.holders[0]
    assert 0.9 <= warn.holders[0].entries_per_request <= 1.1
    # Neither the dict nor its tuples are tracked: the chain starts from the dict whose newest
    # entry was made at the site.
    top = plain.holders[0]
    assert top.description.startswith("module explain_lib, global _seen (dict, "), top
    assert top.source == "referrers"


@pytest.mark.timeout(300)
def test_objects_only_c_holds_get_a_holder_saying_so_and_what_was_searched(library: HuntResult) -> None:
    route = _route(library, "/orphan")
    assert route.verdict == "leak", route.judgement.reason
    top = route.holders[0]
    assert top.source == "outside-python"
    assert top.description.startswith("no Python object holds them: dicts made at explain_holders.py:")
    assert top.description.endswith("held by something in C or in the interpreter")
    assert top.note.startswith("their only referrers are not Python objects: the chain ends at a dict")
    assert "objects allocated at explain_holders.py:" in top.note
    assert "no Python object holds them" in text_of(library)


@pytest.mark.timeout(300)
def test_a_contextvar_set_per_request_is_held_by_the_worker_threads_context(library: HuntResult) -> None:
    route = _route(library, "/contextvar")
    assert (route.verdict, route.kind) == ("leak", "python"), route.judgement.reason
    held = [h for h in route.holders if h.source == "outside-python"]
    assert held, [h.description for h in route.holders]
    assert all(h.chain[0].startswith("thread memprobe-wsgi") and h.chain[1] == "contextvars context"
               for h in held)
    assert "no Python object holds it" in held[0].note
    # The worker threads share the requests: their contexts add up to one variable per request.
    assert 0.9 <= sum(h.entries_per_request for h in held) <= 1.1
    data = library.to_dict()["routes"][1]["holders"][0]
    assert data["source"] == "outside-python" and data["note"]
    assert "no Python object holds it" in text_of(library)


@pytest.mark.timeout(300)
def test_timers_scheduled_per_request_say_when_they_fire() -> None:
    result = hunt(f"{SERVERS / 'explain_timers.py'}:app", routes=["/"], **SHORT)
    route = result.routes[0]
    top = route.holders[0]
    assert top.chain[0].startswith("event loop ") and "(thread MainThread)" in top.chain[0]
    assert top.chain[1] == "scheduled timers"
    assert top.bounds is not None and top.bounds["timers"] >= 4000
    assert 3500 <= top.bounds["due_last_s"] <= 3600
    assert route.judgement.reason.startswith(f"held by {top.bounds['timers']:,} timers due in ")
    assert "released when they fire" in text_of(result)


# -- will it stop (part 2) --------------------------------------------------------------------

@pytest.fixture(scope="module")
def capped() -> HuntResult:
    return hunt(f"{SERVERS / 'explain_bounds.py'}:app", routes=["/lru", "/deque"], **SHORT)


@pytest.mark.timeout(300)
def test_an_lru_cache_below_its_cap_is_bounded_with_its_ceiling(capped: HuntResult) -> None:
    route = _route(capped, "/lru")
    assert route.verdict == "bounded", route.judgement.reason
    top = route.holders[0]
    b = top.bounds
    assert b is not None and b["cap"] == 20000 and b["by"] == "lru_cache maxsize"
    assert b["ceiling_bytes"] == pytest.approx(20000 * b["bytes_per_entry"], rel=0.01)
    assert b["requests_to_cap"] == pytest.approx((20000 - top.entries) / top.entries_per_request, rel=0.01)
    assert route.judgement.reason.startswith("grows until 20,000 entries (lru_cache maxsize), ≈ ")
    assert "more requests" in route.judgement.reason
    assert "capped at 20,000 entries" in text_of(capped)


@pytest.mark.timeout(300)
def test_a_deque_with_maxlen_is_bounded_at_its_cap(capped: HuntResult) -> None:
    route = _route(capped, "/deque")
    assert route.verdict == "bounded", route.judgement.reason
    top = route.holders[0]
    assert top.bounds is not None and top.bounds["cap"] == 1000 and top.entries == 1000
    assert top.bounds["requests_to_cap"] == 0
    assert "full already" in text_of(capped)


@pytest.mark.timeout(120)
def test_the_referrer_search_names_a_class_root_and_says_when_only_c_holds_objects() -> None:
    script = SERVERS / "explain_backrefs.py"
    env = {**os.environ, "PYTHONPATH": str(SERVERS.parent.parent)}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                         timeout=100, check=True)
    found = json.loads(out.stdout)
    assert found["store"]["chain"] == ["class __main__.Store", ".entries"]
    assert (found["store"]["type"], found["store"]["entries"]) == ("dict", 50)
    orphan = found["orphan"]
    assert orphan["source"] == "outside-python" and orphan["type"] == "dict"
    assert orphan["note"].startswith("their only referrers are not Python objects")
    assert "searched 1 level of referrers from 5 objects allocated at explain_backrefs.py:" in orphan["note"]


@pytest.mark.timeout(300)
def test_a_native_leak_has_its_malloc_line_found_by_rss(native: HuntResult) -> None:
    route = _route(native, "/malloc")
    assert route.rss_lines, route.notes
    top = route.rss_lines[0]
    assert top["source"] == "rss" and "_libc.malloc(1024)" in top["code"]
    assert top["file"].endswith("explain_native.py") and top["view"].endswith(" app")
    # 1 KiB a call, in 4 KiB pages: the line's RSS adds up to the growth, roughly.
    assert 900 <= sum(x["bytes_per_request"] for x in route.rss_lines) <= 1300
    # Allocator retention is not a native leak: its view is not profiled.
    assert not _route(native, "/retention").rss_lines


@pytest.mark.timeout(300)
def test_the_reports_name_the_native_line_and_say_it_is_measured_by_rss(native: HuntResult) -> None:
    pytest.importorskip("matplotlib")
    for fmt in ("text", "markdown", "html"):
        out = " ".join(html.unescape(render(native, fmt)).split())  # the terminal's lines wrap
        assert "measured by RSS with memory_profiler's line profiler" in out, fmt
        assert "explain_native.py:27" in out and "coarser than tracemalloc" in out, fmt
    back = HuntResult.from_dict(json.loads(json.dumps(native.to_dict())))
    assert _route(back, "/malloc").rss_lines == _route(native, "/malloc").rss_lines


def test_the_view_of_a_flask_or_bottle_route_is_found_and_profiled_by_rss() -> None:
    import ctypes

    import bottle
    import flask

    from memprobe.agent.rsslines import find_view, rss_lines

    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    app = flask.Flask(__name__)

    @app.route("/keep")
    def keep() -> str:
        ctypes.memset(libc.malloc(2048), 1, 2048)  # never freed
        return "ok"

    assert find_view(app, "wsgi", "/keep") == (keep, "flask")
    assert find_view(app, "wsgi", "/nowhere")[0] is None
    found = rss_lines(app, "wsgi", "/keep", 200, 2048.0)
    assert found["framework"] == "flask" and found["lines"], found
    assert "libc.malloc(2048)" in found["lines"][0]["code"]
    assert 1000 <= found["lines"][0]["bytes_per_request"] <= 3000

    bapp = bottle.Bottle()

    @bapp.route("/keep")
    def bkeep() -> str:
        return "ok"

    assert find_view(bapp, "wsgi", "/keep") == (bkeep, "bottle")
    view, why = find_view(object(), "asgi", "/")
    assert view is None and "ASGI" in why


# -- a server's workers merged (gunicorn, uvicorn) -------------------------------------------

def _worker(cap_entries: int, timers: int, free: int, first_due: float) -> Attribution:
    """One worker's answer to ``attribute`` as the agent sends it."""
    return Attribution.from_dict({
        "holders": [
            {"description": "", "chain": ["module app.py", "function _profile", "lru_cache"],
             "type": "lru_cache", "entries_before": 0, "entries": cap_entries,
             "entries_per_request": 1.0, "source": "roots",
             "bounds": {"cap": 20000, "by": "lru_cache maxsize", "bytes_per_entry": 150.0}},
            {"description": "", "chain": ["event loop asyncio.unix_events._UnixSelectorEventLoop "
                                          "(thread MainThread)", "scheduled timers"],
             "type": "list", "entries_before": 0, "entries": timers, "entries_per_request": 1.0,
             "source": "roots", "bounds": {"timers": timers, "due_first_s": first_due,
                                           "due_median_s": 3595.0, "due_last_s": 3599.0}},
            {"description": "", "chain": ["thread MainThread", "contextvars context"],
             "type": "Context", "entries_before": 0, "entries": 10, "entries_per_request": 0.01,
             "source": "outside-python", "note": "no Python object holds it: the thread's "
                                                  "interpreter state holds its contextvars context"}],
        "allocator": {"glibc": True, "libc": "glibc 2.36", "requests": 1000, "uss_growth": free,
                      "in_use_growth": 0, "free_growth": free, "trim_released": free // 2,
                      "outside_glibc_growth": 0, "pymalloc_free": 1000,
                      "before": {"uss": 10, "glibc_free": 1}, "after": {"uss": 20, "glibc_free": None}}})


def test_merging_the_workers_keeps_caps_timers_notes_and_the_allocators() -> None:
    merged = merge([(_worker(5000, 3000, 4_000_000, 3591.0), 100),
                    (_worker(4000, 2000, 2_000_000, 3590.0), 100)], 2000)
    lru, timers, ctx = (next(h for h in merged.holders if h.chain[-1] == last)
                        for last in ("lru_cache", "scheduled timers", "contextvars context"))
    # each worker has its own cache: the server's cap is theirs summed
    assert lru.entries == 9000 and lru.bounds == {
        "cap": 40000, "by": "lru_cache maxsize, 20,000 in each of 2 workers", "bytes_per_entry": 150.0}
    assert timers.bounds is not None and timers.bounds["timers"] == 5000
    assert (timers.bounds["due_first_s"], timers.bounds["due_last_s"]) == (3590.0, 3599.0)
    assert ctx.source == "outside-python" and ctx.note.startswith("no Python object holds it")
    alloc = merged.allocator
    assert alloc is not None and alloc["processes"] == 2 and alloc["glibc"] is True
    assert (alloc["requests"], alloc["free_growth"], alloc["trim_released"]) == (2000, 6_000_000, 3_000_000)
    assert alloc["after"] == {"uss": 40, "glibc_free": None}
    judged = will_it_stop(_python_leak(), merged.holders, 2000)
    assert lru.bounds["requests_to_cap"] == (40000 - 9000) // 9 * 2 and judged.verdict == "bounded"


def _python_leak() -> Judgement:
    return Judgement("leak", "python", Fit(300.0, 1.0, 300.0, 300.0, 600_000, "leak"),
                     Fit(600.0, 5.0, 600.0, 600.0, 1_200_000, "leak"), "the Python heap grows")
