"""No false leak: the five frameworks' hello-worlds (frameworks/) hunted with the defaults."""
from __future__ import annotations

from pathlib import Path

import pytest

from memprobe.hunt import hunt

FRAMEWORKS = Path(__file__).resolve().parent.parent / "frameworks"
HELLO = {
    "flask": "hello_flask.py:app",
    "bottle": "hello_bottle.py:app",
    "cherrypy": "hello_cherrypy.py:wsgi_app()",
    "tornado": "hello_tornado.py:make_app()",
    "webpy": "hello_webpy.py:wsgi_app()",
}


@pytest.mark.slow
@pytest.mark.parametrize("framework", list(HELLO))
def test_a_hello_world_is_never_called_a_leak(framework: str) -> None:
    pytest.importorskip({"webpy": "web"}.get(framework, framework))
    result = hunt(HELLO[framework], routes=["/"], cwd=FRAMEWORKS)
    route = result.routes[0]
    assert route.verdict == "clean", route.judgement.reason
    assert route.load["ok"] == route.load["sent"] > 0
    assert not result.leaked
