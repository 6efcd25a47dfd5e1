"""``compare``'s typed result: a :class:`CompareResult` of :class:`FrameworkResult` rows, each
with the :class:`Round` s measured, as ``memprobe compare --json`` writes it and ``report``
reads it back.

Rows hold plain data (the framework's name, title, version, server): the runner fills them from
the catalog, and a row read back from JSON is the same object.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from memprobe.results.envelope import Envelope
from memprobe.results.rounds import Round, median_round, missing, spread

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

        if self.saved is not None:
            return self.saved
        if not self.rounds:
            return None
        return self.rounds[0] if len(self.rounds) == 1 else median_round(self.rounds)

    @property
    def spread(self) -> dict[str, dict[str, float]] | None:
        """Min, max and standard deviation of each key figure, with several rounds."""

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
