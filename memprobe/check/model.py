"""The data ``memprobe check`` produces: rules, findings, checklist items and the result."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


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


@dataclass(frozen=True)
class Rule:
    """One checklist item: a stable id, a slug, and the words a user reads."""

    id: str
    slug: str
    title: str
    severity: Severity
    rationale: str
    fix: str
    #: only meaningful in a Flask app (otherwise the checklist shows it as n/a)
    flask_only: bool = False
    #: a tip that source code cannot prove: always shown as advice, never as passed
    advice_only: bool = False


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
        """The item's public JSON form."""
        return {
            "rule": self.rule,
            "slug": self.slug,
            "title": self.title,
            "status": self.status,
            "findings": self.findings,
            "advice": self.advice,
            "note": self.note,
        }


@dataclass
class SourceError:
    """A file that could not be checked (syntax error, undecodable), with its line."""

    file: str
    line: int
    message: str

    def to_dict(self) -> dict[str, Any]:
        """The error's public JSON form."""
        return {"file": self.file, "line": self.line, "message": self.message}


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
        """The public JSON contract: ``findings[]`` and ``checklist[]`` plus context."""
        return {
            "result": self.kind,
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
