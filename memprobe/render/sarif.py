"""SARIF 2.1.0 of a ``memprobe check`` result: what GitHub code scanning (and other SARIF
viewers) read, e.g. through ``github/codeql-action/upload-sarif``.

    memprobe check myapp/ --sarif check.sarif
    memprobe report check.json -o check.sarif

One run; the tool's rules are check's static and ``--run`` rules (id, slug as name, title,
why, the fix as help, the default level); a result per finding, at its file, line and column.
Paths are kept as check shows them (relative to where it ran, normally the repository's root),
with the ``%SRCROOT%`` base id code scanning resolves to the checkout. Files that could not be
checked are tool notifications of the run's invocation.
"""
from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

from memprobe import __version__
from memprobe.check.model import Rule
from memprobe.check.rules import RULES, RUNTIME_RULES, STATIC_RULES
from memprobe.render import renders
from memprobe.results.check import CheckResult, Finding

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
#: the base id GitHub code scanning resolves to the root of the checked-out repository
SRCROOT = "%SRCROOT%"
#: memprobe's severities as SARIF levels
LEVELS = {"fail": "error", "warn": "warning", "info": "note"}
#: where docs/check-rules.md describes every rule (shown in each rule's help)
RULES_DOC = "docs/check-rules.md"


@renders("sarif", "check")
def sarif(result: CheckResult) -> str:
    """The SARIF 2.1.0 log of ``result``, as a JSON string."""
    rules = list(STATIC_RULES) + list(RUNTIME_RULES)
    rules += [RULES[rid] for rid in dict.fromkeys(f.rule for f in result.findings)
              if rid in RULES and RULES[rid] not in rules]
    index = {rule.id: i for i, rule in enumerate(rules)}
    invocation: dict[str, Any] = {
        "executionSuccessful": True,
        "toolExecutionNotifications": [
            {"level": "error", "message": {"text": f"{e.message} (file not checked)"},
             "locations": [_location(e.file, e.line, 0)]} for e in result.errors],
    }
    if result.envelope.started:
        invocation["startTimeUtc"] = _utc(result.envelope.started)
    run = {
        "tool": {"driver": {
            "name": "memprobe",
            "fullName": "memprobe check: Flask memory hygiene",
            "version": result.envelope.version if result.envelope.version != "?" else __version__,
            "semanticVersion": __version__,
            "rules": [_rule(rule) for rule in rules],
        }},
        "invocations": [invocation],
        "columnKind": "unicodeCodePoints",
        "results": [_result(f, index.get(f.rule)) for f in result.findings],
        "properties": {"target": result.target, "flaskDetected": result.flask_detected,
                       "ignoredRules": list(result.ignored_rules), "suppressed": result.suppressed},
    }
    log = {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"


def _rule(rule: Rule) -> dict[str, Any]:
    anchor = f"{rule.id.lower()}-{rule.slug}"
    return {
        "id": rule.id,
        "name": rule.slug,
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.rationale},
        "help": {"text": f"{rule.fix} (see {RULES_DOC}#{anchor})",
                 "markdown": f"{rule.fix}\n\nSee `{RULES_DOC}`, section {rule.id}."},
        "defaultConfiguration": {"level": LEVELS[rule.severity.value]},
        "properties": {"tags": ["memory", "flask" if rule.flask_only else "python"],
                       "precision": "high" if rule.severity.value == "fail" else "medium"},
    }


def _result(finding: Finding, rule_index: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ruleId": finding.rule,
        "level": LEVELS[finding.severity.value],
        "message": {"text": finding.message},
        "locations": [_location(finding.file, finding.line, finding.col, finding.snippet)],
    }
    if rule_index is not None:
        out["ruleIndex"] = rule_index
    properties: dict[str, Any] = {}
    if finding.symbol:
        properties["symbol"] = finding.symbol
    if finding.evidence:
        properties["evidence"] = finding.evidence
    if properties:
        out["properties"] = properties
    return out


def _location(file: str, line: int, col: int, snippet: str = "") -> dict[str, Any]:
    path = PurePosixPath(file.replace("\\", "/"))
    artifact: dict[str, Any] = {"uri": path.as_uri()} if path.is_absolute() else {"uri": str(path), "uriBaseId": SRCROOT}
    physical: dict[str, Any] = {"artifactLocation": artifact}
    if line > 0:
        region: dict[str, Any] = {"startLine": line, "startColumn": col + 1}
        if snippet:
            region["snippet"] = {"text": snippet}
        physical["region"] = region
    return {"physicalLocation": physical}


def _utc(started: str) -> str:
    """The envelope's ISO time (``+00:00``) spelt as SARIF's date-time (``Z``)."""
    return started.replace("+00:00", "Z")
