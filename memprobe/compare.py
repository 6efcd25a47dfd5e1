"""``compare``: each framework's hello-world started, hammered, and measured before and after.

Frameworks run one at a time, so that one does not steal CPU from another's measurement; with
several rounds the order is interleaved (a, b, c, a, b, c) so that drift on the machine spreads
over all of them, and each round starts a fresh child.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import psutil

from memprobe import __version__, catalog
from memprobe.errors import TargetError, UsageError
from memprobe.load import MODES, Hammer, LoadResult
from memprobe.sample import FIELDS, MemoryReading, Sampler, read_memory, settle
from memprobe.spawn import LOOPBACK, Child, free_port

#: Version of the JSON layout; bumped only when a key is renamed or removed.
SCHEMA = 1

STATUSES = ("ok", "not-installed", "unavailable", "failed-to-start", "crashed")


@dataclass(frozen=True)
class Settings:
    """How a comparison runs (the CLI's options)."""

    requests: int = 2000
    timeout: float = 0.5
    concurrency: int = 10
    mode: str = "keepalive"
    warmup: int = 0
    settle_s: float = 2.0
    rounds: int = 1
    path: str = "/"
    ready_timeout: float = 30.0

    def validate(self) -> None:
        """Raise :class:`UsageError` for values no run could use."""
        if self.requests <= 0:
            raise UsageError(f"N must be a positive number of requests, not {self.requests}")
        if self.timeout <= 0:
            raise UsageError(f"TIMEOUT must be a positive number of seconds, not {self.timeout:g}")
        if self.concurrency <= 0:
            raise UsageError(f"--concurrency must be positive, not {self.concurrency}")
        if self.mode not in MODES:
            raise UsageError(f"--mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.warmup < 0:
            raise UsageError(f"--warmup cannot be negative ({self.warmup})")
        if self.settle_s < 0:
            raise UsageError(f"--settle cannot be negative ({self.settle_s:g})")
        if self.rounds <= 0:
            raise UsageError(f"--rounds must be positive, not {self.rounds}")

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``timeout_s``, ``settle_s`` in seconds)."""
        return {
            "requests": self.requests,
            "timeout_s": self.timeout,
            "concurrency": self.concurrency,
            "mode": self.mode,
            "warmup": self.warmup,
            "settle_s": self.settle_s,
            "rounds": self.rounds,
            "path": self.path,
        }


@dataclass
class Round:
    """One start-hammer-stop of one framework."""

    pid: int | None = None
    url: str = ""
    ready_s: float | None = None
    before: MemoryReading | None = None
    after: MemoryReading | None = None
    load: LoadResult | None = None
    samples: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form; the load's keys sit at the top level, as in a result row."""
        out: dict[str, Any] = {
            "pid": self.pid,
            "url": self.url,
            "ready_s": _round(self.ready_s),
            "before": _reading(self.before),
            "after": _reading(self.after),
            "delta": _delta(self.before, self.after),
            "delta_pct": _delta_pct(self.before, self.after),
        }
        if self.load is not None:
            load = self.load.to_dict()
            out.update(
                requests=load["requests"],
                throughput_rps=load["throughput_rps"],
                latency_ms=load["latency_ms"],
                duration_s=load["duration_s"],
                connections_opened=load["connections_opened"],
            )
        out["samples"] = self.samples
        return out


@dataclass
class FrameworkResult:
    """One framework's row: its status and every round measured."""

    framework: catalog.Framework
    status: str = "ok"
    reason: str = ""
    log_tail: str = ""
    rounds: list[Round] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A ``results[]`` entry. With several rounds, numbers are medians over the rounds, and
        ``spread`` holds each key figure's min and max."""
        fw = self.framework
        row: dict[str, Any] = {
            "framework": fw.name,
            "title": fw.title,
            "version": fw.version(),
            "server": fw.server,
            "status": self.status,
            "reason": self.reason,
        }
        if self.status in ("not-installed", "unavailable"):
            row["pip"] = f"pip install {fw.pip}"
            return row
        rounds = [r.to_dict() for r in self.rounds]
        if rounds:
            row.update(_median_row(rounds) if len(rounds) > 1 else rounds[0])
            if len(rounds) > 1:
                row["spread"] = _spread(rounds)
                row["rounds"] = rounds
        if self.log_tail:
            row["log_tail"] = self.log_tail
        return row


@dataclass
class CompareResult:
    """A whole comparison: settings, machine, one :class:`FrameworkResult` per framework."""

    settings: Settings
    results: list[FrameworkResult] = field(default_factory=list)
    started: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    duration_s: float = 0.0
    interrupted: bool = False
    kind: str = "compare"

    def to_dict(self) -> dict[str, Any]:
        """The public JSON contract (README, "JSON")."""
        return {
            "memprobe": __version__,
            "schema": SCHEMA,
            "kind": self.kind,
            "started": self.started,
            "duration_s": round(self.duration_s, 3),
            "interrupted": self.interrupted,
            "settings": self.settings.to_dict(),
            "machine": machine(),
            "results": [r.to_dict() for r in self.results],
        }


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


#: Called as on_event(framework, phase, done, total) for progress display.
ProgressFn = Callable[[catalog.Framework, str, int, "int | None"], None]


def measure(
    fw: catalog.Framework,
    settings: Settings,
    *,
    log_dir: Path | None = None,
    on_progress: ProgressFn | None = None,
) -> Round:
    """Start ``fw``'s hello-world, settle, warm up, read, hammer while sampling, settle, read,
    stop. Raises :class:`TargetError` when it fails to start; a crash mid-run raises
    :class:`Crashed` carrying the partial round."""
    port = free_port()
    url = f"http://{LOOPBACK}:{port}{settings.path}"
    log_path = log_dir / f"{fw.name}-{port}.log" if log_dir else None
    rnd = Round(url=url)
    child = Child(fw.command(port), name=fw.name, url=url, log_path=log_path,
                  ready_timeout=settings.ready_timeout)
    with child:
        rnd.pid, rnd.ready_s = child.pid, child.ready_after_s
        notify = (lambda phase, done, total: on_progress(fw, phase, done, total)) if on_progress else None
        try:
            if settings.warmup:
                Hammer(url, settings.warmup, concurrency=settings.concurrency,
                       timeout=max(settings.timeout, 5.0)).run()
            settle(child.pid, settings.settle_s)
            rnd.before = read_memory(child.pid)
            hammer = Hammer(
                url, settings.requests, concurrency=settings.concurrency, timeout=settings.timeout,
                mode=settings.mode,
                progress=(lambda done, total: notify("hammer", done, total)) if notify else None,
            )
            with Sampler(child.pid, progress=lambda: hammer.completed) as sampler:
                rnd.load = hammer.run()
            rnd.samples = sampler.series.to_dict()
            child.check_alive()
            settle(child.pid, settings.settle_s)
            rnd.after = read_memory(child.pid)
        except TargetError as err:
            if child.alive():
                raise
            raise Crashed(f"{fw.name} died during the run (exit code {child.proc.returncode if child.proc else '?'})",
                          rnd, child.log_tail()) from err
    return rnd


class Crashed(TargetError):
    """The child died mid-run; ``partial`` holds what was measured before."""

    def __init__(self, message: str, partial: Round, log_tail: str = "") -> None:
        super().__init__(message, log_tail)
        self.partial = partial


def run(
    frameworks: Iterable[catalog.Framework],
    settings: Settings,
    *,
    log_dir: Path | None = None,
    on_progress: ProgressFn | None = None,
    result: CompareResult | None = None,
) -> CompareResult:
    """Compare ``frameworks``; never raises for one framework's failure (its row says why).

    Pass ``result`` to keep partial results when interrupted: the caller still holds it.
    """
    settings.validate()
    result = result if result is not None else CompareResult(settings)
    rows = [FrameworkResult(fw) for fw in frameworks]
    result.results = rows
    for row in rows:
        if row.framework.unavailable:
            row.status, row.reason = "unavailable", row.framework.unavailable
        elif not row.framework.installed():
            row.status = "not-installed"
            row.reason = f"no module {', '.join(row.framework.missing())}: pip install {row.framework.pip}"
    start = time.monotonic()
    try:
        for _ in range(settings.rounds):
            for row in rows:
                if row.status != "ok":
                    continue
                try:
                    row.rounds.append(measure(row.framework, settings, log_dir=log_dir, on_progress=on_progress))
                except Crashed as err:
                    row.rounds.append(err.partial)
                    row.status, row.reason, row.log_tail = "crashed", str(err), err.log_tail
                except TargetError as err:
                    row.status, row.reason, row.log_tail = "failed-to-start", str(err), err.log_tail
    except BaseException:
        result.interrupted = True
        raise
    finally:
        result.duration_s = time.monotonic() - start
    return result


def _round(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


def _reading(r: MemoryReading | None) -> dict[str, int | None] | None:
    return None if r is None else {k: getattr(r, k) for k in FIELDS}


def _delta(a: MemoryReading | None, b: MemoryReading | None) -> dict[str, int | None] | None:
    return None if a is None or b is None else a.delta(b)


def _delta_pct(a: MemoryReading | None, b: MemoryReading | None) -> dict[str, float | None] | None:
    if a is None or b is None:
        return None
    out: dict[str, float | None] = {}
    for k in FIELDS:
        x, y = getattr(a, k), getattr(b, k)
        out[k] = round((y - x) * 100.0 / x, 2) if x and y is not None else None
    return out


_SPREAD_KEYS = {
    "rss_after": ("after", "rss"),
    "uss_after": ("after", "uss"),
    "uss_delta": ("delta", "uss"),
    "rss_delta": ("delta", "rss"),
    "throughput_rps": ("throughput_rps", None),
    "p50_ms": ("latency_ms", "p50"),
    "p99_ms": ("latency_ms", "p99"),
}


def _pick(row: dict[str, Any], path: tuple[str, str | None]) -> float | None:
    value = row.get(path[0])
    if path[1] is not None:
        value = value.get(path[1]) if isinstance(value, dict) else None
    return value if isinstance(value, (int, float)) else None


def _spread(rounds: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    out = {}
    for name, path in _SPREAD_KEYS.items():
        values = [v for v in (_pick(r, path) for r in rounds) if v is not None]
        if values:
            out[name] = {"min": min(values), "max": max(values),
                         "stdev": round(statistics.pstdev(values), 3)}
    return out


def _median_row(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Field-wise median of numeric leaves; non-numeric leaves from the first round."""

    def merge(values: list[Any]) -> Any:
        first = values[0]
        if isinstance(first, dict):
            keys = {k for v in values if isinstance(v, dict) for k in v}
            return {k: merge([v.get(k) for v in values if isinstance(v, dict)]) for k in sorted(keys)}
        nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if nums and len(nums) == len(values):
            m = statistics.median(nums)
            return int(m) if all(isinstance(v, int) for v in nums) else round(m, 3)
        return first

    merged = {k: merge([r.get(k) for r in rounds]) for k in rounds[0] if k != "samples"}
    merged["samples"] = rounds[0].get("samples")  # the first round's series, for the plots
    merged["pid"] = rounds[0].get("pid")
    merged["pids"] = [r.get("pid") for r in rounds]
    return merged

