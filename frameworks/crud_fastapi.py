"""FastAPI CRUD app: an items API over SQLite, raw ``sqlite3`` or SQLAlchemy, on uvicorn.

    python frameworks/crud_fastapi.py --port 8080 [--variant sqlite3|sqlalchemy] [--db FILE]

Routes: ``GET /`` (hello), ``POST /echo``, ``GET /items/`` (all), ``POST /items/``,
``GET|PUT|DELETE /items/{id}``. Sync endpoints (FastAPI runs them in its thread pool), as the
published benchmark's were. Under uvicorn: ``crud_fastapi:create_app`` with ``--factory`` and
``MEMPROBE_CRUD_DB`` (and ``MEMPROBE_CRUD_VARIANT``) set.
"""
from __future__ import annotations

from typing import Any

import uvicorn
from fastapi import Body, FastAPI, HTTPException, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

import _crud
from _common import HELLO, exit_on_sigterm

VARIANTS = ("sqlite3", "sqlalchemy")


class ItemIn(BaseModel):
    """A request body: what a client sends to create or update an item."""

    name: str
    description: str = ""
    price: float


class ItemOut(ItemIn):
    """An item as the API answers it."""

    id: int


def create_app() -> FastAPI:
    """The app over the database and variant the environment names."""
    path, variant = _crud.settings(VARIANTS[0])
    if variant == "sqlalchemy":
        from _crud_orm import OrmItemStore

        store: Any = OrmItemStore(path)
    else:
        store = _crud.ItemStore(path)
    app = FastAPI()

    @app.get("/", response_class=PlainTextResponse)
    def hello() -> str:
        return HELLO

    @app.post("/echo")
    def echo(payload: Any = Body(None)) -> Any:
        return payload

    @app.get("/items/", response_model=list[ItemOut])
    def list_items() -> Any:
        return store.list()

    @app.post("/items/", response_model=ItemOut, status_code=201)
    def create_item(item: ItemIn) -> Any:
        return store.create(item.model_dump())

    @app.get("/items/{item_id}", response_model=ItemOut)
    def get_item(item_id: int) -> Any:
        item = store.get(item_id)
        if item is None:
            raise HTTPException(404, "not found")
        return item

    @app.put("/items/{item_id}", response_model=ItemOut)
    def update_item(item_id: int, item: ItemIn) -> Any:
        updated = store.update(item_id, item.model_dump())
        if updated is None:
            raise HTTPException(404, "not found")
        return updated

    @app.delete("/items/{item_id}", status_code=204)
    def delete_item(item_id: int) -> Response:
        if not store.delete(item_id):
            raise HTTPException(404, "not found")
        return Response(status_code=204)

    return app


def main() -> None:
    """Parse the command line, seed a database unless given one, serve until SIGTERM."""
    args = _crud.parse_args("fastapi", __doc__.splitlines()[0], VARIANTS)
    exit_on_sigterm()
    uvicorn.run(create_app(), host=args.host, port=args.port, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
