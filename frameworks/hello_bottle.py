"""Bottle hello-world on Bottle's default server (wsgiref), as Bottle's tutorial runs it.

    python frameworks/hello_bottle.py --port 8080 [--host 127.0.0.1]
"""
from __future__ import annotations

from typing import Any

import bottle

from _common import HELLO, TEXT_PLAIN, parse_args, stop_on_sigterm

app = bottle.Bottle()


@app.get("/")
def hello() -> str:
    """Answer ``GET /`` with the plain-text greeting."""
    bottle.response.content_type = TEXT_PLAIN
    return HELLO


@app.post("/echo")
def echo() -> Any:
    """Answer with the JSON body received; Bottle serialises a returned dict itself."""
    return bottle.request.json


def main() -> None:
    """Parse the command line and serve until SIGTERM."""
    args = parse_args("bottle", __doc__.splitlines()[0])
    # server="wsgiref" (the default), built here to reach its socketserver for SIGTERM.
    # quiet=True drops the per-request access log (we measure the framework, not its console);
    # errors such as a port in use still raise and reach stderr.
    server = bottle.WSGIRefServer(host=args.host, port=args.port, quiet=True)
    stop_on_sigterm(lambda: getattr(getattr(server, "srv", None), "shutdown", None),
                    wake=(args.host, args.port))
    bottle.run(app, server=server, quiet=True)


if __name__ == "__main__":
    main()
