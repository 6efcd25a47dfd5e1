"""Which routes a hunt takes from an app it was given without ``--route``: the parameterless GET
routes of every framework memprobe reads, read where the framework keeps them, with a note saying
where they came from, what was left out, or that none were found and ``/`` is hunted.

The apps are real packages' apps: CherryPy's own tutorials as they ship, a Django project with a
real app and DRF's router (tests/fixtures/djangosite), and small Tornado, Pyramid, Starlette,
Falcon and datasette apps (tests/fixtures/routeapps)."""
from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memprobe.agent.messages import Hello
from memprobe.errors import TargetError
from memprobe.target import load_target
from memprobe.target.routes import find_routes

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
APPS = FIXTURES / "routeapps"
DJANGO_SITE = FIXTURES / "djangosite"
#: a flat route stops once it could see leaks of 64 B/request
FAST = ["--sensitivity", "64", "--warmup", "300"]


def app_in(name: str) -> Any:
    return load_target(f"{APPS / name}.py:app").app


def django_application(monkeypatch: pytest.MonkeyPatch) -> Any:
    pytest.importorskip("rest_framework")
    monkeypatch.syspath_prepend(str(DJANGO_SITE))
    return importlib.import_module("routesite.wsgi").application


@pytest.fixture(autouse=True)
def _forget_the_apps(tmp_path: Path) -> Iterator[None]:
    """The apps a test loads here (the fixture project's ``shop`` and ``routesite``, a
    ``plain.py`` in its temporary folder) leave ``sys.modules`` with it: a later test of the same
    worker that makes its own ``shop`` or ``plain`` must not get these."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        where = str(getattr(sys.modules[name], "__file__", "") or "")
        if where.startswith((str(FIXTURES), str(tmp_path))):
            del sys.modules[name]


def test_django_routes_come_from_the_url_resolver_through_include_and_drfs_router(
        monkeypatch: pytest.MonkeyPatch) -> None:
    found = find_routes(django_application(monkeypatch))
    # /shop/checkout/ answers POST only; /shop/<int:pk>/ and DRF's detail and format-suffix
    # routes take parameters; the admin answers a redirect to its login
    assert found.routes == ["/", "/shop/", "/shop/about.html", "/shop/api/", "/shop/api/products/",
                            "/shop/recent/"]
    assert found.note == ("routes read from Django's URL resolver; 5 taking parameters left out "
                          "(name them with --route); the admin site (/admin/) left out: it answers a "
                          "request without a login with a redirect to its login page")


def test_djangos_asgi_handler_has_the_same_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    wsgi = find_routes(django_application(monkeypatch))
    asgi = find_routes(importlib.import_module("routesite.asgi").application)
    assert asgi.routes == wsgi.routes and asgi.framework == "Django"


#: CherryPy's tutorials as they ship, named as a user names a root object
TUTORIALS = {
    "tut01_helloworld:HelloWorld()": (["/"], 0),
    "tut02_expose_methods:HelloWorld()": (["/", "/show_msg"], 0),
    "tut03_get_and_post:WelcomePage()": (["/", "/greetUser"], 0),  # greetUser(name=None)
    "tut04_complex_site:root": (["/", "/joke/", "/links/", "/links/extra/"], 0),
    "tut05_derived_objects:HomePage()": (["/", "/another/"], 0),
    "tut06_default_method:UsersPage()": (["/"], 1),  # default(user): the rest of the path
    "tut09_files:FileDemo()": (["/", "/download"], 1),  # upload(myFile)
}


@pytest.mark.parametrize("spec", sorted(TUTORIALS))
def test_a_cherrypy_root_object_is_mounted_as_cherrypy_does_and_its_handlers_are_routes(spec: str) -> None:
    pytest.importorskip("cherrypy")
    loaded = load_target(f"cherrypy.tutorial.{spec}")
    found = find_routes(loaded.app)
    assert (loaded.kind, loaded.framework) == ("wsgi", "cherrypy")
    assert (found.routes, found.parameterised) == TUTORIALS[spec]
    assert found.note.startswith("routes read from CherryPy's tree")


def test_cherrypys_tree_lists_every_mounted_app_under_its_script_name() -> None:
    cherrypy = pytest.importorskip("cherrypy")
    from cherrypy.tutorial import tut01_helloworld, tut02_expose_methods

    tree = cherrypy._cptree.Tree()
    tree.mount(tut01_helloworld.HelloWorld(), "")
    tree.mount(tut02_expose_methods.HelloWorld(), "/two")
    assert find_routes(tree).routes == ["/", "/two/", "/two/show_msg"]


def test_an_object_without_exposed_handlers_is_still_not_an_app(tmp_path: Path) -> None:
    pytest.importorskip("cherrypy")
    (tmp_path / "plain.py").write_text("import cherrypy\n\nclass Thing:\n    def index(self):\n"
                                       "        return 'x'\n\nthing = Thing()\n")
    with pytest.raises(TargetError, match="is a Thing, not an app"):
        load_target(f"{tmp_path / 'plain.py'}:thing")


def test_tornado_routes_come_from_its_rules_plain_paths_only() -> None:
    pytest.importorskip("tornado")
    found = find_routes(app_in("routes_tornado"))
    # /items/([0-9]+) and /static/(.*) take parameters; /upload has no get; a host's rules
    # need that Host header
    assert found.routes == ["/", "/old", "/remember"]
    assert found.parameterised == 2
    assert found.left_out == ["rules for host 'admin\\\\.example\\\\.com$' left out"]


def test_pyramid_routes_come_from_the_introspector_gettable_without_placeholders() -> None:
    pytest.importorskip("pyramid")
    found = find_routes(app_in("routes_pyramid"))
    # /users/{name} and static/*subpath take parameters; /submit is POST only; /orphan has no view
    assert found.routes == ["/", "/notes"]
    assert found.parameterised == 2
    assert found.left_out == ["1 route without a view left out"]


def test_starlette_routes_mounted_inside_another_asgi_app_are_found_with_their_prefix() -> None:
    pytest.importorskip("starlette")
    found = find_routes(app_in("routes_starlette"))  # a middleware around Starlette around Starlette
    assert found.routes == ["/api/v1/admin/status", "/api/v1/keep", "/health"]
    assert found.parameterised == 1  # /api/v1/items/{id}; POST /api/v1/items is not a GET route
    assert found.left_out == ["/static left out (a mounted StaticFiles)",
                              "routes for host 'admin.example.com' left out"]


def test_falcon_routes_come_from_its_router() -> None:
    pytest.importorskip("falcon")
    found = find_routes(app_in("routes_falcon"))
    assert found.routes == ["/things", "/v1/health/live"]  # /upload: POST only
    assert found.parameterised == 1


def test_datasettes_routes_are_read_through_its_wrappers() -> None:
    pytest.importorskip("datasette")
    found = find_routes(app_in("routes_datasette"))
    assert {"/", "/-/versions", "/-/databases", "/-/metadata", "/favicon.ico"} <= set(found.routes)
    assert not any("(" in r or "<" in r for r in found.routes)
    assert found.parameterised >= 4  # the static files, a database, a table, a row...
    assert found.source == "datasette's routes"


def test_a_plain_wsgi_callable_says_no_routes_could_be_read_and_that_slash_is_hunted() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b""]

    found = find_routes(app)
    assert found.routes == [] and found.framework is None
    assert found.note.startswith("no routes could be read from this app (memprobe reads Flask, ")
    assert found.note.endswith("; hunting / — give --route")


def test_an_app_of_a_known_framework_without_routes_says_so() -> None:
    bottle = pytest.importorskip("bottle")
    app = bottle.Bottle()
    app.route("/users/<name>")(lambda name: name)
    assert find_routes(app).note == ("no routes found in this Bottle app (1 taking parameters left "
                                     "out (name them with --route)); hunting / — give --route")


def test_the_agents_hello_carries_the_note_and_an_older_agent_none() -> None:
    hello = Hello.from_wire({"pid": 7, "routes": ["/"], "routes_note": "routes read from Tornado's rules"})
    assert hello.routes_note == "routes read from Tornado's rules"
    assert Hello.from_wire({"pid": 7}).routes_note == ""


def hunt(spec: str, out: Path, cwd: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``memprobe hunt SPEC`` without ``--route``, as a user runs it from ``cwd``."""
    proc = subprocess.run([sys.executable, "-m", "memprobe", "hunt", spec, *FAST, "--json", str(out)],
                          cwd=cwd, capture_output=True, text=True, timeout=500,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.exists(), proc.stderr
    return proc, json.loads(out.read_text())


@pytest.mark.slow
def test_a_django_project_is_hunted_on_its_own_routes_and_the_planted_leak_found(tmp_path: Path) -> None:
    pytest.importorskip("rest_framework")
    proc, data = hunt("routesite.wsgi:application", tmp_path / "hunt.json", cwd=DJANGO_SITE)
    routes = {r["route"]: r for r in data["routes"]}
    assert list(routes) == ["/", "/shop/", "/shop/about.html", "/shop/api/", "/shop/api/products/",
                            "/shop/recent/"]
    assert data["notes"][:2] == [
        "routes discovered from the app: " + ", ".join(routes),
        "routes read from Django's URL resolver; 5 taking parameters left out (name them with "
        "--route); the admin site (/admin/) left out: it answers a request without a login with a "
        "redirect to its login page",
    ]
    assert routes["/shop/recent/"]["verdict"] == "leak"
    assert routes["/shop/recent/"]["holders"][0]["description"].startswith("module views.py, global VISITS")
    assert set(routes["/shop/"]["load"]["status_counts"]) == {"200"}
    assert proc.returncode == 1


@pytest.mark.slow
def test_a_cherrypy_tutorials_root_object_is_served_and_hunted_on_its_routes(tmp_path: Path) -> None:
    pytest.importorskip("cherrypy")
    proc, data = hunt("cherrypy.tutorial.tut02_expose_methods:HelloWorld()", tmp_path / "hunt.json", cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert (data["framework"], data["app_kind"]) == ("cherrypy", "wsgi")
    assert data["notes"][:2] == ["routes discovered from the app: /, /show_msg",
                                 "routes read from CherryPy's tree"]
    assert {r["route"]: r["load"]["status_counts"].keys() == {"200"} for r in data["routes"]} == {
        "/": True, "/show_msg": True}


QUICKSTART = '''\
import sys
import cherrypy
from cherrypy.tutorial.tut04_complex_site import root

cherrypy.config.update({"server.socket_host": "127.0.0.1", "server.socket_port": int(sys.argv[1]),
                        "engine.autoreload.on": False, "log.screen": False})
cherrypy.quickstart(root)
'''

READ_ROUTES = '''\
from memprobe.agent.attached import find_app
from memprobe.target.routes import find_routes
found = find_app()
with open({path!r}, "w") as out:
    out.write(repr((found.kind, find_routes(found.app).routes)))
'''


@pytest.mark.timeout(300)
def test_an_attached_agent_reads_the_routes_of_a_cherrypy_quickstart_whose_main_names_no_app(
        tmp_path: Path) -> None:
    pytest.importorskip("cherrypy")
    from memprobe.agent import attach
    from memprobe.process.child import LOOPBACK, Child, free_port

    if not any(attach.shutil.which(d) for d in attach.DEBUGGERS):
        pytest.skip(f"neither gdb nor lldb is installed ({attach.INSTALL})")
    (tmp_path / "site.py").write_text(QUICKSTART, encoding="utf-8")
    port = free_port()
    with Child([sys.executable, "site.py", str(port)], name="site.py", cwd=tmp_path,
               url=f"http://{LOOPBACK}:{port}/") as child:
        attach.run_in(child.pid, READ_ROUTES.format(path=str(tmp_path / "routes")), timeout=60)
    assert (tmp_path / "routes").read_text() == repr(("wsgi", ["/", "/joke/", "/links/", "/links/extra/"]))
