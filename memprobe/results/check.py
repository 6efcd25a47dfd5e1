"""``memprobe check``'s typed result: findings, checklist items, files that could not be
checked, as ``check --json`` writes them and ``report`` reads them back."""
from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

from memprobe.results.envelope import Envelope


class Severity(str, enum.Enum):
    """How bad a finding is; the JSON spells these ``fail``, ``warn``, ``info``."""

    #: Memory certainly grows with the number of requests.
    FAIL = "fail"
    #: Likely costs memory; depends on data sizes or deployment.
    WARN = "warn"
    #: Advice that source code cannot prove or disprove.
    INFO = "info"


#: checklist statuses, worst first
STATUSES = ("fail", "warn", "info", "pass", "ignored", "n/a")


@dataclass
class Finding:
    """One piece of evidence that a rule is broken, at ``file:line``."""

    rule: str
    severity: Severity
    file: str
    line: int
    title: str
    message: str
    advice: str
    rationale: str = ""
    col: int = 0
    snippet: str = ""
    #: the module global, function or config key the finding is about, when there is one
    symbol: str = ""
    #: first and last line of the enclosing function, for matching runtime allocation sites
    scope: tuple[int, int] | None = None
    #: what ``--run`` measured about this finding (bytes per request, holder chain...)
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The finding's public JSON form."""
        data: dict[str, Any] = {
            "rule": self.rule,
            "severity": self.severity.value,
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "title": self.title,
            "message": self.message,
            "advice": self.advice,
            "rationale": self.rationale,
            "snippet": self.snippet,
            "symbol": self.symbol,
        }
        if self.evidence:
            data["evidence"] = self.evidence
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        """Read back what :meth:`to_dict` wrote."""
        return cls(rule=str(data["rule"]), severity=Severity(data["severity"]), file=str(data["file"]),
                   line=int(data["line"]), title=str(data["title"]), message=str(data["message"]),
                   advice=str(data.get("advice", "")), rationale=str(data.get("rationale", "")),
                   col=int(data.get("col", 0)), snippet=str(data.get("snippet", "")),
                   symbol=str(data.get("symbol", "")), evidence=dict(data.get("evidence") or {}))


@dataclass
class ChecklistItem:
    """A rule's overall status for the checked code."""

    rule: str
    slug: str
    title: str
    status: str
    findings: int = 0
    advice: str = ""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The item's public JSON form: its fields, by name."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChecklistItem:
        """Read back what :meth:`to_dict` wrote."""
        return cls(rule=str(data["rule"]), slug=str(data.get("slug", "")), title=str(data["title"]),
                   status=str(data["status"]), findings=int(data.get("findings") or 0),
                   advice=str(data.get("advice", "")), note=str(data.get("note", "")))


@dataclass
class SourceError:
    """A file that could not be checked (syntax error, undecodable), with its line."""

    file: str
    line: int
    message: str

    def to_dict(self) -> dict[str, Any]:
        """The error's public JSON form."""
        return {"file": self.file, "line": self.line, "message": self.message}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceError:
        """Read back what :meth:`to_dict` wrote."""
        return cls(str(data["file"]), int(data["line"]), str(data["message"]))


@dataclass
class CheckResult:
    """Everything ``memprobe check`` found; rendered as text, Markdown or JSON."""

    target: str
    findings: list[Finding]
    checklist: list[ChecklistItem]
    files: list[str]
    errors: list[SourceError]
    flask_detected: bool
    ignored_rules: list[str] = field(default_factory=list)
    suppressed: int = 0
    #: a summary of the ``--run`` measurement, empty without ``--run``
    runtime: dict[str, Any] = field(default_factory=dict)
    kind: str = "check"
    envelope: Envelope = field(default_factory=Envelope)
    #: seconds the check took (set by the command; None when nobody timed it)
    duration_s: float | None = None

    @property
    def failed(self) -> bool:
        """True when an item failed or a file could not be checked: the CI gate."""
        return bool(self.errors) or any(f.severity is Severity.FAIL for f in self.findings)

    def counts(self) -> dict[str, int]:
        """Number of findings per severity."""
        out = {s.value: 0 for s in Severity}
        for finding in self.findings:
            out[finding.severity.value] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """The public JSON contract: the envelope, ``findings[]`` and ``checklist[]`` plus context."""
        return {
            **self.envelope.to_dict(self.kind, self.settings, self.duration_s),
            "target": self.target,
            "passed": not self.failed,
            "flask_detected": self.flask_detected,
            "counts": self.counts(),
            "findings": [f.to_dict() for f in self.findings],
            "checklist": [c.to_dict() for c in self.checklist],
            "files": self.files,
            "errors": [e.to_dict() for e in self.errors],
            "ignored_rules": self.ignored_rules,
            "suppressed": self.suppressed,
            "runtime": self.runtime,
        }

    @property
    def settings(self) -> dict[str, Any]:
        """What the check was asked to do: the rules switched off, and whether ``--run``
        measured the app."""
        return {"ignore": list(self.ignored_rules), "run": bool(self.runtime)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        """Read back what :meth:`to_dict` wrote (``passed`` and ``counts`` follow from the
        findings and errors)."""
        duration = data.get("duration_s")
        return cls(target=str(data["target"]),
                   findings=[Finding.from_dict(f) for f in data["findings"]],
                   checklist=[ChecklistItem.from_dict(c) for c in data["checklist"]],
                   files=[str(f) for f in data.get("files") or []],
                   errors=[SourceError.from_dict(e) for e in data.get("errors") or []],
                   flask_detected=bool(data.get("flask_detected")),
                   ignored_rules=[str(r) for r in data.get("ignored_rules") or []],
                   suppressed=int(data.get("suppressed") or 0), runtime=dict(data.get("runtime") or {}),
                   envelope=Envelope.from_dict(data),
                   duration_s=float(duration) if isinstance(duration, (int, float)) else None)
