"""Arms memprobe's agent in this process (:func:`memprobe.agent.inject.bootstrap`).

Run with ``runpy.run_path`` by the two ways in (see :mod:`memprobe.agent.channel`): the gated line
of the ``.pth`` file memprobe writes into the command's site-packages, and the bootstrap's
``sitecustomize``. Whichever runs first arms; the second finds the agent armed and does nothing.

The ``memprobe`` package is taken from the copy this file belongs to, so that the agent speaks
the protocol of the memprobe that started the command even where the command's own path has
another memprobe (or none). Nothing here may break the process: a failure is one line on stderr.
"""
import importlib.util
import os
import sys

_PACKAGE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load_memprobe() -> None:
    if "memprobe" in sys.modules:
        return
    if importlib.util.find_spec("memprobe") is None:
        # memprobe's dependencies (psutil) may be only where memprobe is: last on the path, so
        # that it shadows nothing of the app's.
        sys.path.append(os.path.dirname(_PACKAGE))
    spec = importlib.util.spec_from_file_location(
        "memprobe", os.path.join(_PACKAGE, "__init__.py"), submodule_search_locations=[_PACKAGE])
    if spec is None or spec.loader is None:
        raise ImportError(f"no memprobe package in {_PACKAGE}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["memprobe"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["memprobe"]
        raise


def arm() -> None:
    """Arm the agent, once per process; never raises."""
    try:
        _load_memprobe()
        from memprobe.agent.inject import bootstrap

        bootstrap()
    except Exception as err:  # the app must start even when memprobe cannot
        print(f"memprobe: agent not armed in pid {os.getpid()}: {type(err).__name__}: {err}", file=sys.stderr)


arm()
