"""The clean twin of wsgi_leaky.py: /leak keeps only the last 100 records."""
import collections

from flask import Flask, request

app = Flask(__name__)
_seen: collections.deque[dict[str, str]] = collections.deque(maxlen=100)


@app.route("/leak")
def leak() -> str:
    _seen.append({"path": request.path, "agent": request.headers.get("User-Agent", "") + "x" * 200})
    return "kept"


@app.route("/ok")
def ok() -> str:
    return "fine"
