"""An ASGI app that schedules ``loop.call_later(3600, ...)`` per request (issue 15, parts 0 and
2): the event loop's heap of timers holds each request's payload for an hour."""
from __future__ import annotations

import asyncio
import itertools
from typing import Any

_count = itertools.count()


def _expire(payload: dict[str, Any]) -> None:
    payload.clear()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Every HTTP request schedules one timer an hour away, holding a payload."""
    if scope["type"] != "http":
        return
    asyncio.get_running_loop().call_later(3600, _expire, {"request": next(_count), "data": "x" * 100})
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})
