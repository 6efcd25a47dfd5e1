"""The envelope every JSON memprobe writes: who wrote it, which layout, what kind, when, on
what machine, with which settings and how long it took.

``memprobe``, ``schema``, ``result``, ``started``, ``machine``, ``settings``, ``duration_s`` come
first in every result (compare, hunt, check, hammer, the pytest plugin's file); the result's own
keys follow. :class:`Envelope` carries them on a typed result, so that a result read back from
its JSON writes the same envelope again.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
from dataclasses import dataclass, field
from typing import Any

import psutil

from memprobe import __version__

#: Version of the JSON layout; bumped only when a key is renamed or removed.
SCHEMA = 1

#: The envelope's keys, in the order they are written.
KEYS = ("memprobe", "schema", "result", "started", "machine", "settings", "duration_s")


def now() -> str:
    """The current UTC time as the envelope's ``started`` spells it."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(terse=True),
        "cpus": os.cpu_count(),
        "memory_total": psutil.virtual_memory().total,
        "psutil": psutil.__version__,
    }


@dataclass
class Envelope:
    """When and where a result was measured. ``machine`` is read when the result is first
    written (None until then), and kept when a result is read back."""

    started: str = field(default_factory=now)
    machine: dict[str, Any] | None = None
    #: the memprobe version that wrote the result
    version: str = __version__
    schema: int = SCHEMA

    def machine_info(self) -> dict[str, Any]:
        """The machine, read now if it was not yet."""
        if self.machine is None:
            self.machine = machine()
        return self.machine

    def to_dict(self, kind: str, settings: dict[str, Any], duration_s: float | None) -> dict[str, Any]:
        """The envelope's keys for a result of ``kind``."""
        return {"memprobe": self.version, "schema": self.schema, "result": kind, "started": self.started,
                "machine": dict(self.machine_info()), "settings": settings,
                "duration_s": None if duration_s is None else round(duration_s, 3)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Envelope:
        """The envelope of a result's JSON (results written before the envelope existed lack
        some keys: they read as unknown)."""
        machine_info = data.get("machine")
        schema = data.get("schema")
        return cls(started=str(data.get("started") or ""),
                   machine=dict(machine_info) if isinstance(machine_info, dict) else {},
                   version=str(data.get("memprobe") or "?"),
                   schema=schema if isinstance(schema, int) else SCHEMA)


def envelope(kind: str, settings: dict[str, Any], duration_s: float | None,
             started: str | None = None) -> dict[str, Any]:
    """The envelope of a result written now (for writers without a typed result)."""
    return Envelope(started or now()).to_dict(kind, settings, duration_s)
