"""Starts a Child the way memprobe does, prints its pid, then waits to be killed.

Used to check that a child dies when memprobe is killed outright (SIGKILL: no finally, no atexit).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from memprobe.process.child import LOOPBACK, Child, free_port

port = free_port()
child = Child([sys.executable, str(Path(__file__).with_name("behaviours.py")), "--port", str(port)],
              name="behaviours", url=f"http://{LOOPBACK}:{port}/").start()
print(child.pid, flush=True)
time.sleep(300)
