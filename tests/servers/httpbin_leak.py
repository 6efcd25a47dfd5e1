"""httpbin (a real third-party Flask app, from PyPI) with one planted leak: ``/anything``
appends each request's query arguments to a module list (tests/test_hunt_attribution_apps.py)."""
from __future__ import annotations

from typing import Any

import httpbin
from flask import request

app = httpbin.app
_view = app.view_functions["view_anything"]
SEEN: list[dict[str, str]] = []


def anything(*args: Any, **kwargs: Any) -> Any:
    """httpbin's own /anything, after keeping what was asked."""
    SEEN.append(request.args.to_dict())  # the planted leak
    return _view(*args, **kwargs)


app.view_functions["view_anything"] = anything
