"""Capture files for replay's tests, written as ``memprobe watch --capture`` writes them
(:func:`memprobe.capture.format.write_capture`): tests/servers/capture/orders.py's traffic."""
from __future__ import annotations

import json
from pathlib import Path

from memprobe.capture.format import CapturedRequest, CaptureHeader, write_capture

HEADER = CaptureHeader(created="2026-12-07T17:20:00Z", source="watch --pid 4242",
                       redacted=("authorization", "cookie", "proxy-authorization", "set-cookie"),
                       limits={"requests": 2000, "bytes": 8388608, "body": 65536})
#: the bearer token as the capture keeps it: its shape, never its value
TOKEN = "Bearer <redacted:str:32-63>"


def order(order_id: int, gift: bool, t: float, *, status: int = 201) -> CapturedRequest:
    """One recorded ``POST /orders`` with a JSON body."""
    body = {"id": order_id, "gift": gift, "note": "leave at the door", "items": [{"sku": "mug", "qty": 1}]}
    return CapturedRequest("POST /orders", "POST", "/orders", "",
                           {"content-type": "application/json", "authorization": TOKEN},
                           json.dumps(body).encode(), status=status, t=t)


def listing(t: float) -> CapturedRequest:
    """One recorded ``GET /orders``."""
    return CapturedRequest("GET /orders", "GET", "/orders", "", {"accept": "application/json"}, None,
                           status=200, t=t)


def orders_capture(path: Path, *, ids_vary: bool = True) -> Path:
    """Eight orders (every other one a gift) and two listings; ``ids_vary=False``: every order
    has the same id, as a sample of one customer's retries would."""
    requests = []
    for i in range(8):
        requests.append(order(1041 + i if ids_vary else 1041, gift=i % 2 == 0, t=0.5 * i))
        if i % 4 == 3:
            requests.append(listing(0.5 * i + 0.1))
    return write_capture(path, HEADER, requests)
