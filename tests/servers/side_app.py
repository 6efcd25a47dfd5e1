"""A WSGI app for routes hunted side by side: ``/leak*`` keeps 300 bytes per request in a
module global, ``/die`` ends the process, anything else is clean."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

_kept: list[bytes] = []


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path.startswith("/leak"):
        _kept.append(bytes(300))
    elif path == "/die":
        os._exit(3)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
