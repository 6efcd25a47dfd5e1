from flask import Flask
from flask_caching import Cache

app = Flask(__name__)
cache = Cache(app, config={"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 0})  # expect: MP104
app.config["CACHE_THRESHOLD"] = 10_000_000  # expect: MP104


@app.route("/slow/<int:n>")
@cache.memoize(timeout=0)  # expect: MP104
def slow(n):
    return str(n * n)


@app.route("/put/<key>")
def put(key):
    cache.set(key, "value", timeout=0)  # expect: MP104
    return "ok"
