"""Load the app a target spec names: import its module, find the object, say what kind it is.

Specs are parsed by :mod:`memprobe.target.spec` (one parser for hunt, check and the pytest
plugin). The loaded object is classified as a WSGI callable, a Tornado ``Application`` or an
ASGI app; anything else is a :class:`~memprobe.errors.TargetError` (exit 3) with a one-line
reason. Loading runs the user's code, so it happens in the child (the agent);
:func:`~memprobe.target.spec.parse_target` and :func:`precheck` are cheap and safe in the parent.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from memprobe.errors import TargetError
from memprobe.target.spec import TargetSpec, locate, parse_target

KINDS = ("wsgi", "tornado", "asgi")
_DEFAULT_ATTRS = ("app", "application")


@dataclass
class LoadedApp:
    """A loaded target: the app object, what kind of app it is, and its module."""

    spec: TargetSpec
    app: Any
    kind: str
    module: ModuleType

    @property
    def framework(self) -> str | None:
        """The top-level package the app comes from (``flask``, ``bottle``, ``tornado``...)."""
        owner = self.app if inspect.isfunction(self.app) else type(self.app)
        module = sys.modules.get(getattr(owner, "__module__", None) or "")
        filename = getattr(module, "__file__", None) or ""
        if module is None or module is self.module or "-packages" not in filename:
            return None  # the user's own callable
        top = module.__name__.split(".")[0]
        return "web.py" if top == "web" else top


def precheck(target: TargetSpec, base: str | Path | None = None) -> None:
    """Fail early, in the parent, on what can be known without running the user's code.

    ``base`` is the directory the app will run in (its modules are importable from there)."""
    if target.path is not None:
        locate(target)
        return
    top = target.module.split(".")[0]
    where = Path(base) if base is not None else Path.cwd()
    if (where / f"{top}.py").is_file() or (where / top / "__init__.py").is_file():
        return
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise TargetError(f"no module named {top!r} (run from the app's directory or set PYTHONPATH)")


def import_module(target: TargetSpec) -> ModuleType:
    """Import the target's module (this runs the user's code); errors become TargetError."""
    try:
        if target.path is not None:
            return _import_path(target)
        return importlib.import_module(target.module)
    except TargetError:
        raise
    except ModuleNotFoundError as err:
        if err.name and (target.module == err.name or target.module.startswith(err.name + ".")):
            raise TargetError(f"no module named {err.name!r} (run from the app's directory or set "
                              "PYTHONPATH)") from None
        raise TargetError(_raised(target, err), _tail(err)) from None
    except BaseException as err:  # SystemExit from an app's import is a failure to load, too
        if isinstance(err, KeyboardInterrupt):
            raise
        raise TargetError(_raised(target, err), _tail(err)) from None


def _import_path(target: TargetSpec) -> ModuleType:
    assert target.path is not None
    path = target.path
    location = locate(target)
    if path.is_dir():
        directory, search = path.parent, [str(path)]
    else:
        directory, search = path.parent, None
    # The app's own imports (`from models import X`) resolve against its directory, as when
    # it is run as a script.
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    spec = importlib.util.spec_from_file_location(target.module, location,
                                                  submodule_search_locations=search)
    if spec is None or spec.loader is None:
        raise TargetError(f"cannot import {path}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[target.module] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(target.module, None)
        raise
    return module


def _raised(target: TargetSpec, err: BaseException) -> str:
    message = str(err).strip().splitlines()[0] if str(err).strip() else ""
    where = ""
    frames = traceback.extract_tb(err.__traceback__)
    if frames:
        last = frames[-1]
        where = f" at {Path(last.filename).name}:{last.lineno}"
    what = f"{type(err).__name__}: {message}" if message else type(err).__name__
    return f"importing {target.path or target.module} raised {what}{where}"


def _tail(err: BaseException) -> str:
    """The traceback from the first frame outside memprobe and importlib (the user's code)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tb = err.__traceback__
    while tb is not None and (tb.tb_frame.f_code.co_filename.startswith((here, "<frozen"))):
        tb = tb.tb_next
    lines = traceback.format_exception(type(err), err, tb or err.__traceback__)
    return "".join(lines[:1] + lines[1:][-8:])


def resolve(target: TargetSpec, module: ModuleType) -> Any:
    """The object ``target`` names in ``module`` (the factory's result when it is a call)."""
    if target.attr is None:
        for name in _DEFAULT_ATTRS:
            if hasattr(module, name):
                obj = getattr(module, name)
                break
        else:
            raise TargetError(f"{target.module} has no attribute 'app' or 'application'; "
                              f"name one: {target.spec}:ATTR")
        attr = name
    else:
        obj = module
        for part in target.attr.split("."):
            if not hasattr(obj, part):
                raise TargetError(f"{target.module} has no attribute {target.attr!r}")
            obj = getattr(obj, part)
        attr = target.attr
    if target.call:
        if not callable(obj):
            raise TargetError(f"{target.module}:{attr} is a {type(obj).__name__}, not a factory to call")
        try:
            obj = obj(*target.args, **dict(target.kwargs))
        except Exception as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise TargetError(
                f"{target.module}:{attr}() raised {type(err).__name__}" + (f": {first}" if first else ""),
                _tail(err),
            ) from None
    return obj


def classify(obj: Any) -> str:
    """``wsgi``, ``tornado`` or ``asgi``; raise TargetError for anything else."""
    tornado_web = sys.modules.get("tornado.web")
    if tornado_web is not None and isinstance(obj, tornado_web.Application):
        return "tornado"
    if inspect.isclass(obj):
        raise TargetError(f"is a class, not an app instance; did you mean {_name(obj)}()?")
    if not callable(obj):
        raise TargetError(f"is {_article(type(obj).__name__)}, not an app "
                          "(a WSGI callable, Tornado Application or ASGI app)")
    call = obj if inspect.isfunction(obj) or inspect.ismethod(obj) else obj.__call__
    if inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(obj):
        return "asgi"
    params = _positional_params(call)
    if params is None or params >= 2:
        return "wsgi"
    if params == 0 and inspect.isfunction(obj):
        raise TargetError(f"takes no arguments, so it is not a WSGI app; if it is a "
                          f"factory, call it: {_name(obj).split('.')[-1]}()")
    raise TargetError(f"takes {params} argument(s); a WSGI app takes (environ, start_response)")


def _article(noun: str) -> str:
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"


def _positional_params(fn: Any) -> int | None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None  # a builtin or C callable: give it the benefit of the doubt
    count = 0
    for p in sig.parameters.values():
        if p.kind == p.VAR_POSITIONAL:
            return None
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def _name(obj: Any) -> str:
    return getattr(obj, "__qualname__", None) or type(obj).__name__


def adapt(obj: Any) -> Any:
    """Turn objects that wrap an app into the app: web.py ``application`` -> ``wsgifunc()``; a
    CherryPy root object (one with exposed handlers) mounted at ``/`` as ``cherrypy.quickstart``
    and ``cherrypy.tree.mount`` do, its WSGI ``Application`` served."""
    wsgifunc = getattr(obj, "wsgifunc", None)
    if callable(wsgifunc) and not callable(obj) and type(obj).__module__.startswith("web."):
        return wsgifunc()
    cherrypy = sys.modules.get("cherrypy")
    if cherrypy is not None and is_cherrypy_root(obj):
        return cherrypy.tree.mount(obj, "")
    return obj


def is_cherrypy_root(obj: Any) -> bool:
    """Whether ``obj`` is an object CherryPy serves by mounting it: not callable, not a class,
    with exposed methods (or objects holding some)."""
    from memprobe.target.routes import exposes

    if inspect.isclass(obj) or callable(obj) or isinstance(obj, ModuleType) or "cherrypy" not in sys.modules:
        return False
    try:
        return exposes(obj)
    except Exception:  # an object whose attributes raise is no root CherryPy could serve either
        return False


def load_target(spec: str | TargetSpec, base: str | Path | None = None) -> LoadedApp:
    """Import the target's module, resolve the app and classify it (runs the user's code).

    A malformed spec is a :class:`~memprobe.target.spec.TargetSpecError` (exit 2); a target
    that cannot be found, imported or is not an app is a TargetError (exit 3)."""
    target = parse_target(spec, base) if isinstance(spec, str) else spec
    module = import_module(target)
    obj = adapt(resolve(target, module))
    try:
        kind = classify(obj)
    except TargetError as err:
        raise TargetError(f"{target.spec} {err}") from None
    return LoadedApp(target, obj, kind, module)
