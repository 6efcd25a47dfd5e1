"""Shared pieces of the renderers: rich renderables to a string, a sampler that stopped early."""
from __future__ import annotations

import io
from collections.abc import Mapping
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


def sampler_stopped(samples: Mapping[str, Any] | None) -> str | None:
    """"memory sampler stopped at t=... after N points: why" when the series of memory over
    requests ended early (``samples.stopped`` of a compare round or a hammer), else None."""
    stopped = (samples or {}).get("stopped")
    if not stopped:
        return None
    if isinstance(stopped, str):  # written before ``stopped`` had fields
        return stopped
    return (f"memory sampler stopped at t={float(stopped.get('t_s') or 0):.1f} s after "
            f"{stopped.get('points', '?')} points: {stopped.get('why') or 'no reason given'}")
