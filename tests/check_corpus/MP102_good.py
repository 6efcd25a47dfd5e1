import functools
from functools import lru_cache

from flask import Flask, request

app = Flask(__name__)


@lru_cache(maxsize=256)
def render_profile(name):
    return f"<h1>{name}</h1>"


@functools.cache
def settings():
    return {"theme": "dark"}


@app.route("/profile")
def profile():
    name = request.args["name"]
    return render_profile(name) + settings()["theme"]
