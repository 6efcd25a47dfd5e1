"""memprobe: how much memory a Python web app costs per request, and whether it leaks.

memprobe starts the app as a child process, sends it a known number of HTTP requests,
reads the child's memory from outside (psutil) and from inside (tracemalloc, Heapy), and
reports. The pipeline, one module a stage::

    target -> spawn -> load -> sample -> analyse -> result -> render
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
