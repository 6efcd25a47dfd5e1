"""memprobe: how much memory a Python web app costs per request, and whether it leaks.

memprobe starts an app (or reaches one already running), sends it a known number of HTTP
requests, reads its memory from outside (psutil) and from inside (an agent in the process), and
reports. Its subpackages:

* :mod:`memprobe.target`: what to run, a target spec parsed and its app located and loaded;
* :mod:`memprobe.process`: child processes and process groups, started and stopped; memory read
  from outside;
* :mod:`memprobe.agent`: what runs inside the measured process: the control channel, the app's
  WSGI server, the heap's attribution (sites, types, holders);
* :mod:`memprobe.http`: the load: the hammer, its HTTP/1.x parser, Locust as the other engine;
* :mod:`memprobe.hunt`: the leak hunt (``memprobe hunt``), its protocol, probes and growth model;
* :mod:`memprobe.compare`: frameworks' apps measured side by side (``memprobe compare``), and a
  running server hammered and its process tree watched (``memprobe hammer``);
* :mod:`memprobe.check`: the static memory-hygiene checklist (``memprobe check``, its flake8
  plugin and pre-commit hook);
* :mod:`memprobe.results`: the typed results, one per kind, behind one JSON envelope;
* :mod:`memprobe.render`: results as text, Markdown, HTML, JSON or SARIF;
* :mod:`memprobe.commands`: one module per subcommand of the CLI (:mod:`memprobe.cli`);
* :mod:`memprobe.pytest_plugin`: the ``memprobe`` fixture, per-test memory limits and baselines.

:mod:`memprobe.errors` holds the exceptions, each with the CLI's exit code for it.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
