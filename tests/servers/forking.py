"""Starts a grandchild (a sleeper, like a gunicorn worker), prints its pid, then serves."""
from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
print(f"worker pid {worker.pid}", flush=True)
sys.argv = [str(Path(__file__).with_name("behaviours.py")), *sys.argv[1:]]
runpy.run_path(sys.argv[0], run_name="__main__")
