"""The one target-spec parser of hunt, check and the pytest plugin: text in, :class:`TargetSpec` out.

A spec is ``WHERE[:WHAT]``:

* ``WHERE`` is a file (``app.py``, ``path/to/app.py``), a package directory (``dir/pkg``, anything
  with a ``/``), or an importable module (``pkg.mod``);
* ``WHAT`` is a dotted attribute (``app``, ``obj.app``) or a factory call with literal arguments,
  positional or keyword (``create_app('sqlite:///x.db', debug=False)``); without it the app is
  ``app``, then ``application``.

The spec splits at its first ``:`` that is outside quotes and parentheses, so colons inside a
factory's arguments are the arguments'. Nothing is imported here: :func:`parse_target` is pure,
:func:`locate` only looks at the file system. A malformed spec raises :class:`TargetSpecError`,
a usage error (exit 2); a well-formed spec naming something that does not exist, cannot be
imported or is not an app is a :class:`~memprobe.errors.TargetError` (exit 3), from
:func:`locate` or :mod:`memprobe.target.loader`.
"""
from __future__ import annotations

import ast
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from memprobe.errors import TargetError, TargetSpecError

USAGE = "give FILE.py:APP, MODULE:APP or MODULE:FACTORY(ARGS)"


@dataclass(frozen=True)
class TargetSpec:
    """A parsed target: where the code is, which attribute, and how to call it.

    ``source`` is ``WHERE`` as written and ``what`` is ``WHAT`` as written (empty when absent),
    so the spec can be spelled again with a resolved path (:meth:`with_path`)."""

    spec: str
    #: the module's name: a file's stem, a package directory's name, or the dotted module
    module: str
    #: dotted attribute path; None means the default (``app``, then ``application``)
    attr: str | None
    #: the file or package directory, absolute, when ``WHERE`` is a path; None for a module
    path: Path | None = None
    call: bool = False
    args: tuple[Any, ...] = field(default_factory=tuple)
    kwargs: tuple[tuple[str, Any], ...] = field(default_factory=tuple)
    source: str = ""
    what: str = ""

    @property
    def label(self) -> str:
        """How the target is named in reports (the spec as given)."""
        return self.spec

    @property
    def is_file(self) -> bool:
        """True when ``WHERE`` is a path (a file or a package directory), not a module name."""
        return self.path is not None

    def with_path(self, path: str | Path) -> TargetSpec:
        """The same target with ``WHERE`` replaced by ``path`` (made absolute), spelled again."""
        where = Path(path).expanduser().resolve()
        text = f"{where}:{self.what}" if self.what else str(where)
        return replace(self, spec=text, module=_module_of(where), path=where, source=str(where))


def parse_target(spec: str, base: str | Path | None = None) -> TargetSpec:
    """Parse ``spec`` without importing or reading anything; raise :class:`TargetSpecError`
    (exit 2) when it is malformed. A relative path is taken from ``base`` (default: the
    working directory)."""
    text = spec.strip() if isinstance(spec, str) else ""
    if not text:
        raise TargetSpecError(f"empty target: {USAGE}")
    where, what = _split(text)
    if not where:
        raise TargetSpecError(f"target {text!r} names no file or module before ':'; {USAGE}")
    if what is not None and not what:
        raise TargetSpecError(f"target {text!r} names nothing after ':'; give the app "
                              f"({where}:app) or leave out the ':'")
    attr, call, args, kwargs = _parse_what(text, what or "")
    common: dict[str, Any] = {"attr": attr, "call": call, "args": args, "kwargs": kwargs,
                              "source": where, "what": what or ""}
    if _is_path(where) and not any(ch in where for ch in "()[]{}"):
        path = Path(where).expanduser()
        if base is not None and not path.is_absolute():
            path = Path(base) / path
        path = path.resolve()
        return TargetSpec(text, _module_of(path), path=path, **common)
    if not all(part.isidentifier() for part in where.split(".")):
        raise TargetSpecError(f"target {text!r}: {where!r} is not a module name or a .py file; {USAGE}")
    return TargetSpec(text, where, **common)


def _split(text: str) -> tuple[str, str | None]:
    """``WHERE`` and ``WHAT`` (None without a ':'), cut at the first ':' outside quotes and
    parentheses."""
    depth, quote, cut, i = 0, "", -1, 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"" and depth > 0:  # quotes only matter in arguments: a path may hold one
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                raise TargetSpecError(f"target {text!r}: unbalanced parentheses")
        elif ch == ":" and depth == 0 and cut < 0:
            cut = i
        i += 1
    if quote or depth:
        raise TargetSpecError(f"target {text!r}: unbalanced {'quotes' if quote else 'parentheses'}")
    return (text, None) if cut < 0 else (text[:cut].strip(), text[cut + 1:].strip())


def _is_path(where: str) -> bool:
    return where.endswith(".py") or "/" in where or os.sep in where or where.startswith((".", "~"))


def _module_of(path: Path) -> str:
    return path.stem if path.suffix == ".py" else path.name


_What = tuple[str | None, bool, tuple[Any, ...], tuple[tuple[str, Any], ...]]


def _parse_what(spec: str, what: str) -> _What:
    if not what:
        return None, False, (), ()
    try:
        node = ast.parse(what, mode="eval").body
    except SyntaxError:
        node = None
    if isinstance(node, ast.Call):
        name = _dotted(node.func)
        if name is None:
            raise TargetSpecError(f"target {spec!r}: {what!r} is not a factory call such as create_app()")
        try:
            args = tuple(ast.literal_eval(a) for a in node.args)
            kwargs = tuple((k.arg, ast.literal_eval(k.value)) for k in node.keywords if k.arg)
            if len(kwargs) != len(node.keywords):  # **mapping
                raise ValueError
        except ValueError:
            raise TargetSpecError(f"target {spec!r}: a factory takes literal arguments only, "
                                  f"e.g. {name}('testing') or {name}(config='testing')") from None
        return name, True, args, kwargs
    name = _dotted(node) if node is not None else None
    if name is None:
        if ":" in what:
            raise TargetSpecError(f"target {spec!r} has a second ':' outside a factory's "
                                  "arguments; quote an argument that contains one")
        raise TargetSpecError(f"target {spec!r}: {what!r} is not an attribute name or a "
                              "factory call such as create_app()")
    return name, False, (), ()


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of names, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def locate(target: TargetSpec, base: str | Path | None = None) -> Path:
    """The source file of ``target``'s module (a package's ``__init__.py``), found the way the
    import system would find it but without importing; TargetError (exit 3) when there is none.

    A module is looked up in ``base`` (default: the working directory), then on ``sys.path``."""
    if target.path is not None:
        path = target.path
        if path.is_dir():
            init = path / "__init__.py"
            if not init.is_file():
                raise TargetError(f"{path} is a directory, not a Python file or package")
            return init
        if not path.exists():
            raise TargetError(f"no such file or directory: {path}")
        return path
    found = find_module(target.module, base)
    if found is None:
        raise TargetError(f"cannot find module {target.module!r} (looked in "
                          f"{'the current directory' if base is None else base} and sys.path)")
    return found


def find_module(name: str, base: str | Path | None = None) -> Path | None:
    """The source file of module ``name`` in ``base`` (default: the working directory) or on
    sys.path, without importing it; None when there is none."""
    parts = name.split(".")
    for entry in [str(base) if base is not None else os.getcwd(), *sys.path]:
        stem = Path(entry or ".").joinpath(*parts)
        for candidate in (stem.with_suffix(".py"), stem / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None
