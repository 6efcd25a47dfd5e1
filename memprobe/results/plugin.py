"""The pytest plugin's two files as results ``memprobe report`` reads back.

- :class:`PytestResult` (kind ``pytest``): the session file ``--memprobe-json`` writes, the
  envelope then one record a measured test (the plugin's plain-JSON view of it,
  :func:`memprobe.pytest_plugin.limits.record_of`, with the whole hunt result under ``result``).
- :class:`BaselineResult` (kind ``pytest-baseline``): the file ``--memprobe-update-baseline``
  writes, meant to be committed: bytes per request stored per test and route. It has no
  envelope's time and machine, so that storing the same figures again changes nothing in it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from memprobe import __version__
from memprobe.results.envelope import Envelope

#: The baseline file's format version.
BASELINE_FORMAT = 1
#: How the baseline compares a test's figures with the stored ones, written into the file.
BASELINE_COMPARED = ("bytes per request of each route: the metric named, within twice the standard error of the "
                     "difference plus the tolerance")


@dataclass
class PytestResult:
    """A pytest session's measured tests: ``tests`` is one record a measurement (``nodeid``,
    ``outcome``, ``verdict``, ``limits``, ``violations``, ``error``, ``routes``, ``result``...)."""

    tests: list[dict[str, Any]]
    duration_s: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    envelope: Envelope = field(default_factory=Envelope)
    kind: str = "pytest"

    def to_dict(self) -> dict[str, Any]:
        """The envelope, then ``tests``."""
        return {**self.envelope.to_dict("pytest", dict(self.settings), self.duration_s),
                "tests": [dict(t) for t in self.tests]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PytestResult:
        """Read back :meth:`to_dict`'s form."""
        tests = data["tests"]
        if not isinstance(tests, list) or not all(isinstance(t, dict) and "nodeid" in t for t in tests):
            raise ValueError("\"tests\" is not a list of measured tests")
        settings = data.get("settings")
        return cls([dict(t) for t in tests], data.get("duration_s"),
                   dict(settings) if isinstance(settings, dict) else {}, Envelope.from_dict(data))


@dataclass
class BaselineResult:
    """The stored figures: ``tests[nodeid][route]`` is ``{"metric", "traced", "uss",
    "requests"}``, each rate ``{"value", "error"}`` in bytes per request (or None)."""

    tests: dict[str, dict[str, dict[str, Any]]]
    #: the memprobe version that wrote the file
    version: str = __version__
    format: int = BASELINE_FORMAT
    kind: str = "pytest-baseline"

    def to_dict(self) -> dict[str, Any]:
        """The file as it is committed: tests sorted by node id."""
        return {"memprobe": self.version, "result": "pytest-baseline", "format": self.format,
                "compared": BASELINE_COMPARED, "tests": {k: self.tests[k] for k in sorted(self.tests)}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BaselineResult:
        """Read back :meth:`to_dict`'s form."""
        tests = data["tests"]
        if not isinstance(tests, dict) or not all(isinstance(routes, dict) for routes in tests.values()):
            raise ValueError("\"tests\" is not a map of tests to their routes")
        return cls({str(k): {str(r): dict(v) for r, v in routes.items()} for k, routes in tests.items()},
                   str(data.get("memprobe") or "?"), int(data.get("format") or BASELINE_FORMAT))
