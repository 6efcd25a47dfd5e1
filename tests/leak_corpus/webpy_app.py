"""The corpus on web.py: ``app.wsgifunc()`` is the WSGI callable."""
from __future__ import annotations

import web

import cases

_urls: list[str] = []
_classes: dict[str, type] = {}
for _name in cases.CASES:
    def _get(self: object, _fn=getattr(cases, _name)) -> str:  # noqa: ANN001
        return _fn()
    _classes[f"case_{_name}"] = type(f"case_{_name}", (), {"GET": _get})
    _urls += [f"/{_name}", f"case_{_name}"]

app = web.application(tuple(_urls), _classes)
application = app.wsgifunc()
