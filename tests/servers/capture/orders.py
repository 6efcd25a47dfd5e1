"""A Flask app for replay's tests: ``POST /orders`` keeps a gift wrap per order id, only for
an order whose JSON (or form) body says ``"gift": true``: a hunt of ``GET /orders``, or of a POST
without the field, never reaches it, and a replay whose ids repeat fills the dict once."""
from __future__ import annotations

from flask import Flask, request

app = Flask(__name__)
#: order id -> its gift wrap, never let go (the leak)
_gift_wraps: dict[str, bytearray] = {}


@app.get("/")
def index() -> str:
    return "orders"


@app.get("/orders")
def orders() -> dict[str, int]:
    return {"orders": len(_gift_wraps)}


@app.post("/orders")
def order() -> tuple[dict[str, object], int]:
    data = request.get_json(silent=True) or request.form
    if not data.get("id"):
        return {"error": "an order needs an id"}, 400
    gift = data.get("gift") in (True, "1", "true")
    if gift:
        _gift_wraps[str(data["id"])] = bytearray(512)
    return {"id": data["id"], "gift": gift}, 201
