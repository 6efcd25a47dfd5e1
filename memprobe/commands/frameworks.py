"""``memprobe frameworks``: which frameworks ``compare`` knows, which are installed, which versions."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from memprobe.compare import frameworks as catalog
from memprobe.errors import UsageError


class FrameworksCommand:
    """List every framework in the catalog with its install state, version and server."""

    name = "frameworks"
    help = "list the frameworks compare knows, which are installed, and their versions"

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        """Add ``--json FILE``."""
        parser.add_argument("--json", metavar="FILE", help="also write the list as JSON to FILE")

    def run(self, args: argparse.Namespace) -> int:
        """Print the table; write JSON when asked; always exit 0."""
        rows = [fw.to_dict() for fw in catalog.all_frameworks()]
        if args.json:
            _write_json(rows, Path(args.json))
        _print_table(rows)
        return 0


def _write_json(rows: list[dict[str, Any]], path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror or err}") from None


def _status(row: dict[str, Any]) -> str:
    if row["unavailable"]:
        return "n/a"
    return "yes" if row["installed"] else "no"


def _print_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Frameworks memprobe can measure",
                  caption="* measured by compare when no framework is named")
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("installed", no_wrap=True)
    table.add_column("version", no_wrap=True)
    table.add_column("server")
    table.add_column("keepalive", no_wrap=True)
    for row in rows:
        table.add_row(
            row["name"] + (" *" if row["default"] else ""),
            _status(row),
            row["version"] or "-",
            row["server"],
            "yes" if row["keepalive"] else "no",
        )
    console = Console()
    console.print(table)
    for row in rows:
        if row["unavailable"]:
            console.print(f"{row['name']}: unavailable: {row['unavailable']}", highlight=False)
        elif not row["installed"]:
            console.print(f"{row['name']}: not installed: pip install {row['pip']}", highlight=False)
