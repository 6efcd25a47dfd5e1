"""Renderers turn a result into text; the caller decides where the text goes.

A renderer is picked by name (``text``, ``markdown``, ``json``, ``html``, ``sarif``) or by a file's suffix
(``report.md`` -> markdown). Each result kind has its own module here (``compare``, ``hunt``,
``check``...) that registers one function per format with :func:`renders`; JSON needs none,
since every result has ``to_dict()``.
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, Callable, Protocol

from memprobe.errors import UsageError


class Result(Protocol):
    """What every renderable result provides."""

    kind: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict: the public contract."""


RenderFn = Callable[..., str]
_REGISTRY: dict[tuple[str, str], RenderFn] = {}

#: format name -> file suffixes that select it
FORMATS: dict[str, tuple[str, ...]] = {
    "text": (".txt",),
    "markdown": (".md", ".markdown"),
    "json": (".json",),
    "html": (".html", ".htm"),
    "sarif": (".sarif",),
}
#: formats whose renderers live in a module of their own (the others: one module per result kind)
_FORMAT_MODULES = {"html": "memprobe.render.html", "sarif": "memprobe.render.sarif",
                   "mprof": "memprobe.render.mprof"}
#: kinds whose renderers (every format's) live in a module not named after the kind
_KIND_MODULES = {"pytest": "memprobe.render.plugin", "pytest-baseline": "memprobe.render.plugin",
                 "watch": "memprobe.render.watch"}


def renders(fmt: str, kind: str) -> Callable[[RenderFn], RenderFn]:
    """Register ``fn(result) -> str`` as the ``fmt`` renderer of results of ``kind``."""

    def register(fn: RenderFn) -> RenderFn:
        _REGISTRY[(fmt, kind)] = fn
        return fn

    return register


def render(result: Result, fmt: str, **options: Any) -> str:
    """Render ``result`` in format ``fmt``; ``options`` go to the renderer (for ``text``:
    ``color`` and ``width``)."""
    if fmt == "json":
        return json.dumps(result.to_dict(), indent=2, sort_keys=False) + "\n"
    key = (fmt, result.kind)
    if key not in _REGISTRY:
        module = _KIND_MODULES.get(result.kind) or _FORMAT_MODULES.get(fmt, f"memprobe.render.{result.kind}")
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if not err.name or not err.name.startswith("memprobe"):
                raise
    if key not in _REGISTRY:
        raise UsageError(f"no {fmt} renderer for {result.kind} results")
    return _REGISTRY[key](result, **options)


def format_for(path: str | Path) -> str:
    """The format a file's suffix asks for (``.md`` -> ``markdown``)."""
    suffix = Path(path).suffix.lower()
    for fmt, suffixes in FORMATS.items():
        if suffix in suffixes:
            return fmt
    raise UsageError(f"cannot tell the report format from {str(path)!r}: use .json, .md, .html, .txt or .sarif")


def write(result: Result, path: str | Path, fmt: str | None = None) -> Path:
    """Render ``result`` to ``path`` (format from the suffix unless given); return the path."""
    path = Path(path)
    text = render(result, fmt or format_for(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
