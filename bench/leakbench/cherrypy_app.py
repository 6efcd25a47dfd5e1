"""Every case on CherryPy, served through ``cherrypy.tree`` (a WSGI callable)."""
from __future__ import annotations

import cases
import cherrypy


class Root:
    """One exposed method per case."""


for _name in cases.CASES:
    def _page(self: Root, _fn=getattr(cases, _name)) -> str:  # noqa: ANN001, B008
        return _fn()
    setattr(Root, _name, cherrypy.expose(_page))

cherrypy.config.update({"environment": "embedded", "log.screen": False})
cherrypy.tree.mount(Root(), "/")
app = cherrypy.tree
