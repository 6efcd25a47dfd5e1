"""memprobe's bootstrap: this directory goes first on ``PYTHONPATH`` of a command memprobe starts
(``hunt --cmd``, ``memprobe run``), so every Python process of the command imports this module at
start-up, before the app. It arms memprobe's agent (``arm.py``; a no-op where the gated ``.pth``
memprobe writes into site-packages armed it already, see :mod:`memprobe.agent.channel`) and then
runs the user's own ``sitecustomize``, if there is one further down the path, as Python would
have without memprobe (the way coverage.py's and ddtrace-run's bootstraps chain).

Nothing here may break the process: any failure of memprobe's part is one line on stderr.
"""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _chain() -> None:
    """Import the next ``sitecustomize`` on the path (not this one) under that name."""
    import importlib.util

    ours = sys.modules.pop("sitecustomize", None)
    saved = list(sys.path)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
    try:
        spec = importlib.util.find_spec("sitecustomize")
        if spec is None or spec.loader is None:
            return
        module = importlib.util.module_from_spec(spec)
        sys.modules["sitecustomize"] = module
        spec.loader.exec_module(module)
        ours = None  # the user's module is the process's sitecustomize from now on
    finally:
        sys.path[:] = saved
        if ours is not None:
            sys.modules["sitecustomize"] = ours


if os.environ.get("MEMPROBE_CHANNEL"):
    import runpy

    runpy.run_path(os.path.join(_HERE, "arm.py"))  # never raises; does nothing if a .pth armed first
_chain()
