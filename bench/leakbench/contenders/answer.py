"""What a contender says about one case, and what it cannot say."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Answer:
    """One contender's answer on one case: ``verdict`` is ``leak``, ``bounded``, ``clean``, or
    None when it could not answer (``error`` says why); ``sites`` are (file, line), best first."""

    verdict: str | None
    seconds: float
    kind: str | None = None
    sites: list[tuple[str, int]] = field(default_factory=list)
    holders: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        out = asdict(self)
        out["sites"] = [list(s) for s in self.sites]
        out["seconds"] = round(self.seconds, 3)
        return out


@dataclass(frozen=True)
class Contender:
    """A contender's name and, for each thing it cannot answer, why (None: it answers)."""

    name: str
    kind: str | None = None
    line: str | None = None
    holder: str | None = None
