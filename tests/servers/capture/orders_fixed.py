"""The fixed twin of orders.py: ``POST /orders`` makes the gift wrap of an order whose body
says ``"gift": true`` for the answer only, and keeps a count, not the wrap."""
from __future__ import annotations

from flask import Flask, request

app = Flask(__name__)
#: gift wraps made so far, in bytes
_wrapped = [0]


@app.get("/")
def index() -> str:
    return "orders"


@app.get("/orders")
def orders() -> dict[str, int]:
    return {"orders": _wrapped[0]}


@app.post("/orders")
def order() -> tuple[dict[str, object], int]:
    data = request.get_json(silent=True) or request.form
    if not data.get("id"):
        return {"error": "an order needs an id"}, 400
    gift = data.get("gift") in (True, "1", "true")
    if gift:
        _wrapped[0] += len(bytearray(512))  # made for the answer, not kept
    return {"id": data["id"], "gift": gift}, 201
