"""A FastAPI app with one leaking route, for hunts of uvicorn workers: /leak keeps a record of
every request in a module global, /ok keeps nothing."""
from fastapi import FastAPI, Request

app = FastAPI()
_seen: list[dict[str, str]] = []


@app.get("/leak")
def leak(request: Request) -> str:
    _seen.append({"path": request.url.path, "agent": request.headers.get("user-agent", "") + "x" * 200})
    return "kept"


@app.get("/ok")
def ok() -> str:
    return "fine"
