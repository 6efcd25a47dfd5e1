"""The leak hunt: ``hunt(target, routes=...)`` -> :class:`HuntResult`.

:mod:`memprobe.hunt.protocol` is the protocol, written once; :mod:`memprobe.hunt.probes` the
ways to reach an app; :mod:`memprobe.hunt.model` the growth model and the verdict.
"""
from __future__ import annotations

from memprobe.hunt.protocol import hunt, hunt_in_process
from memprobe.results.hunt import (
    Holder,
    HuntFailed,
    HuntInterrupted,
    HuntResult,
    HuntSettings,
    RouteResult,
    Site,
)

__all__ = ["Holder", "HuntFailed", "HuntInterrupted", "HuntResult", "HuntSettings", "RouteResult", "Site",
           "hunt", "hunt_in_process"]
