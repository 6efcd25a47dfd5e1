"""Sanic hello-world on Sanic's own server, in a single process.

    python frameworks/hello_sanic.py --port 8080 [--host 127.0.0.1]

``app.run()`` normally starts a worker manager that serves from a child process; memprobe
measures the process it starts, so the app is served from that one (``single_process=True``).
"""
from __future__ import annotations

from sanic import Request, Sanic
from sanic.response import HTTPResponse, json, text

from _common import HELLO, exit_on_sigterm, parse_args

app = Sanic("hello_sanic")
# Sanic picks uvloop when it is installed. With uvloop its server answers before Sanic installs
# its SIGTERM handler (having first set SIGTERM to "ignore"), so a SIGTERM sent right after the
# first answer was lost and the process served on forever (9 of 40 tries here; 0 of 40 on the
# standard asyncio loop). memprobe must be able to stop what it starts, so: asyncio.
app.config.USE_UVLOOP = False


@app.get("/")
async def hello(request: Request) -> HTTPResponse:
    """Answer ``GET /`` with the plain-text greeting."""
    return text(HELLO)


@app.post("/echo")
async def echo(request: Request) -> HTTPResponse:
    """Answer with the JSON body received."""
    return json(request.json)


def main() -> None:
    """Parse the command line and serve until SIGTERM (Sanic handles it gracefully)."""
    args = parse_args("sanic", __doc__.splitlines()[0])
    exit_on_sigterm()
    # access_log=False: we measure the framework, not its console; motd=False drops the
    # start-up banner. Errors still reach stderr.
    app.run(
        host=args.host,
        port=args.port,
        single_process=True,
        access_log=False,
        motd=False,
        debug=False,
    )


if __name__ == "__main__":
    main()
