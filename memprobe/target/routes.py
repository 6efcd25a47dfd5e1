"""Which routes an app has, when it says: a Flask or Bottle app's parameterless GET routes."""
from __future__ import annotations

from typing import Any


def discover_routes(app: Any) -> list[str]:
    """Parameterless GET routes of a Flask (``url_map``) or Bottle (``routes``) app, sorted."""
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
    return sorted(routes)
