"""Routes found inside the workers: ``hunt --cmd "gunicorn ..."`` of a Flask app and ``hunt --cmd
"uvicorn ..."`` of a FastAPI app, with no ``--route``, hunt the routes the app declares (the agent
in each worker lists them in its hello, as memprobe does for an app it loads itself).

Real gunicorn and uvicorn on loopback; the apps are tests/servers/workers/.
"""
from __future__ import annotations

import sys

import pytest

from memprobe.hunt import hunt
from memprobe.render import render
from memprobe.target.routes import discover_routes
from tests.conftest import SERVERS

APPS = SERVERS / "workers"
GUNICORN = "gunicorn -w 2 -k gthread --threads 2 -b 127.0.0.1:{port} wsgi_leaky:app"
UVICORN = "uvicorn --workers 2 --port {port} --no-access-log asgi_leaky:app"
SMALL = {"requests": 300, "rounds": 3, "warmup": 200}




def test_a_fastapi_apps_routes_are_its_own_get_routes_without_the_docs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(APPS))
    from fastapi import FastAPI

    try:
        import asgi_leaky  # type: ignore[import-not-found]

        assert discover_routes(asgi_leaky.app) == ["/leak", "/ok"]
    finally:
        sys.modules.pop("asgi_leaky", None)
    app = FastAPI()
    app.get("/items/{n}")(lambda n: n)
    app.post("/orders")(lambda: None)
    app.get("/health")(lambda: "ok")
    assert discover_routes(app) == ["/health"]  # no parameter, no POST, no /docs nor /openapi.json


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("cmd", [GUNICORN, UVICORN], ids=["gunicorn-flask", "uvicorn-fastapi"])
def test_without_routes_the_workers_routes_are_hunted(cmd: str, no_leftovers: None) -> None:
    result = hunt(cmd=cmd, cwd=APPS, **SMALL)  # type: ignore[arg-type]
    assert [r.route for r in result.routes] == ["/leak", "/ok"], render(result, "text")
    assert "routes discovered from the app: /leak, /ok" in result.notes
    leak = result.routes[0]
    assert leak.verdict == "leak" and len([w for w in leak.workers if w.role == "worker"]) == 2
