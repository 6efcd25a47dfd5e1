"""Targets, the one spec parser of hunt, check and the plugin: FILE.py:APP, DIR/PKG:APP,
MODULE:APP, MODULE:FACTORY(ARGS), their bad forms (usage, exit 2), and loading (exit 3)."""
from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from memprobe.cli import main
from memprobe.errors import ExitCode, TargetError, UsageError
from memprobe.target import (
    TargetSpec,
    TargetSpecError,
    classify,
    load_target,
    locate,
    parse_target,
    precheck,
)

pytest_plugins = ["pytester"]


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
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


WSGI = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


# ---- the parser: every form, without importing or reading anything ----

def _form(t: TargetSpec) -> tuple[object, ...]:
    return (t.module, t.attr, t.path.name if t.path else None, t.call, t.args, dict(t.kwargs))


@pytest.mark.parametrize("spec, form", [
    ("service.py:app", ("service", "app", "service.py", False, (), {})),
    ("path/to/service.py:app", ("service", "app", "service.py", False, (), {})),
    ("dir/pkg:app", ("pkg", "app", "pkg", False, (), {})),
    ("./pkg:app", ("pkg", "app", "pkg", False, (), {})),
    ("pkg.web:application", ("pkg.web", "application", None, False, (), {})),
    ("web:create_app()", ("web", "create_app", None, True, (), {})),
    ("pkg.web:create_app('testing', 2)", ("pkg.web", "create_app", None, True, ("testing", 2), {})),
    ("app.py:create_app('sqlite:///x.db')",
     ("app", "create_app", "app.py", True, ("sqlite:///x.db",), {})),
    ("app.py:create_app(config='x', debug=False)",
     ("app", "create_app", "app.py", True, (), {"config": "x", "debug": False})),
    ("app.py:make({'db': 'sqlite:///x.db'}, [1, 2])",
     ("app", "make", "app.py", True, ({"db": "sqlite:///x.db"}, [1, 2]), {})),
    ("app.py:create_app('it\\'s: (odd)')", ("app", "create_app", "app.py", True, ("it's: (odd)",), {})),
    ("mod:obj.app", ("mod", "obj.app", None, False, (), {})),
    ("mod:factories.make(name='a:b')", ("mod", "factories.make", None, True, (), {"name": "a:b"})),
    ("web.py", ("web", None, "web.py", False, (), {})),
    ("pkg.web", ("pkg.web", None, None, False, (), {})),
    ("  app.py : app  ", ("app", "app", "app.py", False, (), {})),
])
def test_every_form_of_spec_parses(spec: str, form: tuple[object, ...]) -> None:
    assert _form(parse_target(spec)) == form


def test_a_relative_path_is_taken_from_the_base_and_made_absolute(tmp_path: Path) -> None:
    t = parse_target("sub/app.py:create_app('sqlite:///x.db')", base=tmp_path)
    assert t.path == tmp_path.resolve() / "sub" / "app.py" and t.source == "sub/app.py"


def test_a_spec_is_spelled_again_with_a_resolved_path(tmp_path: Path) -> None:
    t = parse_target("app.py:create_app('sqlite:///x.db')").with_path(tmp_path / "app.py")
    assert t.spec == f"{tmp_path.resolve()}/app.py:create_app('sqlite:///x.db')"
    assert _form(parse_target(t.spec)) == _form(t)


@pytest.mark.parametrize("spec, message", [
    ("", "empty target: give FILE.py:APP, MODULE:APP or MODULE:FACTORY(ARGS)"),
    (":app", "target ':app' names no file or module before ':'; give FILE.py:APP, "
             "MODULE:APP or MODULE:FACTORY(ARGS)"),
    ("app.py:", "target 'app.py:' names nothing after ':'; give the app (app.py:app) or "
                "leave out the ':'"),
    ("not a module:app", "target 'not a module:app': 'not a module' is not a module name or a "
                         ".py file; give FILE.py:APP, MODULE:APP or MODULE:FACTORY(ARGS)"),
    ("app.py:1app", "target 'app.py:1app': '1app' is not an attribute name or a factory call "
                    "such as create_app()"),
    ("app.py:a:b", "target 'app.py:a:b' has a second ':' outside a factory's arguments; quote "
                   "an argument that contains one"),
    ("web:create_app(config)", "target 'web:create_app(config)': a factory takes literal "
                               "arguments only, e.g. create_app('testing') or "
                               "create_app(config='testing')"),
    ("web:create_app(**options)", "target 'web:create_app(**options)': a factory takes literal "
                                  "arguments only, e.g. create_app('testing') or "
                                  "create_app(config='testing')"),
    ("app.py:create_app('sqlite:///x.db'", "target \"app.py:create_app('sqlite:///x.db'\": "
                                           "unbalanced parentheses"),
    ("app.py:create_app('sqlite:///x.db)", "target \"app.py:create_app('sqlite:///x.db)\": "
                                           "unbalanced quotes"),
    ("app.py:create_app())", "target 'app.py:create_app())': unbalanced parentheses"),
    ("app.py:create_app()()", "target 'app.py:create_app()()': 'create_app()()' is not a "
                              "factory call such as create_app()"),
    ("app.py:create_app().app", "target 'app.py:create_app().app': 'create_app().app' is not "
                                "an attribute name or a factory call such as create_app()"),
    ("create_app('sqlite:///x.db')", "target \"create_app('sqlite:///x.db')\": "
                                     "\"create_app('sqlite:///x.db')\" is not a module name or "
                                     "a .py file; give FILE.py:APP, MODULE:APP or "
                                     "MODULE:FACTORY(ARGS)"),
])
def test_a_malformed_spec_is_one_usage_error_with_one_line(spec: str, message: str) -> None:
    with pytest.raises(TargetSpecError) as info:
        parse_target(spec)
    assert str(info.value) == message
    assert isinstance(info.value, UsageError) and info.value.exit_code == ExitCode.USAGE == 2


# ---- locating the source, without importing: what check reads, what precheck tests ----

def test_locate_finds_a_file_a_package_and_a_module_without_importing(app_dir: Path) -> None:
    write(app_dir, "plain.py", "raise SystemExit('imported!')\n")
    write(app_dir, "shop/__init__.py", "raise SystemExit('imported!')\n")
    write(app_dir, "shop/views.py", "raise SystemExit('imported!')\n")
    assert locate(parse_target("plain.py:app")) == app_dir / "plain.py"
    assert locate(parse_target("shop:app")) == app_dir / "shop" / "__init__.py"
    assert locate(parse_target("./shop:app")) == (app_dir / "shop" / "__init__.py").resolve()
    assert locate(parse_target("shop.views:create_app('a:b')")) == app_dir / "shop" / "views.py"
    assert "shop" not in sys.modules and "plain" not in sys.modules


@pytest.mark.parametrize("spec, message", [
    ("missing.py:app", "no such file or directory: "),
    ("no_such_module_here:app", "cannot find module 'no_such_module_here'"),
    ("./plaindir:app", "plaindir is a directory, not a Python file or package"),
])
def test_a_spec_naming_nothing_is_a_target_error_exit_3(app_dir: Path, spec: str, message: str) -> None:
    (app_dir / "plaindir").mkdir()
    with pytest.raises(TargetError, match=message) as info:
        locate(parse_target(spec))
    assert info.value.exit_code == ExitCode.TARGET == 3


def test_precheck_reports_a_missing_file(app_dir: Path) -> None:
    with pytest.raises(TargetError, match="no such file"):
        precheck(parse_target("missing.py:app"))


def test_precheck_reports_a_missing_module() -> None:
    with pytest.raises(TargetError, match="no module named 'surely_not_installed_xyz'"):
        precheck(parse_target("surely_not_installed_xyz.web:app"))


# ---- loading: this runs the user's code ----

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


WSGI_FACTORY = """
def create_app(db, *, name="app"):
    if db != "sqlite:///x.db":
        raise ValueError(f"got {db!r}")
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [name.encode()]
    return app
"""


def test_a_factory_gets_arguments_with_colons_and_keywords(app_dir: Path) -> None:
    write(app_dir, "colon.py", WSGI_FACTORY)
    loaded = load_target("colon.py:create_app('sqlite:///x.db', name='a:b')")
    assert loaded.kind == "wsgi"
    assert loaded.app({}, lambda status, headers: None) == [b"a:b"]


def test_a_dotted_attribute_and_a_package_directory_load(app_dir: Path) -> None:
    write(app_dir, "site/shop/__init__.py", "from .views import holder\n")
    write(app_dir, "site/shop/views.py", "class Holder:\n    pass\nholder = Holder()\n"
          + WSGI.replace("def app", "def _app") + "holder.app = _app\n")
    loaded = load_target("site/shop:holder.app")
    assert (loaded.kind, loaded.module.__name__, loaded.app.__name__) == ("wsgi", "shop", "_app")


# ---- hunt, check and the plugin agree: one parser, one code per kind of failure ----

FLASK_FACTORY = """
from flask import Flask

def create_app(database):
    if database != "sqlite:///x.db":
        raise ValueError(f"the factory got {database!r}")
    app = Flask(__name__)
    app.config["DATABASE"] = database

    @app.get("/")
    def index():
        return app.config["DATABASE"]

    return app
"""


@pytest.mark.timeout(180)
def test_hunt_passes_a_factory_argument_with_colons_to_the_app(
        app_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(app_dir, "app.py", FLASK_FACTORY)
    out = app_dir / "hunt.json"
    code = main(["hunt", "app.py:create_app('sqlite:///x.db')", "--route", "/", "--requests", "200",
                 "--rounds", "2", "--warmup", "10", "--json", str(out), "-q"])
    assert code in (0, 1, 5), capsys.readouterr().err  # a verdict: the factory got its argument
    data = json.loads(out.read_text())
    assert data["framework"] == "flask" and [r["route"] for r in data["routes"]] == ["/"]


@pytest.mark.parametrize("command", ["hunt", "check"])
@pytest.mark.parametrize("spec, code, message", [
    ("app.py:create_app('sqlite:///x.db'", 2, "unbalanced parentheses"),
    ("app.py:create_app(config)", 2, "a factory takes literal arguments only"),
    ("missing.py:create_app('sqlite:///x.db')", 3, "no such file or directory: "),
])
def test_hunt_and_check_refuse_a_spec_with_the_same_line_and_code(
        app_dir: Path, capsys: pytest.CaptureFixture[str], command: str, spec: str, code: int,
        message: str) -> None:
    assert main([command, spec]) == code
    err = capsys.readouterr().err
    assert err.startswith("memprobe: ") and message in err and err.count("\n") == 1, err


def test_check_reads_the_file_a_factory_spec_names(app_dir: Path) -> None:
    from memprobe.check.source import resolve_target

    write(app_dir, "app.py", FLASK_FACTORY)
    target = resolve_target("app.py:create_app('sqlite:///x.db')")
    assert target.files == [app_dir / "app.py"]
    assert target.hunt_target == f"{app_dir}/app.py:create_app('sqlite:///x.db')"


def test_the_plugin_finds_a_relative_file_from_the_test_files_directory(
        pytester: pytest.Pytester) -> None:
    pytester.mkpydir("suite")
    (pytester.path / "suite" / "app.py").write_text(WSGI_FACTORY, encoding="utf-8")
    (pytester.path / "suite" / "test_where.py").write_text(textwrap.dedent('''
        from pathlib import Path

        from memprobe.pytest_plugin import resolve_target

        HERE = Path(__file__).resolve().parent

        def test_where(request):
            spec = "app.py:create_app('sqlite:///x.db')"
            assert resolve_target(spec, request.node) == f"{HERE}/app.py:{spec[7:]}"
            assert resolve_target("app.py", request.node) == f"{HERE}/app.py"
            assert resolve_target("pkg.web:app", request.node) == "pkg.web:app"
            assert resolve_target("app.py:make(", request.node) == "app.py:make("
    '''), encoding="utf-8")
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=1)


def test_the_plugin_refuses_a_malformed_spec_with_the_parsers_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bad='''
        import pytest

        @pytest.mark.memprobe_limit("app.py:create_app(config)", route="/", per_request="1 KiB")
        def test_bad():
            pass
    ''')
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*memprobe: could not measure app.py:create_app(config): target "
                                 "'app.py:create_app(config)': a factory takes literal arguments "
                                 "only*"])
