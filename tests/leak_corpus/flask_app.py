"""The corpus on Flask, plus flask-caching's bounded cache."""
from __future__ import annotations

import itertools

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
    n = next(_keys)
    cache.set(f"k{n}", f"value {n}")
    return "ok"
