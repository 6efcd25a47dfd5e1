"""Renderers for ``memprobe check`` results: a terminal checklist and a pull-request comment."""
from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.text import Text

from memprobe.render import renders
from memprobe.render.terminal import to_text

_MARK = {"fail": "✗", "warn": "!", "info": "i", "pass": "✓", "ignored": "-", "n/a": "·"}
_STYLE = {"fail": "bold red", "warn": "yellow", "info": "cyan", "pass": "green", "ignored": "dim", "n/a": "dim"}
_EMOJI = {"fail": "❌", "warn": "⚠️", "info": "ℹ️", "pass": "✅", "ignored": "➖", "n/a": "➖"}


def _headline(data: dict[str, Any]) -> str:
    counts = data["counts"]
    passed = sum(1 for c in data["checklist"] if c["status"] == "pass")
    parts = []
    if counts["fail"]:
        parts.append(f"{counts['fail']} failed")
    if counts["warn"]:
        parts.append(f"{counts['warn']} warning{'s' if counts['warn'] != 1 else ''}")
    if data["errors"]:
        parts.append(f"{len(data['errors'])} file{'s' if len(data['errors']) != 1 else ''} not checked")
    parts.append(f"{passed} passed")
    return ", ".join(parts)


def _context(data: dict[str, Any]) -> str:
    kind = "Flask app" if data["flask_detected"] else "no Flask found: generic rules only"
    files = len(data["files"])
    extra = f", {data['suppressed']} suppressed" if data["suppressed"] else ""
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


@renders("text", "check")
def text(result: Any, color: bool = False, width: int = 100) -> str:
    """The checklist, worst items first within the rule order, each with its evidence and fix."""
    data = result.to_dict()
    lines: list[Any] = [
        # The target can be a long path: the context gets its own line so that it never
        # wraps mid-phrase.
        Text.assemble(("memprobe check ", "bold"), data["target"]), Text(_context(data), style="dim"),
        Text("")
    ]
    for error in data["errors"]:
        lines.append(Text.assemble((" ✗ ", _STYLE["fail"]), f"{error['file']}:{error['line']}: ",
                                   (error["message"], _STYLE["fail"]), ("  (file skipped; others checked)", "dim")))
    if data["errors"]:
        lines.append(Text(""))
    findings = data["findings"]
    for item in data["checklist"]:
        status = item["status"]
        if item["rule"].startswith("MP9"):
            continue
        title = Text.assemble((f" {_MARK[status]} ", _STYLE[status]), (item["rule"], "bold"), " ", item["title"])
        if item["findings"]:
            title.append(f"  ({item['findings']})", style=_STYLE[status])
        if item["note"]:
            title.append(f"  {item['note']}", style="dim")
        lines.append(title)
        mine = [f for f in findings if f["rule"] == item["rule"]]
        for finding in mine:
            lines.append(Text.assemble("     ", (f"{finding['file']}:{finding['line']}", "bold"), "  ",
                                       finding["message"]))
            if finding["snippet"]:
                lines.append(Text(f"       {finding['line']:>4} │ {finding['snippet']}", style="dim"))
            if finding.get("evidence"):
                lines.append(Text.assemble("       ", ("measured: ", "magenta"), evidence_line(finding["evidence"])))
        if mine:
            lines.append(Text.assemble("     ", ("why: ", "bold"), mine[0]["rationale"]))
            lines.append(Text.assemble("     ", ("fix: ", "bold"), mine[0]["advice"]))
    advice = [c for c in data["checklist"] if c["rule"].startswith("MP9")]
    if advice:
        lines += [Text(""), Text("Advice (cannot be proven from source):", style="bold")]
        for item in advice:
            note = f"  [{item['note']}]" if item["note"] else ""
            lines.append(Text.assemble((f" {_MARK[item['status']]} ", _STYLE[item["status"]]),
                                       (item["rule"], "bold"), f" {item['title']}: ", (item["advice"], "dim"),
                                       (note, "green")))
    if data["runtime"].get("summary"):
        lines += [Text(""), Text.assemble(("measured: ", "bold magenta"), data["runtime"]["summary"])]
    verdict = "FAILED" if not data["passed"] else "passed"
    lines += [Text(""), Text.assemble((f"{verdict}: ", "bold red" if not data["passed"] else "bold green"),
                                      _headline(data))]
    return to_text(Group(*lines), color=color, width=width)


@renders("markdown", "check")
def markdown(result: Any) -> str:
    """A pull-request comment: headline, checklist table, findings with snippets, advice."""
    data = result.to_dict()
    icon = "❌" if not data["passed"] else ("⚠️" if data["counts"]["warn"] else "✅")
    out = [f"## {icon} memprobe check: {_headline(data)}", "",
           f"Target `{data['target']}`: {_context(data)}.", ""]
    if data["errors"]:
        out += ["**Files that could not be checked:**", ""]
        out += [f"- `{e['file']}:{e['line']}`: {e['message']}" for e in data["errors"]]
        out.append("")
    out += ["| | Rule | Item | Findings |", "|---|---|---|---|"]
    for item in data["checklist"]:
        if item["rule"].startswith("MP9"):
            continue
        note = f" ({item['note']})" if item["note"] else ""
        out.append(f"| {_EMOJI[item['status']]} | {item['rule']} | {_md(item['title'])}{_md(note)} | "
                   f"{item['findings'] or ''} |")
    out.append("")
    findings = data["findings"]
    if findings:
        out += ["### Findings", ""]
        for rule in dict.fromkeys(f["rule"] for f in findings):
            mine = [f for f in findings if f["rule"] == rule]
            worst = "fail" if any(f["severity"] == "fail" for f in mine) else mine[0]["severity"]
            out += [f"#### {_EMOJI[worst]} {rule}: {_md(mine[0]['title'])}", ""]
            for f in mine:
                out.append(f"- `{f['file']}:{f['line']}`: {_md(f['message'])}")
                if f["snippet"]:
                    out.append(f"  `{f['snippet'].replace('`', '')}`")
                if f.get("evidence"):
                    out.append(f"  Measured: {_md(evidence_line(f['evidence']))}")
            out += ["", f"**Why:** {mine[0]['rationale']}", "", f"**Fix:** {mine[0]['advice']}", ""]
    if data["runtime"].get("summary"):
        out += [f"**Measured (`--run`):** {_md(data['runtime']['summary'])}", ""]
    advice = [c for c in data["checklist"] if c["rule"].startswith("MP9")]
    if advice:
        out += ["<details><summary>Advice that source code cannot prove</summary>", ""]
        for item in advice:
            note = f" _{_md(item['note'])}_" if item["note"] else ""
            out.append(f"- **{item['rule']} {_md(item['title'])}**: {item['advice']}{note}")
        out += ["", "</details>", ""]
    out.append("Rules: docs/check-rules.md. Switch one off with `# memprobe: ignore[ID]` on the line, "
               "`--ignore ID`, or `[memprobe:check] ignore = ID` in setup.cfg.")
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")
