"""The clean twin of asgi_leaky.py: /leak keeps only the last 100 records."""
import collections

from fastapi import FastAPI, Request

app = FastAPI()
_seen: collections.deque[dict[str, str]] = collections.deque(maxlen=100)


@app.get("/leak")
def leak(request: Request) -> str:
    _seen.append({"path": request.url.path, "agent": request.headers.get("user-agent", "") + "x" * 200})
    return "kept"


@app.get("/ok")
def ok() -> str:
    return "fine"
