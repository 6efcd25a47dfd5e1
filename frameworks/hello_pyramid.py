"""Pyramid hello-world on waitress, Pyramid's customary server (wsgiref when it is missing).

    python frameworks/hello_pyramid.py --port 8080 [--host 127.0.0.1]
"""
from __future__ import annotations

import sys
from typing import Any

from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response

from _common import HELLO, exit_on_sigterm, parse_args, serve_wsgiref


def hello(request: Request) -> Response:
    """Answer ``GET /`` with the plain-text greeting."""
    return Response(HELLO, content_type="text/plain", charset="utf-8")


def echo(request: Request) -> Any:
    """Answer with the JSON body received (the ``json`` renderer serialises it)."""
    return request.json_body


def make_app() -> Any:
    """The WSGI application with its two routes."""
    with Configurator() as config:
        config.add_route("hello", "/", request_method="GET")
        config.add_view(hello, route_name="hello")
        config.add_route("echo", "/echo", request_method="POST")
        config.add_view(echo, route_name="echo", renderer="json")
        return config.make_wsgi_app()


def main() -> None:
    """Parse the command line and serve until SIGTERM."""
    args = parse_args("pyramid", __doc__.splitlines()[0])
    app = make_app()
    try:
        import waitress
    except ImportError:
        print("waitress is not installed: serving with wsgiref", file=sys.stderr)
        serve_wsgiref(app, args.host, args.port)
        return
    exit_on_sigterm()
    # waitress writes no access log of its own; its "Serving on" line is INFO, below the
    # default WARNING level, while its errors still reach stderr.
    waitress.serve(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
