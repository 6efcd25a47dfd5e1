"""memprobe's end of the injected agents: the channel directory and the environment that arms them.

A channel is a directory memprobe creates with mode 0700 (``memprobe-run-XXXXXXXX`` under the
temporary directory), whose path the command's processes find in ``$MEMPROBE_CHANNEL``. Each
agent listens on ``<pid>.sock`` in it (created 0600; the agent checks its peer's uid with
``SO_PEERCRED``), so listing the directory is discovery: a worker that comes up adds its
socket, one that exits removes it, one that was killed leaves a socket nobody listens on, which
:meth:`Channel.agents` removes. The directory is removed by :meth:`Channel.close`.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from memprobe.agent.control import socket_base
from memprobe.agent.inject import ENV_CHANNEL, ENV_FRAMES
from memprobe.process.child import pid_alive

#: The directory whose ``sitecustomize`` arms the agent; first on the command's ``PYTHONPATH``.
BOOTSTRAP_DIR = Path(__file__).resolve().parent / "bootstrap"
PREFIX = "memprobe-run-"
SUFFIX = ".sock"


class Channel:
    """A channel directory: created here (``path=None``) and removed at :meth:`close`, or one
    another memprobe created (``memprobe run``), which is left in place."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.owned = path is None
        self.path = Path(tempfile.mkdtemp(prefix=PREFIX, dir=socket_base()) if path is None else path)
        if not self.path.is_dir():
            raise FileNotFoundError(2, "No such channel directory", str(self.path))

    def env(self, base: Mapping[str, str] | None = None, frames: int = 25) -> dict[str, str]:
        """The environment of a command whose Python processes get the agent: the bootstrap
        first on ``PYTHONPATH``, the channel in ``$MEMPROBE_CHANNEL``, no tracing inherited."""
        env = dict(os.environ if base is None else base)
        rest = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(BOOTSTRAP_DIR) + (os.pathsep + rest if rest else "")
        env[ENV_CHANNEL] = str(self.path)
        env[ENV_FRAMES] = str(frames)
        env.pop("PYTHONTRACEMALLOC", None)
        return env

    def agents(self) -> dict[int, Path]:
        """``{pid: socket}`` of the agents listening now; sockets of dead processes removed."""
        found: dict[int, Path] = {}
        try:
            entries = list(self.path.iterdir())
        except FileNotFoundError:
            return found
        for entry in entries:
            if entry.suffix != SUFFIX or not entry.stem.isdigit():
                continue
            pid = int(entry.stem)
            if pid_alive(pid):
                found[pid] = entry
            else:
                try:
                    entry.unlink()
                except FileNotFoundError:
                    pass
        return dict(sorted(found.items()))

    def close(self) -> None:
        """Remove the directory, if this channel created it."""
        if self.owned:
            shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
