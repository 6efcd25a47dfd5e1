"""Parsing and loading targets: FILE.py:APP, MODULE:APP, MODULE:FACTORY(), and bad input."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from memprobe.errors import TargetError
from memprobe.target import classify, load_target, parse_target, precheck


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory for app files; modules imported from it are forgotten afterwards."""
    monkeypatch.chdir(tmp_path)
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]
    while str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


def write(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


WSGI = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


def test_a_file_spec_names_the_module_after_the_files_stem() -> None:
    t = parse_target("path/to/service.py:app")
    assert (t.module, t.attr, t.call, t.path.name if t.path else None) == (
        "service", "app", False, "service.py")


def test_a_module_spec_has_no_path() -> None:
    t = parse_target("pkg.web:application")
    assert (t.module, t.attr, t.path) == ("pkg.web", "application", None)


def test_a_factory_spec_is_called_with_literal_arguments() -> None:
    t = parse_target("pkg.web:create_app('testing', 2)")
    assert (t.attr, t.call, t.args) == ("create_app", True, ("testing", 2))


def test_a_factory_with_non_literal_arguments_is_refused() -> None:
    with pytest.raises(TargetError, match="literal arguments"):
        parse_target("web:create_app(config)")


def test_a_spec_without_an_attribute_defaults_to_app() -> None:
    assert parse_target("web.py").attr is None


def test_garbage_is_refused_in_one_line() -> None:
    with pytest.raises(TargetError, match="not a module name"):
        parse_target("not a module:app")


def test_precheck_reports_a_missing_file(app_dir: Path) -> None:
    with pytest.raises(TargetError, match="no such file"):
        precheck(parse_target("missing.py:app"))


def test_precheck_reports_a_missing_module() -> None:
    with pytest.raises(TargetError, match="no module named 'surely_not_installed_xyz'"):
        precheck(parse_target("surely_not_installed_xyz.web:app"))


def test_a_wsgi_function_in_a_file_loads_as_wsgi(app_dir: Path) -> None:
    write(app_dir, "plain.py", WSGI)
    loaded = load_target("plain.py:app")
    assert loaded.kind == "wsgi" and loaded.module.__name__ == "plain"


def test_the_default_attribute_is_app_then_application(app_dir: Path) -> None:
    write(app_dir, "legacy.py", WSGI.replace("def app", "def application"))
    assert load_target("legacy.py").kind == "wsgi"


def test_an_apps_sibling_modules_are_importable(app_dir: Path) -> None:
    write(app_dir, "helpers_for_app.py", "GREETING = b'hi'\n")
    write(app_dir, "withhelper.py", "from helpers_for_app import GREETING\n" + WSGI)
    assert load_target(str(app_dir / "withhelper.py") + ":app").kind == "wsgi"


def test_a_flask_factory_is_called(app_dir: Path) -> None:
    write(app_dir, "factory.py", """
        from flask import Flask
        def create_app(name="x"):
            return Flask(name)
    """)
    loaded = load_target("factory.py:create_app('demo')")
    assert (loaded.kind, loaded.framework, loaded.app.name) == ("wsgi", "flask", "demo")


def test_a_factory_without_parentheses_is_not_taken_for_an_app(app_dir: Path) -> None:
    write(app_dir, "fact2.py", "from flask import Flask\ndef create_app():\n    return Flask('x')\n")
    with pytest.raises(TargetError, match=r"call it: create_app\(\)"):
        load_target("fact2.py:create_app")


def test_a_missing_attribute_is_named(app_dir: Path) -> None:
    write(app_dir, "noattr.py", WSGI)
    with pytest.raises(TargetError, match="has no attribute 'nope'"):
        load_target("noattr.py:nope")


def test_an_object_that_is_not_an_app_is_refused(app_dir: Path) -> None:
    write(app_dir, "number.py", "app = 42\n")
    with pytest.raises(TargetError, match="is an int, not an app"):
        load_target("number.py:app")


def test_a_class_is_refused_with_a_hint(app_dir: Path) -> None:
    write(app_dir, "klass.py", "class App:\n    def __call__(self, environ, start_response): ...\n")
    with pytest.raises(TargetError, match="is a class"):
        load_target("klass.py:App")


def test_an_app_raising_on_import_is_one_line_with_the_reason_and_place(app_dir: Path) -> None:
    write(app_dir, "boom.py", "raise RuntimeError('database is not configured')\n")
    with pytest.raises(TargetError) as info:
        load_target("boom.py:app")
    message = str(info.value)
    assert "RuntimeError: database is not configured at boom.py:1" in message
    assert "\n" not in message
    assert "Traceback" in info.value.log_tail


def test_a_factory_raising_is_reported(app_dir: Path) -> None:
    write(app_dir, "badfactory.py", "def make():\n    raise KeyError('SECRET_KEY')\n")
    with pytest.raises(TargetError, match=r"make\(\) raised KeyError"):
        load_target("badfactory.py:make()")


def test_a_tornado_application_is_recognised(app_dir: Path) -> None:
    write(app_dir, "tapp.py", """
        import tornado.web
        def make_app():
            return tornado.web.Application([])
    """)
    assert load_target("tapp.py:make_app()").kind == "tornado"


def test_an_async_callable_is_asgi(app_dir: Path) -> None:
    write(app_dir, "asgi_app.py", "async def app(scope, receive, send):\n    pass\n")
    assert load_target("asgi_app.py:app").kind == "asgi"


def test_a_webpy_application_is_served_through_its_wsgifunc(app_dir: Path) -> None:
    write(app_dir, "wp.py", """
        import web
        class Index:
            def GET(self):
                return "ok"
        app = web.application(("/", "Index"), {"Index": Index})
    """)
    loaded = load_target("wp.py:app")
    assert loaded.kind == "wsgi" and callable(loaded.app)


def test_cherrypy_tree_is_a_wsgi_app() -> None:
    import cherrypy

    assert classify(cherrypy.tree) == "wsgi"
