import functools
from functools import lru_cache

from flask import Flask, request

app = Flask(__name__)


@lru_cache(maxsize=None)
def render_profile(name):
    return f"<h1>{name}</h1>"


@functools.cache
def lookup(term):
    return term.upper()


@app.route("/profile")
def profile():
    name = request.args["name"]
    return render_profile(name)  # expect: MP102


@app.route("/search/<term>")
def search(term):
    return lookup(term)  # expect: MP102
