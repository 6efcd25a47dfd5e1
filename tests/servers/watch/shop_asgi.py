"""The shop of shop.py as a Starlette app, for uvicorn: the same five routes; POST /orders keeps
~200 B per request, only when the form carries ``gift=1``."""
from __future__ import annotations

from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

_gifts: list[bytes] = []


async def index(request: Request) -> PlainTextResponse:
    return PlainTextResponse("shop")


async def item(request: Request) -> JSONResponse:
    item_id = request.path_params["item_id"]
    return JSONResponse({"id": item_id, "price": item_id * 3})


async def order(request: Request) -> PlainTextResponse:
    form = parse_qs((await request.body()).decode())  # request.form() needs python-multipart
    if form.get("gift") == ["1"]:
        _gifts.append(bytes(160))  # ~200 B: a new bytes object and its slot
    return PlainTextResponse("ordered")


async def search(request: Request) -> PlainTextResponse:
    return PlainTextResponse(",".join(str(i) for i in range(50)))


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(routes=[
    Route("/", index), Route("/items/{item_id:int}", item), Route("/orders", order, methods=["POST"]),
    Route("/search", search), Route("/health", health),
])
