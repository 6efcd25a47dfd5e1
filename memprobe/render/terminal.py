"""Shared pieces of the text renderers: rich renderables to a string."""
from __future__ import annotations

import io
from typing import Any

from rich.console import Console


def to_text(*renderables: Any, color: bool = False, width: int = 120) -> str:
    """Render rich objects to a string; ANSI colours only when ``color`` (a TTY) asks."""
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=color, no_color=not color, width=width,
                      color_system="auto" if color else None, highlight=False)
    for item in renderables:
        console.print(item)
    text = buf.getvalue()
    if color:
        return text
    # rich pads every table cell to its column's width: plain text (a pipe, a file, a CI log)
    # should not end its lines with runs of spaces.
    return "\n".join(line.rstrip() for line in text.split("\n"))
