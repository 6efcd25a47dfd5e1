"""aiohttp hello-world on ``web.run_app``, aiohttp's own server.

    python frameworks/hello_aiohttp.py --port 8080 [--host 127.0.0.1]
"""
from __future__ import annotations

from aiohttp import web

from _common import HELLO, parse_args


async def hello(request: web.Request) -> web.Response:
    """Answer ``GET /`` with the plain-text greeting."""
    return web.Response(text=HELLO)


async def echo(request: web.Request) -> web.Response:
    """Answer with the JSON body received."""
    return web.json_response(await request.json())


def make_app() -> web.Application:
    """The application with its two routes."""
    app = web.Application()
    app.add_routes([web.get("/", hello), web.post("/echo", echo)])
    return app


def main() -> None:
    """Parse the command line and serve until SIGTERM (run_app handles it gracefully)."""
    args = parse_args("aiohttp", __doc__.splitlines()[0])
    # access_log=None: we measure the framework, not its console; errors still reach stderr.
    web.run_app(make_app(), host=args.host, port=args.port, access_log=None)


if __name__ == "__main__":
    main()
