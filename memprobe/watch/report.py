"""The rolling report: an :class:`~memprobe.watch.analysis.Analysis`, the cgroup and the
advice put together as a :class:`~memprobe.results.watch.WatchResult`."""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from memprobe.errors import UsageError
from memprobe.results.envelope import Envelope
from memprobe.results.watch import CgroupReading, WatchResult, Window
from memprobe.watch.advice import advise, fill_time_to_limit
from memprobe.watch.analysis import Analysis
from memprobe.watch.attribution import Traces


def build_report(analysis: Analysis, *, cgroup: CgroupReading | None = None, budget: float | None = None,
                 settings: dict[str, Any] | None = None, notes: Iterable[str] = (),
                 envelope: Envelope | None = None, traces: Traces | None = None) -> WatchResult:
    """The report as it stands: the server's route lines (with what the attribution windows
    found, ``traces``), each worker's, the timeline, the cgroup with the time to its limit, the
    advice and the notes."""
    routes = analysis.routes()
    if traces is not None:
        traces.refine(routes, analysis.server_growing())
    workers = analysis.workers()
    advice = advise(routes, workers, cgroup, budget)
    advice.time_to_limit_s = fill_time_to_limit(workers, cgroup, budget)
    all_notes = list(notes) + analysis.notes()
    if cgroup is not None and cgroup.reason:
        all_notes.append(f"cgroup: {cgroup.reason}; the rest of the report stands")
    server = analysis.server
    span = (server.last_t - server.first_t) if server is not None and server.first_t is not None else 0.0
    if traces is not None:
        all_notes += [f"pid {pid} refused an attribution window: {why}" for pid, why in traces.refused.items()]
    return WatchResult(routes, workers, analysis.timeline(routes), cgroup, advice, all_notes, dict(settings or {}),
                       analysis.windows, span, list(traces.listed) if traces is not None else [],
                       envelope=envelope or Envelope())


def from_windows(path: str | Path, budget: float | None = None) -> WatchResult:
    """The report of the windows a file holds (what :func:`memprobe.watch.middleware.middleware`
    writes): one line of error for a file that is not one."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        windows = [Window.from_dict(w) for w in data["windows"]]
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror or err}") from None
    except (ValueError, KeyError, TypeError) as err:
        raise UsageError(f"{path} is not a file of watch windows ({err})") from None
    analysis = Analysis()
    for window in sorted(windows, key=lambda w: (w.pid, w.end)):
        analysis.add(window)
    return build_report(analysis, budget=budget, settings={"windows_from": str(path), "how": data.get("how")})
