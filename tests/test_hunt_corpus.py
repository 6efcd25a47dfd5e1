"""The planted-leak corpus: every verdict right, the leak's line in the top 3 sites.

Each framework's app (tests/leak_corpus/*_app.py) serves the same cases (cases.py), one route
each; one hunt per framework judges every route in one child, with hunt's defaults (the
sequential protocol: each route stops once its readings decide). Under a loaded CI run the
sequential protocol once called CherryPy's native_malloc mixed (traced +17.0 ± 4.9 B/request)
and Tornado's regex_cache a leak (+13.8 ± 1.8, growth that stops after ~3,000 requests): its
leak rule now asks for every signal the judge counts to be clear and for more growth than
bounded growth may reach (tests/test_sequential.py has both cases).
"""
from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

import pytest

from memprobe.hunt import RouteResult, hunt

CORPUS = Path(__file__).parent / "leak_corpus"


def _cases() -> Any:
    spec = importlib.util.spec_from_file_location("corpus_cases", CORPUS / "cases.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["corpus_cases"] = module  # inspect finds classes' source through sys.modules
    spec.loader.exec_module(module)
    return module


CASES = _cases()


def leak_lines(case: str) -> set[int]:
    """Lines of ``case``'s code (and of the helpers it calls) marked ``# LEAK``."""
    source, _ = inspect.getsourcelines(CASES)
    return {i for i, text in enumerate(source, 1) if "# LEAK" in text and _belongs(case, i)}


def _belongs(case: str, line: int) -> bool:
    helpers = {"lru_unbounded": ["_profile"], "mutable_default": ["_remember"],
               "class_registry": ["Registry"]}
    for name in [case, *helpers.get(case, [])]:
        lines, start = inspect.getsourcelines(getattr(CASES, name))
        if start <= line < start + len(lines):
            return True
    return False


FRAMEWORKS = {
    "flask": ("flask_app.py:app", [*CASES.CASES, "flask_caching"]),
    "bottle": ("bottle_app.py:app", list(CASES.CASES)),
    "cherrypy": ("cherrypy_app.py:app", list(CASES.CASES)),
    "tornado": ("tornado_app.py:make_app()", list(CASES.CASES)),
    "webpy": ("webpy_app.py:application", list(CASES.CASES)),
}
EXPECTED = {**CASES.EXPECTED, "flask_caching": (("bounded", "clean"), None)}


def problems(route: RouteResult) -> list[str]:
    """What is wrong with one route's result (empty when right)."""
    case = route.route.lstrip("/")
    verdicts, kind = EXPECTED[case]
    out = []
    if route.verdict not in verdicts:
        out.append(f"{case}: verdict {route.verdict} ({route.judgement.reason}), expected "
                   f"{' or '.join(verdicts)}")
    elif route.verdict == "leak" and route.kind != kind:
        out.append(f"{case}: kind {route.kind}, expected {kind} ({route.judgement.reason})")
    if route.verdict == "leak" and kind == "python":
        top = [(Path(s.file).name, s.line) for s in route.sites[:3]]
        if not any(("cases.py", line) in top for line in leak_lines(case)):
            out.append(f"{case}: leak lines {sorted(leak_lines(case))} not in the top 3 sites {top}")
    return out


@pytest.mark.slow
@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_every_planted_case_gets_the_right_verdict_and_line(framework: str) -> None:
    pytest.importorskip({"webpy": "web"}.get(framework, framework))
    target, cases = FRAMEWORKS[framework]
    result = hunt(target, routes=[f"/{c}" for c in cases], cwd=CORPUS)
    wrong = [p for route in result.routes for p in problems(route)]
    assert not wrong, "\n".join(wrong)
    assert [r.route for r in result.routes] == [f"/{c}" for c in cases]


def test_the_corpus_marks_a_leak_line_for_every_python_leak() -> None:
    for case, (verdicts, kind) in CASES.EXPECTED.items():
        if verdicts == ("leak",) and kind == "python":
            assert leak_lines(case), case
