"""Every case on Starlette (ASGI), plus timers left on the event loop."""
from __future__ import annotations

import asyncio
from typing import Callable

import cases
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route


def _endpoint(fn: Callable[[], str]) -> Callable[[Request], object]:
    async def endpoint(request: Request) -> PlainTextResponse:
        return PlainTextResponse(fn())

    return endpoint


def _reminder(order: dict[str, object]) -> None:
    order["reminded"] = True


async def asyncio_timers(request: Request) -> PlainTextResponse:
    """A reminder scheduled a day ahead per request: the event loop holds every timer until then."""
    asyncio.get_running_loop().call_later(86_400, _reminder, {"items": list(range(20))})  # LEAK
    return PlainTextResponse("ok")


app = Starlette(routes=[*(Route(f"/{name}", _endpoint(getattr(cases, name))) for name in cases.CASES),
                        Route("/asyncio_timers", asyncio_timers)])
