"""``compare``'s typed result: a :class:`CompareResult` of :class:`FrameworkResult` rows, each
with the :class:`Round` s measured, as ``memprobe compare --json`` writes it and ``report``
reads it back.

Rows hold plain data (the framework's name, title, version, server): the runner fills them from
the catalog, and a row read back from JSON is the same object.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from memprobe.process.memory import MemoryReading, TreeReading
from memprobe.results.envelope import Envelope
from memprobe.results.load import LoadFigures, delta, delta_pct, reading_dict, reading_from

#: row statuses
STATUSES = ("ok", "not-installed", "unavailable", "not-applicable", "failed-to-start", "crashed")
#: statuses of a row that could not run here (it says what to install)
NOT_RUN = ("not-installed", "unavailable", "not-applicable")


class HasDict(Protocol):
    """Settings that write themselves as JSON."""

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""


@dataclass
class SavedSettings:
    """A comparison's settings read back from JSON (the live ones are compare's ``Settings``)."""

    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The settings as they were written."""
        return dict(self.data)


@dataclass
class Round:
    """One start-hammer-stop of one framework (or, in a row of several rounds, their medians)."""

    pid: int | None = None
    url: str = ""
    ready_s: float | None = None
    before: MemoryReading | None = None
    after: MemoryReading | None = None
    load: LoadFigures | None = None
    samples: dict[str, Any] | None = None
    #: per request kind, when a scenario ran: JSON objects (name, requests, latency, memory after)
    steps: list[dict[str, Any]] | None = None
    workers: int | None = None
    #: production mode: the master and each worker (pid, role, before, after, delta)
    processes: list[dict[str, Any]] | None = None
    memory_by_role: dict[str, Any] | None = None
    #: the change; None: ``after - before`` (a row of medians holds the median change)
    delta: dict[str, int | None] | None = None
    delta_pct: dict[str, float | None] | None = None
    #: while measuring in production mode: the trees read and the roles seen (the runner turns
    #: them into ``processes``)
    tree_before: TreeReading | None = None
    tree_after: TreeReading | None = None
    roles: dict[int, str] = field(default_factory=dict)

    @property
    def change(self) -> dict[str, int | None] | None:
        """The memory change (bytes per field)."""
        return self.delta if self.delta is not None else delta(self.before, self.after)

    @property
    def change_pct(self) -> dict[str, float | None] | None:
        """The memory change in percent of ``before``."""
        return self.delta_pct if self.delta_pct is not None else delta_pct(self.before, self.after)

    def to_dict(self) -> dict[str, Any]:
        """JSON form; the load's keys sit at the top level, as in a result row."""
        out: dict[str, Any] = {
            "pid": self.pid,
            "url": self.url,
            "ready_s": None if self.ready_s is None else round(self.ready_s, 3),
            "before": reading_dict(self.before),
            "after": reading_dict(self.after),
            "delta": self.change,
            "delta_pct": self.change_pct,
        }
        if self.load is not None:
            out.update(requests=self.load.requests_dict(), throughput_rps=self.load.throughput_rps,
                       latency_ms=dict(self.load.latency_ms), duration_s=self.load.duration_s,
                       connections_opened=self.load.connections_opened)
        out["samples"] = self.samples
        if self.steps is not None:
            out["steps"] = [dict(s) for s in self.steps]
        if self.processes is not None:
            out["workers"] = self.workers
            out["processes"] = self.processes
            out["memory_by_role"] = self.memory_by_role
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Round:
        """Read back what :meth:`to_dict` wrote (a round, or a row's figures)."""
        return cls(pid=data.get("pid"), url=str(data.get("url") or ""), ready_s=data.get("ready_s"),
                   before=reading_from(data.get("before")), after=reading_from(data.get("after")),
                   load=LoadFigures.from_dict(data) if data.get("requests") else None,
                   samples=data.get("samples"),
                   steps=None if data.get("steps") is None else [dict(s) for s in data["steps"]],
                   workers=data.get("workers"), processes=data.get("processes"),
                   memory_by_role=data.get("memory_by_role"), delta=data.get("delta"),
                   delta_pct=data.get("delta_pct"))


@dataclass
class FrameworkResult:
    """One framework's row: who it is, its status and every round measured."""

    name: str
    title: str = ""
    version: str | None = None
    server: str = ""
    status: str = "ok"
    reason: str = ""
    log_tail: str = ""
    rounds: list[Round] = field(default_factory=list)
    #: the CRUD variant ("sqlite3", "sqlalchemy", "django-orm"), or ``None``
    variant: str | None = None
    #: what to install when the row cannot run here
    pip: str | None = None
    pip_extra: str | None = None
    #: read back from JSON: the row's figures as written (medians over rounds, or the one round)
    saved: Round | None = None
    #: read back from JSON: the spread as written
    saved_spread: dict[str, dict[str, float]] | None = None

    @property
    def stack(self) -> str:
        """The row's name: the framework, with its variant ("flask+sqlalchemy")."""
        return self.name + (f"+{self.variant}" if self.variant else "")

    @property
    def figures(self) -> Round | None:
        """What the row shows: the one round, or the medians over several (None when nothing
        was measured)."""
        from memprobe.results.rounds import median_round

        if self.saved is not None:
            return self.saved
        if not self.rounds:
            return None
        return self.rounds[0] if len(self.rounds) == 1 else median_round(self.rounds)

    @property
    def spread(self) -> dict[str, dict[str, float]] | None:
        """Min, max and standard deviation of each key figure, with several rounds."""
        from memprobe.results.rounds import spread

        if self.saved_spread is not None:
            return self.saved_spread
        return spread(self.rounds) if len(self.rounds) > 1 else None

    @property
    def measured(self) -> bool:
        """Whether requests were sent (the tables show the row)."""
        figures = self.figures
        return figures is not None and figures.load is not None

    def to_dict(self) -> dict[str, Any]:
        """A ``results[]`` entry. With several rounds, numbers are medians over the rounds,
        ``spread`` holds each key figure's min and max, and ``missing`` says which figure some
        rounds lacked (its median is over the rounds that had it)."""
        row: dict[str, Any] = {"framework": self.name, "title": self.title, "version": self.version,
                               "server": self.server, "status": self.status, "reason": self.reason,
                               "variant": self.variant, "stack": self.stack}
        if self.status in NOT_RUN:
            row["pip"] = self.pip
            row["pip_extra"] = self.pip_extra
            return row
        figures = self.figures
        if figures is not None:
            row.update(figures.to_dict())
        if len(self.rounds) > 1 or self.saved_spread is not None:
            row["pids"] = [r.pid for r in self.rounds]
            from memprobe.results.rounds import missing

            gaps = missing(self.rounds)
            if gaps:
                row["missing"] = gaps
            row["spread"] = self.spread or {}
            row["rounds"] = [r.to_dict() for r in self.rounds]
        if self.log_tail:
            row["log_tail"] = self.log_tail
        return row

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FrameworkResult:
        """Read back what :meth:`to_dict` wrote."""
        rounds = [Round.from_dict(r) for r in data.get("rounds") or []]
        several = "rounds" in data
        figures = Round.from_dict(data) if data.get("status") not in NOT_RUN and (
            data.get("requests") or data.get("before") or data.get("after")) else None
        if not several and figures is not None:
            rounds, figures = [figures], None
        return cls(name=str(data["framework"]), title=str(data.get("title") or ""),
                   version=data.get("version"), server=str(data.get("server") or ""),
                   status=str(data["status"]), reason=str(data.get("reason") or ""),
                   log_tail=str(data.get("log_tail") or ""), rounds=rounds,
                   variant=data.get("variant"), pip=data.get("pip"), pip_extra=data.get("pip_extra"),
                   saved=figures, saved_spread=data.get("spread") if several else None)


@dataclass
class CompareResult:
    """A whole comparison: settings, machine, one :class:`FrameworkResult` per framework."""

    settings: HasDict
    results: list[FrameworkResult] = field(default_factory=list)
    duration_s: float = 0.0
    interrupted: bool = False
    kind: str = "compare"
    envelope: Envelope = field(default_factory=Envelope)

    @property
    def started(self) -> str:
        """When the comparison started (UTC, ISO 8601)."""
        return self.envelope.started

    @property
    def measured(self) -> list[FrameworkResult]:
        """The rows that sent requests."""
        return [r for r in self.results if r.measured]

    def to_dict(self) -> dict[str, Any]:
        """The public JSON contract (README, "JSON")."""
        return {**self.envelope.to_dict(self.kind, self.settings.to_dict(), self.duration_s),
                "interrupted": self.interrupted, "results": [r.to_dict() for r in self.results]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompareResult:
        """Read back what :meth:`to_dict` wrote."""
        return cls(settings=SavedSettings(dict(data["settings"])),
                   results=[FrameworkResult.from_dict(r) for r in data["results"]],
                   duration_s=float(data.get("duration_s") or 0.0), interrupted=bool(data.get("interrupted")),
                   envelope=Envelope.from_dict(data))
