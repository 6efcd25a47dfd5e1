from flask import Flask
from flask_caching import Cache

app = Flask(__name__)
app.config["CACHE_TYPE"] = "SimpleCache"  # expect: MP105
app.config["CACHE_DEFAULT_TIMEOUT"] = 300
cache = Cache(app)


@app.route("/")
@cache.cached(timeout=60)
def index():
    return "hello"
