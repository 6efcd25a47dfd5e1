"""Verdicts that explain (issue 15), as the reports show them: each explanation in one sentence,
whole, in the text, the Markdown and the HTML.

No process runs here: the results are the JSON of real default hunts (2,000 requests x 5 rounds
after 500 warm-up) of tests/servers/explain_*.py, saved in tests/fixtures/results/ and read back
as ``memprobe report`` reads them:

* ``hunt_explain_native.json``: ``--route /malloc --route /retention`` on explain_native.py;
* ``hunt_explain_holders.json``: ``/session /contextvar /warn /plain /orphan`` on explain_holders.py;
* ``hunt_explain_timers.json``: ``/`` on explain_timers.py (uvicorn, uvloop);
* ``hunt_explain_bounds.json``: ``/lru /deque`` on explain_bounds.py.
"""
from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest

from memprobe.render import render
from memprobe.render.hunt import bounds_sentence
from memprobe.render.page import esc
from memprobe.results.hunt import HuntResult, RouteResult

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "results"
WIDE = 2000  # no line of the text report wrapped: each sentence whole on its line


@functools.cache
def saved(name: str) -> HuntResult:
    """The saved run, read once (the tests only read it)."""
    return HuntResult.from_dict(json.loads((FIXTURES / f"hunt_explain_{name}.json").read_text(encoding="utf-8")))


def route(result: HuntResult, path: str) -> RouteResult:
    return next(r for r in result.routes if r.route == path)


_REPORTS: dict[int, dict[str, str]] = {}


def reports(result: HuntResult) -> dict[str, str]:
    """The text (unwrapped), Markdown and HTML of a :func:`saved` result (kept alive by its
    cache, so its id stays its own), rendered once."""
    if id(result) not in _REPORTS:
        _REPORTS[id(result)] = {"text": render(result, "text", width=WIDE),
                                "markdown": render(result, "markdown"), "html": render(result, "html")}
    return _REPORTS[id(result)]


def shown_everywhere(result: HuntResult, sentence: str) -> None:
    """``sentence`` whole on one line of the text and of the Markdown, and in the HTML."""
    assert sentence
    shown = reports(result)
    assert any(sentence in line for line in shown["text"].splitlines()), sentence
    assert any(sentence in line for line in shown["markdown"].splitlines()), sentence
    assert str(esc(sentence)) in shown["html"], sentence


@pytest.fixture(autouse=True)
def _html() -> None:
    pytest.importorskip("matplotlib", reason="the HTML report needs matplotlib: pip install 'memprobe[html]'")


def test_allocator_retention_is_said_as_not_a_leak_and_a_native_leak_as_memory_in_use() -> None:
    result = saved("native")
    retention = route(result, "/retention")
    assert (retention.verdict, retention.kind) == ("bounded", "retention")
    assert re.match(r"allocator retention, not a leak: USS \+[\d.]+ B/request, but the allocators' bytes "
                    r"in use [+-][\d.]+ B/request, held free \+[\d.]+ B/request in glibc's arenas, "
                    r"malloc_trim\(0\) gave back [\d.]+ [KM]iB", retention.judgement.reason)
    shown_everywhere(result, retention.judgement.reason)
    malloc = route(result, "/malloc")
    assert (malloc.verdict, malloc.kind) == ("leak", "native")
    said = malloc.allocator["explanation"]  # type: ignore[index]
    assert said.startswith("the memory is in use, not only resident: bytes in use +")
    shown_everywhere(result, said)
    shown_everywhere(result, "no Python allocation explains it: the memory comes from outside Python's allocators")
    assert "verdict: LEAK on /malloc (1 of 2 routes)" in reports(result)["text"]
    alone = HuntResult.from_dict({**result.to_dict(), "routes": [retention.to_dict()]})
    for kind in ("text", "html"):
        assert "no leak; allocator retention on /retention (freed memory the allocators keep)" in render(alone, kind)


def test_a_cap_says_its_ceiling_and_the_requests_to_reach_it() -> None:
    result = saved("bounds")
    lru = route(result, "/lru")
    assert lru.verdict == "bounded"
    assert re.match(r"grows until 20,000 entries \(lru_cache maxsize\), ≈ [\d.]+ [KM]iB, after ≈ [\d,]+ more "
                    r"requests: module explain_bounds\.py, function _profile, lru_cache \(lru_cache, "
                    r"[\d,]+ entries\); the Python heap grows", lru.judgement.reason), lru.judgement.reason
    shown_everywhere(result, lru.judgement.reason)
    top = lru.holders[0]
    assert bounds_sentence(top).startswith(f"capped at 20,000 entries (lru_cache maxsize): {top.entries:,} now, ≈ ")
    shown_everywhere(result, bounds_sentence(top))
    deque = route(result, "/deque")
    assert deque.verdict == "bounded"
    assert deque.judgement.reason.startswith("stopped at its cap of 1,000 entries (deque maxlen), ≈ ")
    shown_everywhere(result, deque.judgement.reason)
    assert bounds_sentence(deque.holders[0]).endswith("when full, full already")
    shown_everywhere(result, bounds_sentence(deque.holders[0]))
    for kind in ("text", "html"):
        assert "no leak; bounded growth on /lru, /deque (a cache with a cap)" in reports(result)[kind]


def test_timers_say_how_many_hold_it_and_when_they_fire() -> None:
    result = saved("timers")
    r = result.routes[0]
    top = r.holders[0]
    assert top.bounds is not None and top.bounds["timers"] >= 10_000
    assert r.judgement.reason.startswith(f"held by {top.bounds['timers']:,} timers due in 3,")
    assert "released when they fire; at " in r.judgement.reason
    shown_everywhere(result, r.judgement.reason)
    shown_everywhere(result, bounds_sentence(top))
    assert top.description.startswith("event loop uvloop.Loop (thread MainThread), scheduled timers (")


def test_holders_no_python_object_holds_say_so_and_library_holders_are_named_from_the_library() -> None:
    result = saved("holders")
    session = route(result, "/session").holders[0]
    assert session.description.startswith("class cherrypy.lib.sessions.RamSession.cache (dict, ")
    shown_everywhere(result, session.description)
    contexts = route(result, "/contextvar").holders
    assert contexts and all(h.source == "outside-python" for h in contexts)
    assert contexts[0].description.startswith("thread memprobe-wsgi")
    assert ", contextvars context (Context, " in contexts[0].description
    shown_everywhere(result, contexts[0].note)
    assert contexts[0].note == ("no Python object holds it: the thread's interpreter state holds its "
                                "contextvars context")
    warn = route(result, "/warn").holders[0]
    assert warn.description.startswith("module explain_lib, global __warningregistry__ (dict, ")
    assert route(result, "/plain").holders[0].description.startswith("module explain_lib, global _seen (dict, ")
    orphan = route(result, "/orphan").holders[0]
    assert orphan.source == "outside-python"
    assert orphan.description.startswith("no Python object holds them: dicts made at explain_holders.py:")
    shown_everywhere(result, orphan.description)
    assert orphan.note.startswith("their only referrers are not Python objects: the chain ends at a dict, "
                                  "which something in C or in the interpreter holds; searched ")
    shown_everywhere(result, orphan.note)


@pytest.mark.parametrize("name", ["native", "holders", "timers", "bounds"])
def test_a_saved_run_renders_as_it_was_written(name: str) -> None:
    data = json.loads((FIXTURES / f"hunt_explain_{name}.json").read_text(encoding="utf-8"))
    again = HuntResult.from_dict(data)
    assert again.to_dict()["routes"] == data["routes"]
