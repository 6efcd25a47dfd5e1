"""Every case on web.py: ``app.wsgifunc()`` is the WSGI callable."""
from __future__ import annotations

import cases
import web

# As deployed: debug mode's reloader stats every loaded module on every request.
web.config.debug = False

_urls: list[str] = []
_classes: dict[str, type] = {}
for _name in cases.CASES:
    def _get(self: object, _fn=getattr(cases, _name)) -> str:  # noqa: ANN001, B008
        return _fn()
    _classes[f"case_{_name}"] = type(f"case_{_name}", (), {"GET": _get})
    _urls += [f"/{_name}", f"case_{_name}"]

app = web.application(tuple(_urls), _classes, autoreload=False)
application = app.wsgifunc()
