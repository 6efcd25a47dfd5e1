"""Send requests to an app in this process, as each framework's own tests do: werkzeug's test
``Client`` for a WSGI callable, a Tornado ``HTTPServer`` and ``AsyncHTTPClient`` on one IOLoop
for a Tornado ``Application`` (what ``tornado.testing`` does), and a direct call of the ASGI
callable on one event loop for an ASGI app."""
from __future__ import annotations

import asyncio
import importlib
import inspect
import itertools
import sys
from pathlib import Path
from typing import Any, Callable

Send = Callable[[str], int]


def load(target: str, directory: Path) -> Any:
    """The app ``file.py:attr`` or ``file.py:factory()`` names, imported from ``directory``."""
    file, _, attr = target.partition(":")
    sys.path.insert(0, str(directory))
    module = importlib.import_module(Path(file).stem)
    call = attr.endswith("()")
    obj = getattr(module, attr.removesuffix("()"))
    return obj() if call else obj


def paths(routes: list[str]) -> Callable[[], str]:
    """Each call: the next route, ``{n}`` replaced by a counter."""
    counter = itertools.count()
    cycle = itertools.cycle(routes)

    def next_path() -> str:
        return next(cycle).replace("{n}", str(next(counter)))

    return next_path


def sender(app: Any) -> Send:
    """A function that sends one GET to ``app`` and returns the status."""
    tornado_web = sys.modules.get("tornado.web")
    if tornado_web is not None and isinstance(app, tornado_web.Application):
        return _tornado(app)
    call = app if inspect.isroutine(app) else type(app).__call__
    if inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(app):
        return _asgi(app)
    from werkzeug.test import Client

    client = Client(app)

    def send(path: str) -> int:
        response = client.get(path)
        status = response.status_code
        response.close()
        return status

    return send


def _tornado(app: Any) -> Send:
    from tornado.httpclient import AsyncHTTPClient
    from tornado.httpserver import HTTPServer
    from tornado.testing import bind_unused_port

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    async def start() -> tuple[Any, int]:
        sock, port = bind_unused_port()
        server = HTTPServer(app)
        server.add_sockets([sock])
        return AsyncHTTPClient(), port

    client, port = loop.run_until_complete(start())

    def send(path: str) -> int:
        response = loop.run_until_complete(client.fetch(f"http://127.0.0.1:{port}{path}", raise_error=False))
        return int(response.code)

    return send


def _asgi(app: Any) -> Send:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    async def call(path: str) -> int:
        path_part, _, query = path.partition("?")
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": path_part, "raw_path": path_part.encode(), "root_path": "",
                 "query_string": query.encode(), "headers": [(b"host", b"127.0.0.1")],
                 "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80)}
        status = 0
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.sleep(3600)  # no disconnect while the app answers
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, send)
        return status

    def send(path: str) -> int:
        return loop.run_until_complete(call(path))

    return send
