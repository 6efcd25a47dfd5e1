"""Every rule ``memprobe check`` knows: id, slug, title, why it costs memory, and the fix.

The rules are data, kept in ``rules.toml`` beside this module so the words a user reads sit
together, one table a rule, and other outputs (docs, SARIF) can read the same file.

Ids are stable (documented in docs/check-rules.md): MP1xx are static rules over the app's source,
MP2xx come from ``--run`` (what only a measurement shows), MP9xx are the Flask memory tips that
source code cannot prove, shown as advice.
"""
from __future__ import annotations

import sys
from importlib import resources

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the standard library has it from 3.11
    import tomli as tomllib

from memprobe.check.model import Rule, Severity


def _read(kind: str) -> tuple[Rule, ...]:
    table = tomllib.loads(resources.files("memprobe.check").joinpath("rules.toml").read_text("utf-8"))
    return tuple(Rule(**{**row, "severity": Severity(row["severity"])}) for row in table[kind])


#: Rules read in the app's source.
STATIC_RULES: tuple[Rule, ...] = _read("static")
#: Rules only a measurement (``--run``) can raise.
RUNTIME_RULES: tuple[Rule, ...] = _read("runtime")
#: Flask memory tips that source code cannot prove: always advice.
ADVICE_RULES: tuple[Rule, ...] = _read("advice")
ALL_RULES: tuple[Rule, ...] = STATIC_RULES + RUNTIME_RULES + ADVICE_RULES
RULES: dict[str, Rule] = {r.id: r for r in ALL_RULES}
_BY_SLUG: dict[str, Rule] = {r.slug: r for r in ALL_RULES}


def lookup(name: str) -> Rule | None:
    """The rule called ``name``: an id (``MP101``, any case) or a slug (``global-growth``)."""
    return RULES.get(name.strip().upper()) or _BY_SLUG.get(name.strip().lower())
