"""``python -m memprobe.agent TARGET --port P --control SOCKET``."""
from __future__ import annotations

import sys

from memprobe.agent.control import main

if __name__ == "__main__":
    sys.exit(main())
