"""Flask hello-world on ``app.run()``: werkzeug's development server, threaded, HTTP/1.1.

    python frameworks/hello_flask.py --port 8080 [--host 127.0.0.1]
"""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request

from _common import HELLO, TEXT_PLAIN, exit_on_sigterm, parse_args

app = Flask(__name__)


@app.get("/")
def hello() -> Response:
    """Answer ``GET /`` with the plain-text greeting."""
    return Response(HELLO, content_type=TEXT_PLAIN)


@app.post("/echo")
def echo() -> Any:
    """Answer with the JSON body received."""
    return jsonify(request.get_json())


def main() -> None:
    """Parse the command line and serve until SIGTERM."""
    args = parse_args("Flask", __doc__.splitlines()[0])
    # werkzeug logs every request at INFO; we measure the framework, not its console.
    # Startup errors (port in use) are printed by werkzeug itself and still show.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    exit_on_sigterm()
    app.run(host=args.host, port=args.port, debug=False, use_reloader=False)


if __name__ == "__main__":
    main()
