"""Extension objects, created once and bound to the app in the factory."""
from __future__ import annotations

from flask_caching import Cache

cache = Cache()
