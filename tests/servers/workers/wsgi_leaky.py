"""A Flask app with one leaking route, for hunts of gunicorn workers: /leak keeps a record of
every request in a module global, /ok keeps nothing."""
from flask import Flask, request

app = Flask(__name__)
_seen: list[dict[str, str]] = []


@app.route("/leak")
def leak() -> str:
    _seen.append({"path": request.path, "agent": request.headers.get("User-Agent", "") + "x" * 200})
    return "kept"


@app.route("/ok")
def ok() -> str:
    return "fine"
