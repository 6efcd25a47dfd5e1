"""The leak hunt: ``hunt(target, routes=...)`` -> :class:`HuntResult`."""
from __future__ import annotations

from memprobe.hunt.run import Holder, HuntResult, RouteResult, Site, hunt

__all__ = ["Holder", "HuntResult", "RouteResult", "Site", "hunt"]
