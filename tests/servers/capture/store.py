"""A Flask store for the capture tests: orders posted as JSON and as a form, items by id."""
from __future__ import annotations

from typing import Any

from flask import Flask, request

app = Flask(__name__)


@app.post("/api/orders")
def api_order() -> dict[str, Any]:
    data = request.get_json()
    return {"id": data.get("id"), "ok": True}


@app.post("/orders")
def order() -> str:
    return f"ordered {request.form.get('item', '')}"


@app.get("/items/<int:item_id>")
def item(item_id: int) -> dict[str, int]:
    return {"id": item_id}


@app.get("/health")
def health() -> str:
    return "ok"
