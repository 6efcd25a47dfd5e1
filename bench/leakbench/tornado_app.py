"""Every case on Tornado, plus timers left on the IOLoop: ``make_app()`` returns an ``Application``."""
from __future__ import annotations

from typing import Callable

import cases
import tornado.ioloop
import tornado.web


def _handler(fn: Callable[[], str]) -> type[tornado.web.RequestHandler]:
    class Handler(tornado.web.RequestHandler):
        def get(self) -> None:
            self.write(fn())

    return Handler


def _reminder(order: dict[str, object]) -> None:
    order["reminded"] = True


def tornado_timers() -> str:
    """A reminder scheduled a day ahead per request: the IOLoop holds every timer until then."""
    tornado.ioloop.IOLoop.current().call_later(86_400, _reminder, {"items": list(range(20))})  # LEAK
    return "ok"


def make_app() -> tornado.web.Application:
    """Every case, one handler each."""
    routes = [(f"/{name}", _handler(getattr(cases, name))) for name in cases.CASES]
    return tornado.web.Application([*routes, ("/tornado_timers", _handler(tornado_timers))])
