"""Scenarios as data: which requests a comparison sends, in which mix, to which app.

A scenario is a JSON file (memprobe ships ``hello``, ``echo`` and ``crud`` in
``memprobe/scenarios/``; ``--scenario path/to/mine.json`` reads the user's own)::

    {
      "name": "crud",
      "description": "an items API over SQLite",
      "app": "crud",                  # "hello" (hello_<fw>.py) or "crud" (crud_<fw>.py)
      "records": 1500,                # rows seeded before the server starts (crud only)
      "timeout_s": 5,                 # default per-request timeout (TIMEOUT overrides)
      "requests": [
        {"name": "get one", "method": "GET", "path": "/items/{n}", "first": 1, "cycle": 1500,
         "weight": 1000, "concurrency": 10},
        {"name": "create", "method": "POST", "path": "/items/", "json": {"name": "x", "price": 1},
         "weight": 1000}
      ]
    }

Request kinds run one after another, in the order written, each with its own hammer, so that
latency and memory can be reported per kind. ``weight`` is each kind's share of N; when N is not
given, each kind sends exactly ``weight`` requests. In a path, ``{n}`` is ``first + i % cycle``
for the i-th request of that kind (``first`` defaults to 0, no ``cycle`` means no wrap).
``json`` is sent as ``application/json``; ``body`` (a string) as it is, with the ``headers`` given.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memprobe.errors import UsageError
from memprobe.http.load import LoadResult
from memprobe.process.memory import FIELDS, MemoryReading

#: The apps a scenario can target: the hello-world scripts or the CRUD scripts.
APPS = ("hello", "crud")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
#: Methods safe to send as warm-up (they change nothing the measured run relies on).
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
_STEP_KEYS = {"name", "method", "path", "json", "body", "headers", "weight", "concurrency",
              "first", "cycle"}
_SCENARIO_KEYS = {"name", "description", "app", "records", "timeout_s", "requests"}


@dataclass(frozen=True)
class Step:
    """One kind of request and how many of it."""

    name: str
    method: str = "GET"
    path: str = "/"
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    weight: float = 1.0
    concurrency: int | None = None
    first: int = 0
    cycle: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the body's length, not the body)."""
        return {"name": self.name, "method": self.method, "path": self.path,
                "body_bytes": None if self.body is None else len(self.body),
                "weight": self.weight, "concurrency": self.concurrency,
                "first": self.first, "cycle": self.cycle}


@dataclass(frozen=True)
class Scenario:
    """A named list of request kinds for one app."""

    name: str
    steps: tuple[Step, ...]
    app: str = "hello"
    description: str = ""
    records: int | None = None
    timeout_s: float | None = None
    source: str = ""

    @property
    def total(self) -> int:
        """Requests sent when N is not given: the weights taken as counts."""
        return sum(self.counts(None))

    def counts(self, n: int | None) -> list[int]:
        """Requests per step: ``n`` split in proportion to the weights (largest remainder, at
        least one each); ``None``: each weight rounded, as a count."""
        if n is None:
            return [max(1, round(s.weight)) for s in self.steps]
        weights = [s.weight for s in self.steps]
        exact = [n * w / sum(weights) for w in weights]
        counts = [math.floor(x) for x in exact]
        for i in sorted(range(len(exact)), key=lambda i: exact[i] - counts[i], reverse=True)[: n - sum(counts)]:
            counts[i] += 1
        return [max(1, c) for c in counts]

    def to_dict(self) -> dict[str, Any]:
        """JSON form, for the report's settings."""
        return {"name": self.name, "app": self.app, "description": self.description,
                "records": self.records, "source": self.source,
                "requests": [s.to_dict() for s in self.steps]}


def scenarios_dir() -> Path:
    """The folder of the scenarios memprobe ships."""
    return Path(__file__).resolve().parent / "scenarios"


def shipped() -> list[str]:
    """Names of the scenarios memprobe ships."""
    return sorted(p.stem for p in scenarios_dir().glob("*.json"))


def load(spec: str) -> Scenario:
    """A shipped scenario by name (``crud``) or the user's JSON file by path."""
    path = Path(spec)
    if path.suffix != ".json" and not path.exists():
        path = scenarios_dir() / f"{spec}.json"
        if not path.exists():
            raise UsageError(f"unknown scenario {spec!r}; shipped: {', '.join(shipped())}, "
                             "or give the path of a .json file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise UsageError(f"cannot read scenario {path}: {err.strerror or err}") from None
    except json.JSONDecodeError as err:
        raise UsageError(f"scenario {path} is not valid JSON: {err}") from None
    return parse(data, source=str(path))


def parse(data: Any, source: str = "<data>") -> Scenario:
    """Check and convert a scenario's JSON data; :class:`UsageError` names what is wrong."""
    where = f"scenario {source}"
    if not isinstance(data, dict):
        raise UsageError(f"{where}: expected a JSON object")
    unknown = set(data) - _SCENARIO_KEYS
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    app = data.get("app", "hello")
    if app not in APPS:
        raise UsageError(f"{where}: app must be one of {', '.join(APPS)}, not {app!r}")
    requests = data.get("requests")
    if not isinstance(requests, list) or not requests:
        raise UsageError(f"{where}: 'requests' must be a non-empty list")
    steps = tuple(_step(item, f"{where}, request {i + 1}") for i, item in enumerate(requests))
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise UsageError(f"{where}: request names must differ ({', '.join(names)})")
    records = data.get("records")
    if records is not None and (not isinstance(records, int) or records < 0):
        raise UsageError(f"{where}: 'records' must be a non-negative integer")
    timeout = data.get("timeout_s")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise UsageError(f"{where}: 'timeout_s' must be a positive number")
    return Scenario(name=str(data.get("name") or Path(source).stem), steps=steps, app=app,
                    description=str(data.get("description", "")),
                    records=records if app == "crud" else None,
                    timeout_s=float(timeout) if timeout is not None else None, source=source)


def _step(item: Any, where: str) -> Step:
    if not isinstance(item, dict):
        raise UsageError(f"{where}: expected an object")
    unknown = set(item) - _STEP_KEYS
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    method = str(item.get("method", "GET")).upper()
    if method not in METHODS:
        raise UsageError(f"{where}: method must be one of {', '.join(METHODS)}, not {method!r}")
    path = item.get("path", "/")
    if not isinstance(path, str) or not path.startswith("/"):
        raise UsageError(f"{where}: 'path' must start with '/'")
    headers = item.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise UsageError(f"{where}: 'headers' must map names to strings")
    if "json" in item and "body" in item:
        raise UsageError(f"{where}: give 'json' or 'body', not both")
    body: bytes | None = None
    if "json" in item:
        body = json.dumps(item["json"]).encode("utf-8")
        headers = {"Content-Type": "application/json", **headers}
    elif "body" in item:
        if not isinstance(item["body"], str):
            raise UsageError(f"{where}: 'body' must be a string (use 'json' for JSON data)")
        body = item["body"].encode("utf-8")
    weight = item.get("weight", 1)
    if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight <= 0:
        raise UsageError(f"{where}: 'weight' must be a positive number")
    for key in ("concurrency", "cycle"):
        value = item.get(key)
        if value is not None and (not isinstance(value, int) or value <= 0):
            raise UsageError(f"{where}: {key!r} must be a positive integer")
    first = item.get("first", 0)
    if not isinstance(first, int):
        raise UsageError(f"{where}: 'first' must be an integer")
    return Step(name=str(item.get("name") or f"{method} {path}"), method=method, path=path,
                body=body, headers=dict(headers), weight=float(weight),
                concurrency=item.get("concurrency"), first=first, cycle=item.get("cycle"))


@dataclass
class StepResult:
    """What one request kind did: its load, and the memory read right after it."""

    step: Step
    load: LoadResult
    after: MemoryReading | None = None
    #: The reading before this step (the previous step's ``after``, or the round's ``before``).
    before: MemoryReading | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the request kind, its counts and latency, memory after it and the change."""
        load = self.load.to_dict()
        out: dict[str, Any] = {
            "name": self.step.name,
            "method": self.step.method,
            "path": self.step.path,
            "concurrency": load["concurrency"],
            "requests": load["requests"],
            "throughput_rps": load["throughput_rps"],
            "latency_ms": load["latency_ms"],
            "duration_s": load["duration_s"],
            "after": None if self.after is None else {k: getattr(self.after, k) for k in FIELDS},
            "delta": None if self.after is None or self.before is None else self.before.delta(self.after),
        }
        return out
