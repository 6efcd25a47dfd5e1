"""The corpus on Tornado: ``make_app()`` returns an ``Application``."""
from __future__ import annotations

from typing import Callable

import cases
import tornado.web


def _handler(fn: Callable[[], str]) -> type[tornado.web.RequestHandler]:
    class Handler(tornado.web.RequestHandler):
        def get(self) -> None:
            self.write(fn())

    return Handler


def make_app() -> tornado.web.Application:
    """The corpus routes, one handler each."""
    return tornado.web.Application([(f"/{name}", _handler(getattr(cases, name)))
                                    for name in cases.CASES])
