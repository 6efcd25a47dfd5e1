"""The frameworks memprobe knows: their hello-world scripts, packages, servers and versions.

Each framework with a script has ``frameworks/hello_<name>.py``, runnable on its own with
``--port P [--host H]``. Nothing here imports a framework: whether one is installed and which
version it is come from ``importlib.util.find_spec`` and ``importlib.metadata``.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the standard library has it from 3.11
    import tomli as tomllib

from memprobe.errors import EnvironmentProblem, UsageError

#: The names ``compare`` runs when none are given, in this order (the seed's five).
DEFAULT_NAMES: tuple[str, ...] = ("bottle", "cherrypy", "flask", "tornado", "webpy")

#: Other spellings accepted on the command line -> catalog name.
ALIASES: dict[str, str] = {"web.py": "webpy", "web-py": "webpy", "drf": "django"}


@dataclass(frozen=True)
class Framework:
    """One framework: how to find it, install it, and start its hello-world."""

    #: CLI name, lower case ("flask"); the script is ``frameworks/hello_<name>.py``.
    name: str
    #: Display name ("Flask").
    title: str
    #: Distribution name for ``importlib.metadata.version()`` ("Flask", "web.py").
    distribution: str
    #: Top-level modules that must be importable to run the script.
    modules: tuple[str, ...]
    #: What to ``pip install``: plain package names, space separated.
    pip: str
    #: The server the script uses, for people ("werkzeug dev server (app.run)").
    server: str
    #: One of the five that ``compare`` runs by default.
    default: bool
    #: Why it cannot be measured at all; ``None`` when it can.
    unavailable: str | None = None
    #: Whether the server keeps HTTP/1.1 connections open between requests (measured; pyramid
    #: loses it when waitress is missing and it falls back to wsgiref).
    keepalive: bool = True
    #: Whether the script serves ``POST /echo``.
    echo: bool = True
    #: How a production server loads the app: "wsgi" (gunicorn, gthread worker), "asgi"
    #: (uvicorn), "aiohttp" or "tornado" (gunicorn with that framework's worker class).
    interface: str | None = None
    #: The app object in ``hello_<name>.py`` for a production server ("app", "make_app()").
    app_spec: str | None = None
    #: The CRUD variants ``frameworks/crud_<name>.py`` serves (``--variant``); empty: none.
    crud: tuple[str, ...] = ()
    #: The setup.cfg extra that installs this framework (``pip install "memprobe[extra]"``).
    extra: str | None = None
    #: A user's own server script (``--frameworks ./my_hello.py``) instead of a hello-world.
    path: Path | None = None

    @property
    def script(self) -> Path | None:
        """``frameworks/hello_<name>.py``, or ``None`` for a framework that has none."""
        if self.unavailable is not None:
            return None
        if self.path is not None:
            return self.path
        return frameworks_dir() / f"hello_{self.name}.py"

    def installed(self) -> bool:
        """Whether every module in :attr:`modules` can be imported (nothing is imported)."""
        return not self.missing()

    def missing(self) -> list[str]:
        """The modules of :attr:`modules` that cannot be imported."""
        return [module for module in self.modules if not _importable(module)]

    def version(self) -> str | None:
        """The installed distribution's version, or ``None`` when it is not installed."""
        if not self.distribution:
            return None
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return None

    def install_hint(self) -> str:
        """The pip command that installs what this framework's script needs."""
        return f"pip install {self.pip}"

    def extra_hint(self) -> str:
        """The pip command naming memprobe's extra for this framework (the plain packages when
        there is no extra)."""
        return f'pip install "memprobe[{self.extra}]"' if self.extra else self.install_hint()

    @property
    def hello_target(self) -> str | None:
        """The hello-world's app as a ``hunt`` target, relative to :func:`frameworks_dir`
        (``hello_cherrypy.py:wsgi_app()``); None without a script or an app object."""
        script = self.script
        return f"{script.name}:{self.app_spec}" if script and self.app_spec else None

    def crud_script(self) -> Path | None:
        """``frameworks/crud_<name>.py``, or ``None`` for a framework without a CRUD app."""
        return frameworks_dir() / f"crud_{self.name}.py" if self.crud else None

    def command(self, port: int, host: str = "127.0.0.1", python: str = sys.executable) -> list[str]:
        """The argv that serves this framework's hello-world on ``host:port``."""
        if self.unavailable is not None:
            raise EnvironmentProblem(f"{self.title} cannot be measured: {self.unavailable}")
        return [python, str(self.script), "--port", str(port), "--host", host]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description, including what is installed right now."""
        installed = self.installed()
        return {
            "name": self.name,
            "title": self.title,
            "distribution": self.distribution,
            "modules": list(self.modules),
            "pip": self.pip,
            "installed": installed,
            "missing": self.missing(),
            "version": self.version() if installed else None,
            "server": self.server,
            "keepalive": self.keepalive,
            "echo": self.echo,
            "default": self.default,
            "unavailable": self.unavailable,
            "script": str(self.script) if self.script else None,
            "extra": self.extra,
            "pip_extra": self.extra_hint(),
            "interface": self.interface,
            "crud": list(self.crud),
        }


def _read() -> tuple[Framework, ...]:
    text = resources.files("memprobe.compare").joinpath("frameworks.toml").read_text("utf-8")
    catalog: list[Framework] = []
    for row in tomllib.loads(text)["framework"]:
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in row.items()}
        catalog.append(Framework(**fields))
    return tuple(catalog)


#: The catalog, the default five first: data, in ``frameworks.toml`` beside this module.
_FRAMEWORKS: tuple[Framework, ...] = _read()

_BY_NAME: dict[str, Framework] = {fw.name: fw for fw in _FRAMEWORKS}


def importable(module: str) -> bool:
    """Whether ``module`` can be imported (it is not imported)."""
    return _importable(module)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or half-removed install is not an install
        return False


def all_frameworks() -> list[Framework]:
    """Every framework in the catalog, the default five first."""
    return list(_FRAMEWORKS)


def get(name: str) -> Framework:
    """The framework called ``name`` (case-insensitive; ``web.py`` and ``webpy`` both work)."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    try:
        return _BY_NAME[key]
    except KeyError:
        known = ", ".join(fw.name for fw in _FRAMEWORKS)
        raise UsageError(f"unknown framework {name!r}; known: {known}") from None


def custom(path: str | Path) -> Framework:
    """A user's own server script as a row of ``compare``: it is started as
    ``python SCRIPT --port P --host 127.0.0.1``, like the hello-worlds."""
    script = Path(path).expanduser()
    if not script.is_file():
        raise UsageError(f"no such server script: {str(path)!r}")
    return Framework(name=script.stem, title=script.stem, distribution="", modules=(), pip="",
                     server=f"your script {script}", default=False, path=script.resolve())


def _is_script(name: str) -> bool:
    key = name.strip().lower()
    return key.endswith(".py") and key not in ALIASES and key not in _BY_NAME


def select(spec: str | None) -> list[Framework]:
    """The frameworks a ``--frameworks`` value names.

    ``None`` or empty: the default five (bottle, cherrypy, flask, tornado, webpy); ``"all"``:
    every one; ``"a,b"``: those, in the given order, each once; a name ending in ``.py`` is
    a server script of the user's (see :func:`custom`).
    """
    if spec is None or not spec.strip():
        return [_BY_NAME[name] for name in DEFAULT_NAMES]
    if spec.strip().lower() == "all":
        return all_frameworks()
    chosen: list[Framework] = []
    for part in spec.split(","):
        if not part.strip():
            continue
        fw = custom(part.strip()) if _is_script(part) else get(part)
        if fw not in chosen:
            chosen.append(fw)
    if not chosen:
        raise UsageError(f"no framework named in {spec!r}")
    return chosen


def frameworks_dir() -> Path:
    """The folder holding the ``hello_<name>.py`` scripts.

    A wheel ships them as ``memprobe/_frameworks``; a source checkout or an editable install has
    them in the top-level ``frameworks/`` beside the package.
    """
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_frameworks", here.parent / "frameworks"):
        if candidate.is_dir():
            return candidate
    raise EnvironmentProblem(
        f"memprobe's hello-world scripts are missing: neither {here / '_frameworks'} "
        f"nor {here.parent / 'frameworks'} exists; reinstall memprobe"
    )
