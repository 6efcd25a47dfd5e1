"""Every case on Flask, plus flask-caching's bounded cache and a leak in blinker's signals."""
from __future__ import annotations

import itertools

import blinker
import cases
from flask import Flask
from flask_caching import Cache

app = Flask(__name__)
cache = Cache(app, config={"CACHE_TYPE": "SimpleCache", "CACHE_THRESHOLD": 3000,
                           "CACHE_DEFAULT_TIMEOUT": 0})
_keys = itertools.count()

for _name in cases.CASES:
    app.add_url_rule(f"/{_name}", _name, getattr(cases, _name))


@app.get("/flask_caching")
def flask_caching() -> str:
    """flask-caching's SimpleCache, capped at 3,000 entries: bounded."""
    n = next(_keys)
    cache.set(f"k{n}", f"value {n}")
    return "ok"


order_placed = blinker.signal("order-placed")


@app.get("/signal_blinker")
def signal_blinker() -> str:
    """A receiver connected per request, strongly: blinker's namespace keeps every one."""
    def on_order(sender: object, **extra: object) -> None:
        return None

    order_placed.connect(on_order, weak=False)  # LEAK
    return "ok"
