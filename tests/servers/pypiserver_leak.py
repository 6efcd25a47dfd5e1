"""pypiserver (a real Bottle app from PyPI) with one planted leak: every request leaves a tuple
of two of its strings in a module list (tests/test_hunt_attribution_apps.py)."""
from __future__ import annotations

import os

import pypiserver
from pypiserver.bottle_wrapper.bottle import request

PACKAGES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pypiserver_packages")
app = pypiserver.app(roots=[PACKAGES])
SEEN: list[tuple[str, str]] = []


@app.hook("before_request")
def keep() -> None:
    """Remember who asked for what."""
    SEEN.append((request.path, request.query_string))  # the planted leak
