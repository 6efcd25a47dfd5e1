"""FastAPI hello-world on uvicorn, as FastAPI's documentation runs it.

    python frameworks/hello_fastapi.py --port 8080 [--host 127.0.0.1]
"""
from __future__ import annotations

from typing import Any

import uvicorn
from fastapi import Body, FastAPI
from fastapi.responses import PlainTextResponse

from _common import HELLO, exit_on_sigterm, parse_args

app = FastAPI()


@app.get("/", response_class=PlainTextResponse)
def hello() -> str:
    """Answer ``GET /`` with the plain-text greeting."""
    return HELLO


@app.post("/echo")
def echo(payload: Any = Body(None)) -> Any:
    """Answer with the JSON body received."""
    return payload


def main() -> None:
    """Parse the command line and serve until SIGTERM (uvicorn handles it gracefully)."""
    args = parse_args("fastapi", __doc__.splitlines()[0])
    exit_on_sigterm()
    # access_log=False: we measure the framework, not its console; warnings and startup
    # errors still reach stderr.
    uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
