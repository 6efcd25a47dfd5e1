"""Text and Markdown for two saved runs side by side (a :class:`~memprobe.results.diff.RunDiff`):
each section's figures of run A, run B and the change, and a line of what changed beyond noise.
"""
from __future__ import annotations

from typing import Any

from memprobe.render import renders
from memprobe.results.diff import NOISE, UNITS, RunDiff, change, diff_runs

__all__ = ["NOISE", "UNITS", "RunDiff", "change", "change_text", "diff_runs", "highlights", "markdown", "text"]


def change_text(row: dict[str, Any]) -> str:
    """``+1.2 MiB (+5.0 %)``, ``leak → clean``, or ``-``."""
    if row["unit"] == "text":
        return f"{row['a_text']} → {row['b_text']}" if row["a"] != row["b"] else "same"
    if row["change"] is None:
        return "-"
    unit = "growth" if row["unit"] == "bytes" else row["unit"]
    digits = {"ms": 2}.get(unit, 0)
    if unit in ("growth", "B/request"):
        text = UNITS[unit][0](row["change"])
    else:
        text = f"{row['change']:+.{digits}f}"
    pct = f" ({row['change_pct']:+.1f} %)" if row["change_pct"] is not None else ""
    return text + pct


def highlights(sections: list[dict[str, Any]], labels: tuple[str, str]) -> list[str]:
    """The changes worth a line: verdicts and statuses that moved, figures that got worse or
    better beyond noise."""
    out = []
    for section in sections:
        for row in section["rows"]:
            for fig in row["figures"]:
                if fig["label"] in ("status", "verdict") and (fig["a"] is None or fig["b"] is None):
                    if fig["a"] != fig["b"]:
                        out.append(f"{row['name']}: only in {labels[fig['a'] is None]}")
                    break
                moved = (fig["unit"] == "text" and fig["direction"] == "changed"
                         and fig["label"] in ("status", "verdict"))
                if fig["direction"] in ("better", "worse") or moved:
                    word = f" ({fig['direction']})" if fig["direction"] in ("better", "worse") else ""
                    out.append(f"{row['name']}: {fig['label']} {fig['a_text']} → {fig['b_text']}{word}")
    return out


@renders("text", "diff")
def text(result: RunDiff, color: bool = False, width: int = 140) -> str:
    """One table per section: each figure of run A, run B and the change."""
    from rich.table import Table
    from rich.text import Text

    from memprobe.render.terminal import to_text

    la, lb = result.labels
    sections = result.sections()
    style = {"better": "green", "worse": "red", "changed": "yellow", "same": ""}
    parts: list[Any] = [Text(f"memprobe {result.a.kind}: {la} → {lb}", style="bold")]
    for section in sections:
        table = Table(title=section["title"], title_justify="left")
        for name, justify in ((section["key"], "left"), ("figure", "left"), (la, "right"),
                              (lb, "right"), ("change", "right")):
            table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
        for row in section["rows"]:
            for i, fig in enumerate(row["figures"]):
                table.add_row(row["name"] if i == 0 else "", fig["label"], fig["a_text"], fig["b_text"],
                              Text(change_text(fig), style=style[fig["direction"]]),
                              end_section=i == len(row["figures"]) - 1)
        parts.append(table)
        parts += [Text(note, style="dim") for note in section["notes"]]
    lines = highlights(sections, result.labels)
    summary = "; ".join(lines) if lines else "nothing beyond noise"
    parts.append(Text("what changed: " + summary, style="bold"))
    return to_text(*parts, color=color, width=width)


@renders("markdown", "diff")
def markdown(result: RunDiff) -> str:
    """The same tables in Markdown, for a pull-request comment."""
    la, lb = result.labels
    sections = result.sections()
    out = [f"## memprobe {result.a.kind}: `{la}` → `{lb}`", ""]
    lines = highlights(sections, result.labels)
    out += [f"- {_md(x)}" for x in lines] if lines else ["Nothing changed beyond noise."]
    for section in sections:
        out += ["", f"### {section['title']}", "",
                f"| {section['key']} | figure | {_md(la)} | {_md(lb)} | change |", "|---|---|---:|---:|---:|"]
        for row in section["rows"]:
            for i, fig in enumerate(row["figures"]):
                mark = {"better": " ✅", "worse": " ❌"}.get(fig["direction"], "")
                name = _md(row["name"]) if i == 0 else ""
                out.append(f"| {name} | {fig['label']} | {_md(fig['a_text'])} | "
                           f"{_md(fig['b_text'])} | {_md(change_text(fig))}{mark} |")
        if section["notes"]:
            out += [""] + [f"- {_md(n)}" for n in section["notes"]]
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
