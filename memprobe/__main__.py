"""``python -m memprobe``."""
from __future__ import annotations

import sys

from memprobe.cli import main

if __name__ == "__main__":
    sys.exit(main())
