"""Renderers for ``memprobe check`` results: a terminal checklist and a pull-request comment."""
from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.text import Text

from memprobe.render import renders
from memprobe.render.terminal import to_text
from memprobe.results.check import CheckResult, Finding

_MARK = {"fail": "✗", "warn": "!", "info": "i", "pass": "✓", "ignored": "-", "n/a": "·"}
_STYLE = {"fail": "bold red", "warn": "yellow", "info": "cyan", "pass": "green", "ignored": "dim",
          "n/a": "dim"}
_EMOJI = {"fail": "❌", "warn": "⚠️", "info": "ℹ️", "pass": "✅", "ignored": "➖", "n/a": "➖"}


def _headline(result: CheckResult) -> str:
    counts = result.counts()
    errors = result.errors
    passed = sum(1 for c in result.checklist if c.status == "pass")
    parts = []
    if counts["fail"]:
        parts.append(f"{counts['fail']} failed")
    if counts["warn"]:
        parts.append(f"{counts['warn']} warning{'s' if counts['warn'] != 1 else ''}")
    if errors:
        parts.append(f"{len(errors)} file{'s' if len(errors) != 1 else ''} not checked")
    parts.append(f"{passed} passed")
    return ", ".join(parts)


def _context(result: CheckResult) -> str:
    kind = "Flask app" if result.flask_detected else "no Flask found: generic rules only"
    files = len(result.files)
    extra = f", {result.suppressed} suppressed" if result.suppressed else ""
    return f"{kind}, {files} file{'s' if files != 1 else ''} checked{extra}"


def evidence_line(evidence: dict[str, Any]) -> str:
    """A finding's measured evidence in one sentence (route, bytes per request, holder, site)."""
    parts = [f"route {evidence.get('route')} {evidence.get('verdict')}"]
    for key, label in (("traced_bytes_per_request", "traced"), ("uss_bytes_per_request", "USS")):
        if evidence.get(key) is not None:
            parts.append(f"{evidence[key]:+.1f} B/request {label}")
    if evidence.get("holder"):
        parts.append(f"held by {evidence['holder']}")
    if evidence.get("site"):
        parts.append(f"allocated at {evidence['site']}")
    return ", ".join(parts)


def findings_of(result: CheckResult, rule: str) -> list[Finding]:
    """The findings of one rule, in the order found."""
    return [f for f in result.findings if f.rule == rule]


@renders("text", "check")
def text(result: CheckResult, color: bool = False, width: int = 100) -> str:
    """The checklist, worst items first within the rule order, each with its evidence and fix."""
    lines: list[Any] = [
        # The target can be a long path: the context gets its own line so that it never
        # wraps mid-phrase.
        Text.assemble(("memprobe check ", "bold"), result.target), Text(_context(result), style="dim"),
        Text("")
    ]
    for error in result.errors:
        lines.append(Text.assemble((" ✗ ", _STYLE["fail"]), f"{error.file}:{error.line}: ",
                                   (error.message, _STYLE["fail"]),
                                   ("  (file skipped; others checked)", "dim")))
    if result.errors:
        lines.append(Text(""))
    for item in result.checklist:
        status = item.status
        if item.rule.startswith("MP9"):
            continue
        title = Text.assemble((f" {_MARK[status]} ", _STYLE[status]), (item.rule, "bold"), " ", item.title)
        if item.findings:
            title.append(f"  ({item.findings})", style=_STYLE[status])
        if item.note:
            title.append(f"  {item.note}", style="dim")
        lines.append(title)
        mine = findings_of(result, item.rule)
        for finding in mine:
            where = (f"{finding.file}:{finding.line}", "bold")
            lines.append(Text.assemble("     ", where, "  ", finding.message))
            if finding.snippet:
                lines.append(Text(f"       {finding.line:>4} │ {finding.snippet}", style="dim"))
            if finding.evidence:
                lines.append(Text.assemble("       ", ("measured: ", "magenta"),
                                           evidence_line(finding.evidence)))
        if mine:
            lines.append(Text.assemble("     ", ("why: ", "bold"), mine[0].rationale))
            lines.append(Text.assemble("     ", ("fix: ", "bold"), mine[0].advice))
    advice = [c for c in result.checklist if c.rule.startswith("MP9")]
    if advice:
        lines += [Text(""), Text("Advice (cannot be proven from source):", style="bold")]
        for item in advice:
            note = f"  [{item.note}]" if item.note else ""
            lines.append(Text.assemble((f" {_MARK[item.status]} ", _STYLE[item.status]),
                                       (item.rule, "bold"), f" {item.title}: ", (item.advice, "dim"),
                                       (note, "green")))
    if result.runtime.get("summary"):
        lines += [Text(""), Text.assemble(("measured: ", "bold magenta"), result.runtime["summary"])]
    passed = not result.failed
    verdict = "FAILED" if not passed else "passed"
    lines += [Text(""), Text.assemble((f"{verdict}: ", "bold red" if not passed else "bold green"),
                                      _headline(result))]
    return to_text(Group(*lines), color=color, width=width)


@renders("lines", "check")
def lines(result: CheckResult) -> str:
    """One line a finding, ``file:line:col: MPxxx [severity] message``, as linters print them
    (the pre-commit hook's output), then the verdict."""
    out = [f"{e.file}:{e.line}:1: {e.message} (file not checked)" for e in result.errors]
    out += [f"{f.file}:{f.line}:{f.col + 1}: {f.rule} [{f.severity.value}] {f.message}" for f in result.findings]
    out.append(f"memprobe check: {'FAILED' if result.failed else 'passed'}: {_headline(result)}"
               + (" (rules: docs/check-rules.md)" if result.findings else ""))
    return "\n".join(out) + "\n"


@renders("markdown", "check")
def markdown(result: CheckResult) -> str:
    """A pull-request comment: headline, checklist table, findings with snippets, advice."""
    icon = "❌" if result.failed else ("⚠️" if result.counts()["warn"] else "✅")
    out = [f"## {icon} memprobe check: {_headline(result)}", "",
           f"Target `{result.target}`: {_context(result)}.", ""]
    if result.errors:
        out += ["**Files that could not be checked:**", ""]
        out += [f"- `{e.file}:{e.line}`: {e.message}" for e in result.errors]
        out.append("")
    out += ["| | Rule | Item | Findings |", "|---|---|---|---|"]
    for item in result.checklist:
        if item.rule.startswith("MP9"):
            continue
        note = f" ({item.note})" if item.note else ""
        out.append(f"| {_EMOJI[item.status]} | {item.rule} | {_md(item.title)}{_md(note)} | "
                   f"{item.findings or ''} |")
    out.append("")
    if result.findings:
        out += ["### Findings", ""]
        for rule in dict.fromkeys(f.rule for f in result.findings):
            mine = findings_of(result, rule)
            worst = "fail" if any(f.severity.value == "fail" for f in mine) else mine[0].severity.value
            out += [f"#### {_EMOJI[worst]} {rule}: {_md(mine[0].title)}", ""]
            for f in mine:
                out.append(f"- `{f.file}:{f.line}`: {_md(f.message)}")
                if f.snippet:
                    out.append(f"  `{f.snippet.replace('`', '')}`")
                if f.evidence:
                    out.append(f"  Measured: {_md(evidence_line(f.evidence))}")
            out += ["", f"**Why:** {mine[0].rationale}", "", f"**Fix:** {mine[0].advice}", ""]
    if result.runtime.get("summary"):
        out += [f"**Measured (`--run`):** {_md(result.runtime['summary'])}", ""]
    advice = [c for c in result.checklist if c.rule.startswith("MP9")]
    if advice:
        out += ["<details><summary>Advice that source code cannot prove</summary>", ""]
        for item in advice:
            note = f" _{_md(item.note)}_" if item.note else ""
            out.append(f"- **{item.rule} {_md(item.title)}**: {item.advice}{note}")
        out += ["", "</details>", ""]
    out.append("Rules: docs/check-rules.md. Switch one off with `# memprobe: ignore[ID]` on the line "
               "(`# noqa: ID` under flake8), `--ignore ID`, or `[memprobe:check] ignore = ID` in setup.cfg. "
               "The same rules run in your editor (`flake8 --select MP`) and before a commit (the pre-commit "
               "hook `memprobe-check`); `--sarif FILE` puts them in code scanning.")
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")
