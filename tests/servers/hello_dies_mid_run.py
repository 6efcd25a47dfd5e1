"""A hello-world that serves a few hundred requests, then the process dies (os._exit)."""
from __future__ import annotations

import runpy
import sys
from pathlib import Path

sys.argv = [str(Path(__file__).with_name("behaviours.py")), "--die-after", "150", *sys.argv[1:]]
runpy.run_path(sys.argv[0], run_name="__main__")
