"""Every case on Bottle."""
from __future__ import annotations

import bottle
import cases

app = bottle.Bottle()
for _name in cases.CASES:
    app.route(f"/{_name}", "GET", getattr(cases, _name))
