"""Write manifest.json from the cases' construction: nothing here runs an app or a tool.

    python bench/leakbench/make_manifest.py

Per case: the verdicts and kind from ``EXPECTED`` (cases.py, or ``OWN`` below for a case an app
file defines), the sites from the ``# LEAK`` marks inside the case's function (and its helpers),
the holders from ``HOLDERS``. ``APPS`` says which routes of which app are in the benchmark.
"""
from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import cases  # noqa: E402

#: app file -> (target, cases in the benchmark)
APPS: dict[str, tuple[str, list[str]]] = {
    "flask_app.py": ("flask_app.py:app", [
        "ok", "list_append", "dict_keyed", "lru_unbounded", "native_malloc", "bounded_cache",
        "flask_caching", "leak_8b", "heavy_50k", "lazy_import", "signal_blinker", "lxml_mixed"]),
    "bottle_app.py": ("bottle_app.py:app", [
        "ok", "handler_per_request", "mutable_default", "regex_cache", "cycles", "per_thread"]),
    "cherrypy_app.py": ("cherrypy_app.py:app", ["ok", "class_registry", "big_alloc", "warmup_table", "exc_keep"]),
    "tornado_app.py": ("tornado_app.py:make_app()", ["ok", "list_append", "tornado_timers", "regex_cache",
                                                     "late_cycles"]),
    "webpy_app.py": ("webpy_app.py:application", ["ok", "dict_keyed", "bounded_cache", "allocator_retention"]),
    "django_app.py": ("django_app.py:application", ["ok", "signal_django", "lru_unbounded", "lazy_import",
                                                    "atexit_registry"]),
    "asgi_app.py": ("asgi_app.py:app", ["ok", "list_append", "asyncio_timers", "per_thread", "bounded_cache",
                                        "leak_8b"]),
}
#: cases an app file defines: verdicts, kind, holders
OWN: dict[str, tuple[tuple[str, ...], str | None, tuple[str, ...]]] = {
    "flask_caching": (("bounded", "clean"), None, ()),
    "signal_blinker": (("leak",), "python", ("order-placed", "receivers", "blinker")),
    "signal_django": (("leak",), "python", ("order_placed", "receivers")),
    "tornado_timers": (("leak",), "python", ("_scheduled", "TimerHandle", "call_later", "ioloop")),
    "asyncio_timers": (("leak",), "python", ("_scheduled", "TimerHandle", "call_later")),
}
#: a kind the truth also accepts: a parsed document's proxy is Python, its tree C
ALSO_KIND = {"mixed": ["native"]}


def leak_lines(path: Path) -> dict[str, list[int]]:
    """Top-level function or class name -> its lines marked ``# LEAK``."""
    source = path.read_text()
    marked = [i for i, text in enumerate(source.splitlines(), 1) if "# LEAK" in text]
    out: dict[str, list[int]] = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            end = node.end_lineno or node.lineno
            lines = [i for i in marked if node.lineno <= i <= end]
            if lines:
                out[node.name] = lines
    return out


def entry(app: str, target: str, case: str) -> dict[str, object]:
    """One manifest entry, from the construction."""
    if case in OWN:
        verdicts, kind, holders = OWN[case]
        file, names = app, [case]
    else:
        verdicts, kind = cases.EXPECTED[case]
        holders = cases.HOLDERS.get(case, ())
        file, names = "cases.py", [case, *cases.HELPERS.get(case, ())]
    marks = leak_lines(HERE / file)
    sites = [[file, line] for name in names for line in marks.get(name, [])] if "leak" in verdicts else []
    return {"target": target, "routes": [f"/{case}"], "verdict": list(verdicts),
            "kind": [kind, *ALSO_KIND.get(kind, [])] if kind else [], "sites": sites, "holders": list(holders)}


def manifest() -> dict[str, dict[str, object]]:
    """Every case of every app, ``framework/case`` as its id."""
    return {f"{app.removesuffix('_app.py')}/{case}": entry(app, target, case)
            for app, (target, names) in APPS.items() for case in names}


if __name__ == "__main__":
    data = manifest()
    lines = [f" {json.dumps(case)}: {json.dumps(item)}" for case, item in data.items()]
    (HERE / "manifest.json").write_text("{\n" + ",\n".join(lines) + "\n}\n")
    print(f"{len(data)} cases, {sum('leak' in e['verdict'] for e in data.values())} leaks")  # type: ignore[operator]
