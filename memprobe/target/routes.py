"""Which routes an app has, when it says: the parameterless GET routes of an app of a framework
memprobe reads (Flask, Bottle, Starlette/FastAPI and what they mount, Django, Tornado, CherryPy,
Pyramid, Falcon, datasette), and where they came from.

Each framework is read where it keeps its routes (Django's URL resolver, Tornado's rules,
CherryPy's tree, Pyramid's introspector...), never by requesting anything. A route that takes
parameters is left out and counted: hunting it needs values only the user knows. An app that
wraps another (a middleware's ``.app``, WhiteNoise's ``.application``, a closure) is looked into.
"""
from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable

__all__ = ["Discovery", "discover_routes", "exposes", "find_routes"]

#: how deep wrappers and nested mounts are followed
_DEPTH = 8


@dataclass
class Discovery:
    """The parameterless GET routes read from an app, and where they came from."""

    routes: list[str] = field(default_factory=list)
    #: the framework they were read from (``Django``); None when the app is of none memprobe reads
    framework: str | None = None
    #: where in it (``Django's URL resolver``)
    source: str | None = None
    #: GET routes that take parameters, left out
    parameterised: int = 0
    #: what else was left out, in words
    left_out: list[str] = field(default_factory=list)
    #: why reading the routes failed, when it did
    error: str | None = None

    def add(self, path: str) -> None:
        """A route, its slashes normalised (``//a/`` -> ``/a/``)."""
        self.routes.append("/" + re.sub("/{2,}", "/", path).lstrip("/"))

    @property
    def note(self) -> str:
        """One line for the hunt's notes: where the routes came from, or that none were."""
        extra = []
        if self.parameterised:
            extra.append(f"{self.parameterised} taking parameters left out (name them with --route)")
        extra += self.left_out
        if self.error:
            extra.append(f"reading them raised {self.error}")
        detail = "; ".join(extra)
        if self.routes:
            return f"routes read from {self.source}" + (f"; {detail}" if detail else "")
        if self.framework is None:
            return ("no routes could be read from this app (memprobe reads Flask, Bottle, Starlette/FastAPI, "
                    "Django, Tornado, CherryPy, Pyramid, Falcon, datasette); hunting / — give --route")
        return (f"no routes found in this {self.framework} app" + (f" ({detail})" if detail else "")
                + "; hunting / — give --route")


def find_routes(app: Any) -> Discovery:
    """The parameterless GET routes of ``app`` (or of the app it wraps), sorted, with where they
    came from and what was left out. Reading runs no request and never raises."""
    for candidate in _unwrapped(app):
        for reader in _READERS:
            try:
                found = reader(candidate)
            except Exception as err:  # a framework's internals moved: say so, hunt /
                name = reader.__name__.strip("_").capitalize()
                return Discovery(framework=name, error=f"{type(err).__name__}: {err}"[:200])
            if found is not None:
                found.routes = sorted(set(found.routes))
                return found
    return Discovery()


def discover_routes(app: Any) -> list[str]:
    """The parameterless GET routes of ``app``, sorted (:func:`find_routes` without the why)."""
    return find_routes(app).routes


def _unwrapped(app: Any) -> Iterator[Any]:
    """``app``, then the apps it wraps: a middleware's ``.app``, WhiteNoise's ``.application``,
    datasette's ``.asgi``, ``__wrapped__``, or the one callable a wrapping closure holds."""
    seen: set[int] = set()
    for _ in range(_DEPTH):
        if app is None or id(app) in seen:
            return
        seen.add(id(app))
        yield app
        inner = None
        for attr in ("app", "application", "asgi", "__wrapped__"):
            try:
                inner = inspect.getattr_static(app, attr)
            except AttributeError:
                continue
            if callable(inner) or hasattr(inner, "routes"):
                break
            inner = None
        if inner is None and inspect.isfunction(app) and app.__closure__:
            held = [c.cell_contents for c in app.__closure__ if _is_cell_full(c)]
            apps = [h for h in held if callable(h) and not inspect.isclass(h) and not inspect.isbuiltin(h)]
            inner = apps[0] if len(apps) == 1 else None
        app = inner


def _is_cell_full(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises on reading
    except ValueError:
        return False
    return True


def _module(name: str) -> Any:
    """A framework's module, when the app's process imported it (never imported here)."""
    return sys.modules.get(name)


def _required(fn: Any, skip: int = 0) -> int:
    """How many parameters ``fn`` needs beyond the first ``skip``."""
    try:
        params = list(inspect.signature(fn).parameters.values())[skip:]
    except (TypeError, ValueError):
        return 0
    return sum(1 for p in params if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))


_META = re.compile(r"[\\^$*+?()\[\]{}|<>]")


def _regex_path(pattern: str) -> str | None:
    """The one path a regex matches, when it matches one (``^about/$`` -> ``about/``); an
    optional group at the end is dropped (``/-/versions(\\.(?P<format>json))?$``); None for a
    pattern that takes parameters."""
    text = pattern.removeprefix("^")
    for end in (r"\Z", "$"):
        text = text.removesuffix(end)
    text = re.sub(r"\((?:[^()]|\([^()]*\))*\)\?$", "", text)
    text = re.sub(r"\\([./\-])", r"\1", text)
    return None if _META.search(text) else text


# -- the readers: each returns None for an app not of its framework ---------------------------

def _flask(app: Any) -> Discovery | None:
    url_map = getattr(app, "url_map", None)
    if url_map is None or not hasattr(url_map, "iter_rules"):
        return None
    top = type(app).__module__.split(".")[0]
    name = {"flask": "Flask", "quart": "Quart"}.get(top, top)
    found = Discovery(framework=name, source=f"{name}'s url_map")
    for rule in url_map.iter_rules():
        if "GET" not in (rule.methods or ()) or rule.endpoint == "static":
            continue
        if rule.arguments:
            found.parameterised += 1
        else:
            found.add(rule.rule)
    return found


def _bottle(app: Any) -> Discovery | None:
    bottle = _module("bottle")
    if bottle is None or not isinstance(app, bottle.Bottle):
        return None
    found = Discovery(framework="Bottle", source="Bottle's routes")
    for route in app.routes:
        if route.method not in ("GET", "ANY"):
            continue
        if "<" in route.rule or ":" in route.rule:
            found.parameterised += 1
        else:
            found.add(route.rule)
    return found


def _starlette(app: Any) -> Discovery | None:
    routing = _module("starlette.routing")
    if routing is None or not isinstance(getattr(app, "routes", None), list):
        return None
    if not any(isinstance(r, routing.BaseRoute) for r in app.routes) and app.routes:
        return None
    name = "FastAPI" if type(app).__module__.startswith("fastapi") else "Starlette"
    found = Discovery(framework=name, source=f"{name}'s routes")
    _starlette_walk(routing, app.routes, "", found, 0)
    return found


def _starlette_walk(routing: Any, routes: list[Any], prefix: str, found: Discovery, depth: int) -> None:
    for route in routes:
        path = getattr(route, "path", "")
        if isinstance(route, routing.Mount):
            inner = route.routes
            if "{" in path:
                found.parameterised += 1
            elif inner and depth < _DEPTH:
                _starlette_walk(routing, list(inner), prefix + path, found, depth + 1)
            else:  # StaticFiles, or an app of another kind mounted
                found.left_out.append(f"{prefix + path or '/'} left out (a mounted "
                                      f"{type(getattr(route, 'app', None)).__name__})")
        elif isinstance(route, routing.Host):
            found.left_out.append(f"routes for host {route.host!r} left out")
        elif isinstance(route, routing.Route):
            methods = route.methods
            if methods is None:  # an HTTPEndpoint class answers what it defines
                methods = {"GET"} if hasattr(route.endpoint, "get") else set()
            if "GET" not in methods or getattr(route, "include_in_schema", True) is False:
                continue
            if "{" in path:
                found.parameterised += 1
            else:
                found.add(prefix + path)


def _django(app: Any) -> Discovery | None:
    base = _module("django.core.handlers.base")
    if base is None or not isinstance(app, base.BaseHandler):
        return None
    from django.urls import URLResolver, get_resolver

    found = Discovery(framework="Django", source="Django's URL resolver")
    admin: list[str] = []

    def walk(patterns: Any, prefix: str, depth: int) -> None:
        for entry in patterns:
            piece = _django_piece(entry.pattern)
            if isinstance(entry, URLResolver):
                if entry.namespace == "admin" or entry.app_name == "admin":
                    admin.append(prefix + (piece or ""))
                elif piece is None:
                    found.parameterised += 1
                elif depth < _DEPTH:
                    walk(entry.url_patterns, prefix + piece, depth + 1)
            elif _django_gets(entry.callback):
                if piece is None:
                    found.parameterised += 1
                else:
                    found.add(prefix + piece)

    walk(get_resolver().url_patterns, "/", 0)
    if admin:
        found.left_out.append(f"the admin site ({', '.join(admin)}) left out: it answers a request "
                              "without a login with a redirect to its login page")
    return found


def _django_piece(pattern: Any) -> str | None:
    """The path a Django pattern matches, None when it takes parameters."""
    if getattr(pattern, "converters", None):
        return None
    kind = type(pattern).__name__
    if kind == "RegexPattern":
        return _regex_path(str(pattern))
    text = str(pattern)
    return None if "<" in text else text


def _django_gets(callback: Any) -> bool:
    """Whether a Django view answers GET, when it says (class-based views and DRF's do)."""
    actions = getattr(callback, "actions", None)  # a DRF viewset's {method: action}
    if isinstance(actions, dict):
        return "get" in actions
    cls = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
    if inspect.isclass(cls):
        return hasattr(cls, "get") and "get" in getattr(cls, "http_method_names", ("get",))
    return True


def _tornado(app: Any) -> Discovery | None:
    web, routing = _module("tornado.web"), _module("tornado.routing")
    if web is None or routing is None or not isinstance(app, web.Application):
        return None
    found = Discovery(framework="Tornado", source="Tornado's rules")

    def walk(rules: list[Any], depth: int) -> None:
        for rule in rules:
            matcher, target = rule.matcher, rule.target
            if isinstance(matcher, routing.PathMatches):
                if not _tornado_handler(web, target):
                    found.left_out.append(f"rules under {matcher.regex.pattern!r} left out")
                elif "GET" not in target.SUPPORTED_METHODS or target.get is web.RequestHandler.get:
                    continue
                elif matcher._group_count or matcher._path is None:
                    found.parameterised += 1
                else:
                    found.add(matcher._path)
            elif isinstance(target, routing.RuleRouter) and depth < _DEPTH and (
                    isinstance(matcher, routing.AnyMatches)
                    or (isinstance(matcher, routing.HostMatches) and matcher.host_pattern.pattern == ".*$")):
                walk(target.rules, depth + 1)
            elif isinstance(matcher, routing.HostMatches):
                found.left_out.append(f"rules for host {matcher.host_pattern.pattern!r} left out")

    walk(app.default_router.rules, 0)
    return found


def _tornado_handler(web: Any, target: Any) -> bool:
    return inspect.isclass(target) and issubclass(target, web.RequestHandler)


def _cherrypy(app: Any) -> Discovery | None:
    tree = _module("cherrypy._cptree")
    if tree is None:
        return None
    if isinstance(app, tree.Tree):
        mounted = list(app.apps.items())
    elif isinstance(app, tree.Application):
        mounted = [(app._script_name or "", app)]
    else:
        return None
    found = Discovery(framework="CherryPy", source="CherryPy's tree")
    for script_name, application in mounted:
        _cherrypy_walk(application.root, script_name, found, set(), 0)
    return found


def _exposed(obj: Any) -> bool:
    return bool(getattr(obj, "exposed", False))


def exposes(obj: Any) -> bool:
    """Whether an object has exposed handlers, or holds objects that have (a CherryPy root)."""
    if _exposed_inside(obj):
        return True
    return any(hasattr(v, "__dict__") and not isinstance(v, (type, ModuleType)) and _exposed_inside(v)
               for v in list(getattr(obj, "__dict__", {}).values()))


def _exposed_inside(obj: Any) -> bool:
    members = [v for klass in type(obj).__mro__ if klass is not object for v in vars(klass).values()]
    return any(_exposed(v) for v in members + list(getattr(obj, "__dict__", {}).values()))


def _cherrypy_walk(obj: Any, prefix: str, found: Discovery, seen: set[int], depth: int) -> None:
    """CherryPy's default dispatcher: ``index`` is the object's own path, every other exposed
    method or object its name; ``default`` takes the rest of the path (a parameter)."""
    if obj is None or id(obj) in seen or depth > _DEPTH:
        return
    seen.add(id(obj))
    if _exposed(obj) and hasattr(obj, "GET"):  # a resource of the MethodDispatcher
        found.add(prefix + "/")
    names = {n for klass in type(obj).__mro__ if klass is not object for n in vars(klass)}
    names |= set(getattr(obj, "__dict__", {}))
    for name in sorted(names):
        if name.startswith("_"):
            continue
        try:
            member = inspect.getattr_static(obj, name)
        except AttributeError:
            continue
        if isinstance(member, property):
            continue
        if inspect.isfunction(member) or isinstance(member, (staticmethod, classmethod)):
            handler = getattr(obj, name)
            if not _exposed(handler) or getattr(handler, "__module__", "").startswith("cherrypy._"):
                continue  # CherryPy's own (the favicon tree.mount serves)
            path = prefix + "/" if name == "index" else f"{prefix}/{name}"
            if name == "default" or _required(handler):
                found.parameterised += 1
            else:
                found.add(path)
        elif hasattr(member, "__dict__") and not isinstance(member, (type, ModuleType)):
            if _exposed(member) and (callable(member) or hasattr(member, "GET")):
                found.add(f"{prefix}/{name}")
            elif exposes(member):
                _cherrypy_walk(member, f"{prefix}/{name}", found, seen, depth + 1)


def _pyramid(app: Any) -> Discovery | None:
    router = _module("pyramid.router")
    if router is None or not isinstance(app, router.Router):
        return None
    found = Discovery(framework="Pyramid", source="Pyramid's introspector")
    introspector = app.registry.introspector
    viewless = 0
    for entry in introspector.get_category("routes"):
        route = entry["introspectable"]
        pattern = route["pattern"]
        if route.get("static") or not _gets(route.get("request_methods")):
            continue
        views = [v for v in entry["related"] if v.category_name == "views"]
        if not any(_gets(v.get("request_methods")) for v in views):
            viewless += not views
            continue
        if "{" in pattern or "*" in pattern:
            found.parameterised += 1
        else:
            found.add("/" + pattern.lstrip("/"))
    for entry in introspector.get_category("views"):
        view = entry["introspectable"]  # a view of traversal's root, not of a route
        if (view.get("route_name") is None and view.get("context") is None and not view.get("name")
                and _gets(view.get("request_methods"))):
            found.add("/")
    if viewless:
        found.left_out.append(f"{viewless} route{'s' if viewless != 1 else ''} without a view left out")
    return found


def _gets(methods: Any) -> bool:
    """Whether a Pyramid predicate's ``request_method`` lets GET through (None: any method)."""
    if methods is None:
        return True
    return "GET" in ((methods,) if isinstance(methods, str) else tuple(methods))


def _falcon(app: Any) -> Discovery | None:
    falcon = _module("falcon")
    if falcon is None or not isinstance(app, falcon.App):
        return None
    found = Discovery(framework="Falcon", source="Falcon's router")

    def walk(nodes: list[Any], prefix: str, depth: int) -> None:
        for node in nodes:
            if node.is_var:
                found.parameterised += _falcon_count(node)
                continue
            path = f"{prefix}/{node.raw_segment}"
            responder = (node.method_map or {}).get("GET")
            if node.resource is not None and getattr(responder, "__self__", None) is node.resource:
                found.add(path)
            if depth < _DEPTH:
                walk(node.children, path, depth + 1)

    walk(getattr(app._router, "_roots", []), "", 0)
    return found


def _falcon_count(node: Any) -> int:
    return int(node.resource is not None) + sum(_falcon_count(c) for c in node.children)


def _datasette(app: Any) -> Discovery | None:
    module = _module("datasette.app")
    if module is None or not isinstance(app, module.DatasetteRouter):
        return None
    found = Discovery(framework="datasette", source="datasette's routes")
    for regex, _view in app.routes:
        path = _regex_path(regex.pattern)
        if path is None:
            found.parameterised += 1
        else:
            found.add(path)
    return found


_READERS: tuple[Callable[[Any], Discovery | None], ...] = (
    _flask, _bottle, _django, _tornado, _cherrypy, _pyramid, _falcon, _datasette, _starlette)
