"""Tornado hello-world on its own HTTPServer and IOLoop, as Tornado's documentation runs it.

    python frameworks/hello_tornado.py --port 8080 [--host 127.0.0.1]
"""
from __future__ import annotations

import asyncio
import json
import signal

import tornado.web

from _common import HELLO, TEXT_PLAIN, APPLICATION_JSON, parse_args


class MainHandler(tornado.web.RequestHandler):
    """``GET /``."""

    def get(self) -> None:
        """Answer with the plain-text greeting."""
        self.set_header("Content-Type", TEXT_PLAIN)
        self.write(HELLO)


class EchoHandler(tornado.web.RequestHandler):
    """``POST /echo``."""

    def post(self) -> None:
        """Answer with the JSON body received."""
        self.set_header("Content-Type", APPLICATION_JSON)
        self.write(json.dumps(json.loads(self.request.body or b"null")))


def make_app() -> tornado.web.Application:
    """The application; ``log_function`` drops the per-request access log (we measure the
    framework, not its console)."""
    return tornado.web.Application(
        [(r"/", MainHandler), (r"/echo", EchoHandler)],
        log_function=lambda handler: None,
    )


async def serve(host: str, port: int) -> None:
    """Listen and run until SIGTERM or SIGINT."""
    app = make_app()
    server = app.listen(port, address=host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.stop()


def main() -> None:
    """Parse the command line and serve until SIGTERM."""
    args = parse_args("tornado", __doc__.splitlines()[0])
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
