"""Starlette hello-world on uvicorn, as Starlette's documentation runs it.

    python frameworks/hello_starlette.py --port 8080 [--host 127.0.0.1]
"""
from __future__ import annotations

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from _common import HELLO, exit_on_sigterm, parse_args


async def hello(request: Request) -> PlainTextResponse:
    """Answer ``GET /`` with the plain-text greeting."""
    return PlainTextResponse(HELLO)


async def echo(request: Request) -> JSONResponse:
    """Answer with the JSON body received."""
    return JSONResponse(await request.json())


app = Starlette(routes=[Route("/", hello), Route("/echo", echo, methods=["POST"])])


def main() -> None:
    """Parse the command line and serve until SIGTERM (uvicorn handles it gracefully)."""
    args = parse_args("starlette", __doc__.splitlines()[0])
    exit_on_sigterm()
    # access_log=False: we measure the framework, not its console; warnings and startup
    # errors still reach stderr.
    uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
