"""Which routes an app has, when it says: the parameterless GET routes of a Flask, Bottle or
Starlette/FastAPI app."""
from __future__ import annotations

from typing import Any


def discover_routes(app: Any) -> list[str]:
    """Parameterless GET routes of a Flask (``url_map``), Bottle or Starlette/FastAPI
    (``routes``) app, sorted; FastAPI's own pages (``/docs``, ``/openapi.json``: out of its
    schema) left out."""
    routes: set[str] = set()
    url_map = getattr(app, "url_map", None)
    if url_map is not None and hasattr(url_map, "iter_rules"):
        for rule in url_map.iter_rules():
            if "GET" in (rule.methods or ()) and not rule.arguments and rule.endpoint != "static":
                routes.add(rule.rule)
    elif isinstance(getattr(app, "routes", None), list):
        for route in app.routes:
            rule, method = getattr(route, "rule", None), getattr(route, "method", None)
            if isinstance(rule, str) and method in ("GET", "ANY") and "<" not in rule and ":" not in rule:
                routes.add(rule)
            path, methods = getattr(route, "path", None), getattr(route, "methods", None)
            if (isinstance(path, str) and methods and "GET" in methods and "{" not in path
                    and getattr(route, "include_in_schema", True) is not False):
                routes.add(path)
    return sorted(routes)
