"""pypiserver (a real Bottle app from PyPI, its own vendored Bottle) serving a directory of one
package, untouched (tests/test_hunt_attribution_apps.py: its first route's one-off step)."""
from __future__ import annotations

import os

import pypiserver

PACKAGES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pypiserver_packages")
app = pypiserver.app(roots=[PACKAGES])
