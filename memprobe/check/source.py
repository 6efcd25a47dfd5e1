"""From a target to parsed source: which files to check, their ASTs, suppressions, settings.

A target is a directory (every ``.py`` under it), a file, or a target spec as hunt takes it
(``module:attr``, ``file.py:create_app('x')``: the module's file and, when it lives in a package,
the whole top-level package). Nothing is imported: ``module`` is found on the path the way the
import system would find it (:func:`memprobe.target.locate`).
"""
from __future__ import annotations

import ast
import configparser
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from memprobe.check.model import SourceError
from memprobe.errors import TargetError, UsageError
from memprobe.target.spec import locate, parse_target

#: directory names never descended into: environments, dependencies, build output, tests
SKIP_DIRS = frozenset({
    ".git", ".hg", ".svn", "__pycache__", ".venv", "venv", "env", ".env", "site-packages",
    "dist-packages", "node_modules", "build", "dist", ".tox", ".nox", ".eggs", ".mypy_cache",
    ".pytest_cache", ".ruff_cache", "tests", "test",
})
#: directories whose files are tests (checked only with include_tests)
TEST_DIRS = frozenset({"tests", "test"})
_SUPPRESS = re.compile(r"#\s*memprobe:\s*ignore(?:\[([^\]]*)\])?", re.IGNORECASE)


@dataclass
class SourceFile:
    """One parsed file of the app, with its per-line suppressions."""

    path: Path
    display: str
    module: str
    tree: ast.Module
    lines: list[str]
    #: line -> rule names suppressed there; an empty set means "every rule"
    suppressions: dict[int, set[str]] = field(default_factory=dict)

    def snippet(self, line: int) -> str:
        """The stripped source text of ``line`` (1-based)."""
        return self.lines[line - 1].strip() if 0 < line <= len(self.lines) else ""


@dataclass
class Target:
    """What to check: the files, where they are shown relative to, and the app attribute."""

    spec: str
    root: Path
    files: list[Path]
    app_attr: str = ""
    #: the ``file.py:app`` / ``module:app`` form ``--run`` hands to hunt, when there is one
    hunt_target: str = ""


def resolve_target(spec: str, include_tests: bool = False) -> Target:
    """Turn the command-line target into files.

    An existing path is taken as is (a directory: every file under it); anything else is a
    target spec (:func:`memprobe.target.parse_target`, the parser hunt uses): malformed, it is
    a usage error (exit 2); naming no file or module, a TargetError (exit 3), as for hunt."""
    if Path(spec).exists():
        path, target = Path(spec).resolve(), None
    else:
        target = parse_target(spec)
        try:
            path = locate(target)
        except TargetError:
            if target.path is None and not target.what:  # `check name` may mean a directory
                raise TargetError(f"no such file, directory or module: {spec!r} (looked in the "
                                  "current directory and sys.path)") from None
            raise
        path = path.resolve()
    if path.is_dir():
        return Target(spec, path, discover(path, include_tests))
    if path.suffix != ".py":
        raise UsageError(f"not a Python file: {spec}")
    attr = target.what if target is not None else ""
    # A file is hunted by its absolute path; a module by its name, from where check found it.
    hunt_target = "" if target is None or not attr else (
        target.with_path(target.path).spec if target.path is not None else target.spec)
    package_root = _package_root(path)
    if package_root is None:
        files = [path, *_local_imports(path, include_tests)]
        return Target(spec, path.parent, files, attr, hunt_target)
    files = discover(package_root, include_tests)
    if path not in files:
        files.append(path)
    return Target(spec, package_root.parent, files, attr, hunt_target)


def _local_imports(path: Path, include_tests: bool) -> list[Path]:
    """Files of the modules and packages a script imports from its own directory."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, SyntaxError):
        return []
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    out: list[Path] = []
    for name in sorted(names):
        module, package = path.parent / f"{name}.py", path.parent / name
        if module.is_file() and module != path:
            out.append(module)
        elif (package / "__init__.py").is_file():
            out.extend(discover(package, include_tests))
    return out


def _package_root(path: Path) -> Path | None:
    """The top-most package directory containing ``path``, or None outside a package."""
    root = None
    parent = path.parent
    while (parent / "__init__.py").is_file():
        root = parent
        parent = parent.parent
    return root


def discover(root: Path, include_tests: bool = False) -> list[Path]:
    """Every ``.py`` file under ``root``, skipping environments, build output and (unless asked) tests."""
    skip = SKIP_DIRS if not include_tests else SKIP_DIRS - TEST_DIRS
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames
            if d not in skip and not d.endswith(".egg-info")
            and not (Path(dirpath, d) / "pyvenv.cfg").exists()
        )
        for name in sorted(filenames):
            if not name.endswith(".py"):
                continue
            if _is_test_name(name) and not include_tests:
                continue
            out.append(Path(dirpath, name))
    return out


def _is_test_name(name: str) -> bool:
    return name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py"


def is_test_file(path: Path) -> bool:
    """Whether a file given by name is a test module, as :func:`discover` would skip it: named
    ``test_*.py``, ``*_test.py`` or ``conftest.py``, or under a ``tests/`` or ``test/`` directory
    (of the path below the working directory when it is there, so a checkout under ``/test/``
    is no test)."""
    resolved = path.resolve()
    try:
        parts = resolved.relative_to(Path.cwd().resolve()).parts
    except ValueError:
        parts = path.parts
    return _is_test_name(path.name) or any(part in TEST_DIRS for part in parts[:-1])


def module_name(path: Path, root: Path) -> str:
    """The dotted module name of ``path`` as imported from ``root``."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        return path.stem
    parts = list(rel.with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) or path.stem


def parse(path: Path, root: Path, text: str | None = None) -> SourceFile | SourceError:
    """Parse one file (``text``, when given, instead of what is on disk); a syntax error or
    undecodable file comes back as a SourceError."""
    shown = display(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            return SourceError(shown, 0, f"cannot read: {err}")
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as err:
        return SourceError(shown, err.lineno or 0, f"syntax error: {err.msg}")
    lines = text.splitlines()
    return SourceFile(path, shown, module_name(path, root), tree, lines, _suppressions(lines))


def display(path: Path) -> str:
    """How a file is shown: relative to the current directory when possible."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def _suppressions(lines: list[str]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for number, text in enumerate(lines, start=1):
        if "memprobe" not in text:
            continue
        match = _SUPPRESS.search(text)
        if match:
            names = match.group(1)
            out[number] = {n.strip() for n in names.split(",") if n.strip()} if names else set()
    return out


def config_ignores(start: Path) -> tuple[list[str], Path | None]:
    """Rule names in ``[memprobe:check] ignore`` of the nearest setup.cfg at or above ``start``."""
    here = start if start.is_dir() else start.parent
    for directory in (here, *here.parents):
        cfg = directory / "setup.cfg"
        if not cfg.is_file():
            continue
        parser = configparser.ConfigParser()
        try:
            parser.read(cfg, encoding="utf-8")
        except configparser.Error as err:
            raise UsageError(f"{cfg}: {err}") from err
        if parser.has_section("memprobe:check"):
            raw = parser.get("memprobe:check", "ignore", fallback="")
            return [n.strip() for n in re.split(r"[,\s]+", raw) if n.strip()], cfg
    return [], None


@dataclass
class Deployment:
    """What the project's deployment files say about workers and worker restarts."""

    workers: int = 1
    workers_evidence: str = ""
    max_requests_evidence: str = ""


_DEPLOY_FILES = ("Procfile", "Dockerfile", "docker-compose.yml", "docker-compose.yaml", "compose.yaml",
                 "gunicorn.conf.py", "gunicorn_config.py", "gunicorn.py", "uwsgi.ini", "Makefile",
                 "start.sh", "run.sh", "entrypoint.sh", "app.yaml", "fly.toml")
_WORKERS = re.compile(r"(?:^\s*workers\s*=\s*(\d+))|(?:(?:-w|--workers)[ =]+(\d+))"
                      r"|(?:^\s*processes\s*=\s*(\d+))", re.MULTILINE)
_MAX_REQ = re.compile(r"(?:^\s*max_requests\s*=\s*\d+)|(?:--max-requests[ =]+\d+)"
                      r"|(?:^\s*max-requests\s*=\s*\d+)", re.MULTILINE)


def deployment(root: Path) -> Deployment:
    """Scan the deployment files next to (or one level above) ``root`` for workers and restarts."""
    found = Deployment()
    seen: set[Path] = set()
    for directory in (root, root.parent):
        for name in _DEPLOY_FILES:
            path = directory / name
            if path in seen or not path.is_file():
                continue
            seen.add(path)
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            for match in _WORKERS.finditer(text):
                number = int(next(g for g in match.groups() if g))
                if number > found.workers:
                    found.workers = number
                    found.workers_evidence = f"{display(path)}: {match.group(0).strip()}"
            max_req = _MAX_REQ.search(text)
            if max_req and not found.max_requests_evidence:
                found.max_requests_evidence = f"{display(path)}: {max_req.group(0).strip()}"
    return found
