"""The shop of shop.py as a Tornado app, served by Tornado itself (``python shop_tornado.py
--port N``): the same five routes; POST /orders keeps ~200 B per request, only when the form
carries ``gift=1``."""
from __future__ import annotations

import asyncio
import json
import sys

import tornado.web

_gifts: list[bytes] = []


class Index(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write("shop")


class Item(tornado.web.RequestHandler):
    def get(self, item_id: str) -> None:
        self.write(json.dumps({"id": int(item_id), "price": int(item_id) * 3}))


class Orders(tornado.web.RequestHandler):
    def post(self) -> None:
        if self.get_body_argument("gift", "0") == "1":
            _gifts.append(bytes(160))  # ~200 B: a new bytes object and its slot
        self.write("ordered")


class Search(tornado.web.RequestHandler):
    async def get(self) -> None:
        await asyncio.sleep(0)
        self.write(",".join(str(i) for i in range(50)))


class Health(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write("ok")


def make_app() -> tornado.web.Application:
    return tornado.web.Application([(r"/", Index), (r"/items/([0-9]+)", Item), (r"/orders", Orders),
                                    (r"/search", Search), (r"/health", Health)])


async def main(port: int) -> None:
    make_app().listen(port, address="127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[sys.argv.index("--port") + 1])))
