"""The ``memprobe_limit`` marker's logic: parse a limit, measure, judge, and say it in words.

Kept apart from :mod:`memprobe.pytest_plugin` so the plugin reads as hooks only. Like the plugin,
it imports nothing heavy at import time: the measuring modules load when a limit is checked.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

# the plugin prints the summary that `memprobe report` shows of its JSON file
from memprobe.render.plugin import summary_lines as summary_lines
from memprobe.units import format_bytes, format_rate, parse_size, short_path

if TYPE_CHECKING:
    from memprobe.hunt import HuntResult, RouteResult
    from memprobe.results.hunt import WorkerResult

METRICS = ("traced", "uss")
#: What an inconclusive route does to its test: fail it (the default: a clean verdict the readings
#: could not reach is no evidence), or pass it (asked for: ``inconclusive="pass"``).
INCONCLUSIVE = ("fail", "pass")
_METRIC_NAME = {"traced": "", "uss": " of USS"}


@dataclass
class Limit:
    """A parsed ``memprobe_limit`` marker (sizes in bytes)."""

    target: Any
    #: a server's command (``{port}`` in it), hunted instead of a target: worker by worker
    #: when it runs Python (gunicorn, uvicorn)
    cmd: str | None
    cwd: str | None
    routes: list[str] | None
    requests: int | None
    per_request: float | None
    metric: str
    growth: float | None
    leak: bool | None
    in_process: bool
    options: dict[str, Any] = field(default_factory=dict)
    shown: dict[str, str] = field(default_factory=dict)
    #: ``fail`` or ``pass`` an inconclusive route; None: the session's (ini ``memprobe_inconclusive``)
    inconclusive: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        out = {"per_request_bytes": self.per_request, "metric": self.metric,
               "growth_bytes": self.growth, "leak": self.leak, "in_process": self.in_process}
        if self.inconclusive is not None:
            out["inconclusive"] = self.inconclusive
        if self.cmd is not None:
            out["cmd"] = self.cmd
        return out


def memprobe_limit(target: Any = None, route: str | None = None, *, cmd: str | None = None,
                   cwd: str | None = None, routes: list[str] | None = None,
                   requests: int | None = None, per_request: str | float | None = None,
                   metric: str = "traced", growth: str | float | None = None,
                   leak: bool | None = False, in_process: bool = False, rounds: int | None = None,
                   warmup: int | None = None, concurrency: int | None = None,
                   max_seconds: float | None = None, sensitivity: float | None = None,
                   method: str | None = None, headers: dict[str, str] | None = None,
                   body: str | bytes | None = None, inconclusive: str | None = None,
                   replay: str | os.PathLike[str] | None = None) -> Limit:
    """After the test body passes, hunt TARGET (``app.py:app``) or the server CMD starts
    ("gunicorn -w 2 -b 127.0.0.1:{port} app:app", run in CWD: worker by worker, the server
    judged as a whole) on ROUTE or ROUTES with REQUESTS requests per round and fail the test
    when a route grows more than PER_REQUEST bytes per request ("64 B", "2 KiB"; METRIC
    "traced" - the Python heap, exact, the default - or "uss", PSS summed for a server), more
    than GROWTH bytes in total, or leaks (LEAK=False; True expects a leak, None ignores the
    verdict). IN_PROCESS=True calls a WSGI app in the test process, no server. A route that
    answered only errors fails the test (send what it needs: METHOD, HEADERS, BODY); so does an
    inconclusive one (its readings could not see leaks of SENSITIVITY B/request: give it
    MAX_SECONDS or REQUESTS) unless INCONCLUSIVE="pass" (ini: memprobe_inconclusive).
    REPLAY, a capture file (``memprobe watch --capture``; relative to the test file): its routes
    are hunted with the requests it recorded (ROUTE or ROUTES narrow them), so that a leak found
    in production stays found."""
    from memprobe.errors import UsageError

    if (target is None) == (cmd is None):
        raise UsageError("give a target or cmd=, not both and not neither")
    if cmd is not None and in_process:
        raise UsageError("cmd= starts a server: it cannot be hunted in_process")
    if metric not in METRICS:
        raise UsageError(f"metric must be one of {', '.join(METRICS)}, not {metric!r}")
    if route is not None and routes is not None:
        raise UsageError("give route= or routes=, not both")
    if isinstance(routes, str):
        routes = [routes]
    if inconclusive is not None and inconclusive not in INCONCLUSIVE:
        raise UsageError(f"inconclusive must be one of {', '.join(INCONCLUSIVE)}, not {inconclusive!r}")
    if requests is not None and (not isinstance(requests, int) or requests <= 0):
        raise UsageError(f"requests must be a positive number, not {requests!r}")
    shown = {}
    sizes = {}
    for name, value in (("per_request", per_request), ("growth", growth)):
        if value is not None:
            sizes[name] = parse_size(value)
            shown[name] = value if isinstance(value, str) else format_bytes(sizes[name])
    return Limit(target, cmd, cwd, [route] if route is not None else routes, requests,
                 sizes.get("per_request"), metric, sizes.get("growth"), leak, in_process,
                 {k: v for k, v in (("rounds", rounds), ("warmup", warmup), ("concurrency", concurrency),
                                    ("max_seconds", max_seconds), ("sensitivity", sensitivity),
                                    ("method", method), ("headers", headers), ("body", body),
                                    ("replay", os.fspath(replay) if replay is not None else None))
                  if v is not None}, shown, inconclusive)


@dataclass
class Outcome:
    """A checked limit: the record for the summary and JSON, and the failure when it failed."""

    record: dict[str, Any]
    failure: str | None = None
    detail: str = ""


def measure(limit: Limit, target: Any, default_requests: int | None, cwd: str | None = None,
            inconclusive: str = "fail") -> Outcome:
    """Hunt ``target`` (or ``limit.cmd``, run in ``cwd``) as ``limit`` says and judge every
    route against it. Without requests or rounds (from the marker or ``default_requests``) a
    hunt in a child or of a command decides on evidence; in-process hunts count 5 x 2,000.
    ``inconclusive``: the session's ``fail`` or ``pass`` for a marker that does not say."""
    from memprobe.errors import MemprobeError

    requests = limit.requests or default_requests
    mode = "in_process" if limit.in_process else "child"
    if limit.cmd is not None:
        from memprobe.hunt.probes.workers import is_python_command

        mode = "workers" if is_python_command(limit.cmd, cwd) else "outside"
    label = limit.cmd if limit.cmd is not None else target if isinstance(target, str) else repr(target)
    try:
        if limit.in_process:
            from memprobe.hunt import hunt_in_process

            # one caller in-process, in fixed rounds
            options = {k: v for k, v in limit.options.items() if k not in ("concurrency", "max_seconds")}
            result = hunt_in_process(target, routes=limit.routes, requests=requests, uss=limit.metric == "uss",
                                     **options)
        else:
            from memprobe.hunt import hunt

            result = hunt(target if limit.cmd is None else "", routes=limit.routes, requests=requests,
                          cmd=limit.cmd, cwd=cwd if limit.cmd is not None else None, **limit.options)
    except MemprobeError as err:
        record: dict[str, Any] = {"target": label, "mode": mode, "limits": limit.to_dict(), "error": str(err),
                  "violations": [], "routes": [], "verdict": None, "result": None}
        tail = getattr(err, "log_tail", "") or ""
        return Outcome(record, f"memprobe: could not measure {label}: {err}",
                       f"the target's last output:\n{tail}" if tail else str(err))
    lenient = (limit.inconclusive or inconclusive) == "pass"
    per_route = {r.route: _violations(limit, r, lenient) for r in result.routes}
    violations = [v for found in per_route.values() for v in found]
    record = record_of(result, limit, result.settings.mode)
    record["violations"] = violations
    if not violations:
        return Outcome(record)
    first = violations[0] + (f" (and {len(violations) - 1} more, see the memprobe section)"
                             if len(violations) > 1 else "")
    bad = {route for route, found in per_route.items() if found}
    return Outcome(record, f"memprobe: {first}", detail(result, violations, bad))


def _keyword(setting: str) -> str:
    """A hunt setting as the marker takes it (``max_seconds=``)."""
    return f"{setting}="


def _violations(limit: Limit, route: RouteResult, lenient: bool = False) -> list[str]:
    from memprobe.render.hunt import advice_sentence

    worst = _worst_worker(route, limit.metric)
    over = f"over {route.requests:,} requests" + (f"; worst worker: {worst}" if worst else "")
    if route.verdict == "errors" or (route.verdict == "inconclusive" and not lenient):
        # nothing below can be checked on readings that saw nothing, or saw too little
        what = "answered only errors" if route.verdict == "errors" else "is inconclusive"
        reason = route.judgement.reason
        reason = reason[: reason.rfind(" (")] if reason.endswith(")") and " (" in reason else reason
        more = ", or inconclusive='pass'" if route.verdict == "inconclusive" else ""
        return [f"{route.route} {what}: {reason}; {advice_sentence(route, _keyword)}{more}"]
    out = []
    fit = getattr(route.judgement, limit.metric)
    if limit.per_request is not None or limit.growth is not None:
        if fit is None:
            return [f"{route.route}: {limit.metric} was not measured, so its limit cannot be "
                    "checked"]
        metric = _METRIC_NAME[limit.metric].replace("USS", route.memory_name)
        if limit.per_request is not None and fit.slope > limit.per_request:
            out.append(f"{route.route} grew {format_bytes(fit.slope)}/request{metric} "
                       f"(limit {limit.shown['per_request']}) {over}")
        if limit.growth is not None and fit.total > limit.growth:
            out.append(f"{route.route} grew {format_bytes(fit.total)}{metric} in total "
                       f"(limit {limit.shown['growth']}) {over}")
    if limit.leak is False and route.verdict == "leak":
        out.append(f"{route.route} leaks ({route.kind}): {_signals(route, route.memory_name)} {over}")
    elif limit.leak is True and route.verdict != "leak":
        out.append(f"{route.route} was expected to leak but is {route.verdict} "
                   f"({_signals(route, route.memory_name)}) {over}")
    return out


def _signals(route: RouteResult | WorkerResult, memory: str = "USS") -> str:
    parts = []
    for name, label in (("traced", "traced"), ("uss", memory)):
        fit = getattr(route.judgement, name)
        if fit is not None:
            parts.append(f"{format_rate(fit.slope, fit.error)} B/request {label}")
    return ", ".join(parts) or "no signal"


_ORDER = {"leak": 2, "bounded": 1, "clean": 0}  # a worker's verdicts are the judge's


def _worst_worker(route: RouteResult, metric: str) -> str:
    """``pid 4411, leak, +515.9 ± 1.2 B/request traced over 1,232 requests it served``: the worker
    whose ``metric`` grew most (the worst verdict first); empty for a single process."""
    workers = [w for w in route.workers if w.role == "worker"]
    if not workers:
        return ""

    def growth(w: WorkerResult) -> float:
        fit = getattr(w.judgement, metric)
        return fit.slope if fit is not None else 0.0

    w = max(workers, key=lambda w: (_ORDER.get(w.verdict, 0), growth(w)))
    fit = getattr(w.judgement, metric)
    shown = (f"{format_rate(fit.slope, fit.error)} B/request {'traced' if metric == 'traced' else 'USS'}"
             if fit is not None else f"{metric} not read")
    return f"pid {w.pid}, {w.verdict}, {shown} over {w.requests:,} requests it served"


def record_of(result: HuntResult, limit: Limit | None, mode: str) -> dict[str, Any]:
    """The summary's and the JSON file's view of one measurement (plain JSON types only: xdist
    sends it from the worker to the controller)."""
    from memprobe.results.hunt import rates_json

    return {
        "target": result.target,
        "mode": mode,
        "verdict": result.verdict,
        "limits": limit.to_dict() if limit else None,
        "violations": [],
        "error": result.error,
        "routes": [{"route": r.route, "verdict": r.verdict, "kind": r.kind,
                    "requests": r.requests, "bytes_per_request": rates_json(r.bytes_per_request),
                    "total_bytes": {name: (fit.total if fit else None) for name, fit in
                                    (("traced", r.judgement.traced), ("uss", r.judgement.uss))},
                    "memory": r.memory,
                    "workers": [{"pid": w.pid, "role": w.role, "requests": w.requests, "verdict": w.verdict,
                                 "bytes_per_request": rates_json(w.bytes_per_request)} for w in r.workers]}
                   for r in result.routes],
        "result": result.to_dict(),
    }


def detail(result: HuntResult, violations: list[str], bad: set[str]) -> str:
    """The ``memprobe`` section of a failed test: what was measured, what broke the limit,
    and per offending route the growing allocation sites and what holds them."""
    s = result.settings
    mode = {"in_process": "in-process", "outside": "outside readings",
            "workers": "worker by worker"}.get(s.mode, "child process")
    measured = (f"decided on evidence after {s.warmup:,} warm-up" if s.sequential
                else f"{s.rounds} rounds x {s.requests:,} requests after {s.warmup:,} warm-up")
    lines = [f"target {result.target} ({result.framework or result.app_kind or '?'}, {mode}): {measured}",
             "violations:"]
    lines += [f"  {v}" for v in violations]
    for route in result.routes:
        if route.route not in bad:
            continue
        lines.append(f"route {route.route}: {route.verdict}"
                     f"{f' ({route.kind})' if route.kind else ''}: {route.judgement.reason}")
        if route.workers:
            lines.append("  per process (each on the requests it served):")
        for w in route.workers:
            served = f"{w.requests:,} requests" if w.role == "worker" else "serves none"
            site = next((s for s in w.sites if s.user), w.sites[0] if w.sites else None)
            where = f"; {short_path(site.file)}:{site.line}" if site and w.verdict != "clean" else ""
            held = f"; held by {w.holders[0].description}" if w.holders and w.verdict != "clean" else ""
            gone = "; respawned" if w.respawned else ""
            lines.append(f"    pid {w.pid} {w.role} ({served}): {w.verdict}, {_signals(w)}{where}{held}{gone}")
        if route.sites:
            lines.append("  top allocation sites (growth per request):")
            for site in route.sites[:5]:
                where = f"{short_path(site.file)}:{site.line}"
                code = f"  {site.code}" if site.code else ""
                lines.append(f"    {format_bytes(site.bytes_per_request, signed=True):>9}  "
                             f"{where}{code}")
        for holder in route.holders[:3]:
            lines.append(f"  held by: {holder.description}")
        if not route.sites and not route.holders and route.verdict in ("leak", "bounded"):
            lines.append("  no site or holder found (a native leak shows in USS only)")
        lines += [f"  note: {n}" for n in route.notes]
    return "\n".join(lines) + "\n"


def write_json(path: Path, records: list[dict[str, Any]], *, started: str | None = None,
               duration_s: float | None = None) -> None:
    """Write the session's records after the envelope: ``{"memprobe": version, "schema": 1,
    "result": "pytest", ..., "tests": [...]}``."""
    from memprobe.results.envelope import Envelope, now
    from memprobe.results.plugin import PytestResult

    path.parent.mkdir(parents=True, exist_ok=True)
    result = PytestResult(records, duration_s, envelope=Envelope(started or now()))
    path.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
