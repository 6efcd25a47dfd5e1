"""A Flask app for watch's tests: five routes; POST /orders keeps ~200 B per request, only when
the form carries ``gift=1``."""
from __future__ import annotations

from flask import Flask, request

app = Flask(__name__)
_gifts: list[bytes] = []


@app.get("/")
def index() -> str:
    return "shop"


@app.get("/items/<int:item_id>")
def item(item_id: int) -> dict[str, int]:
    return {"id": item_id, "price": item_id * 3}


@app.post("/orders")
def order() -> str:
    if request.form.get("gift") == "1":
        _gifts.append(bytes(160))  # ~200 B: a new bytes object (b"x" * 160 is folded into one constant) and its slot
    return "ordered"


@app.get("/search")
def search() -> str:
    return ",".join(str(i) for i in range(50))


@app.get("/health")
def health() -> str:
    return "ok"
