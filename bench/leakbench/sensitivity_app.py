"""The sensitivity curve's app: ``/leak/K`` keeps exactly K bytes more per request (a bytearray
grown by K, so no object header or pointer is added: K B/request on average, by construction)."""
from __future__ import annotations

from collections import defaultdict

from flask import Flask

app = Flask(__name__)
_kept: defaultdict[int, bytearray] = defaultdict(bytearray)


@app.get("/leak/<int:k>")
def leak(k: int) -> str:
    """K bytes more kept."""
    _kept[k].extend(bytes(k))  # LEAK
    return "ok"
