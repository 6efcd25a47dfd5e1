"""web.py hello-world on web.py's own server (``web.httpserver``, which is cheroot).

    python frameworks/hello_webpy.py --port 8080 [--host 127.0.0.1]

``app.run()`` reads its address from ``sys.argv`` and wraps the app in a middleware that prints
every request, so this builds the same server the way ``web.httpserver.runsimple`` does, minus
that middleware (we measure the framework, not its console).
"""
from __future__ import annotations

import web

from _common import HELLO, TEXT_PLAIN, APPLICATION_JSON, echo_body, parse_args, stop_on_sigterm

# web.py defaults to debug mode, whose reloader stats every loaded module on each request: a
# development aid, off here as it is off by default in every other framework measured.
web.config.debug = False

urls = ("/", "Hello", "/echo", "Echo")


class Hello:
    """``GET /``."""

    def GET(self) -> str:
        """Answer with the plain-text greeting."""
        web.header("Content-Type", TEXT_PLAIN)
        return HELLO


class Echo:
    """``POST /echo``."""

    def POST(self) -> bytes:
        """Answer with the JSON body received."""
        web.header("Content-Type", APPLICATION_JSON)
        return echo_body(web.data())


app = web.application(urls, globals())


def wsgi_app() -> object:
    """The application for a WSGI server (gunicorn)."""
    return app.wsgifunc()


def main() -> None:
    """Parse the command line and serve until SIGTERM."""
    args = parse_args("web.py", __doc__.splitlines()[0])
    server = web.httpserver.WSGIServer((args.host, args.port), app.wsgifunc())
    # Before start() has made it ready, stop() is a no-op: SIGTERM then exits at once instead.
    stop_on_sigterm(lambda: server.stop if server.ready else None, wake=(args.host, args.port))
    try:
        server.start()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
