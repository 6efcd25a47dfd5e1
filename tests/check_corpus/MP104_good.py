from flask import Flask
from flask_caching import Cache

app = Flask(__name__)
cache = Cache(app, config={"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 300,
                           "CACHE_THRESHOLD": 500})


@app.route("/slow/<int:n>")
@cache.memoize(timeout=60)
def slow(n):
    return str(n * n)


@app.route("/put/<key>")
def put(key):
    cache.set(key, "value", timeout=120)
    return "ok"
