"""memprobe's end of the injected agents: the channel directory and what arms the agent in the
processes of a command.

A channel is a directory memprobe creates with mode 0700 (``memprobe-run-XXXXXXXX`` under the
temporary directory), whose path the command's processes find in ``$MEMPROBE_CHANNEL``. Each
agent listens on ``<pid>.sock`` in it (created 0600; the agent checks its peer's uid with
``SO_PEERCRED``), so listing the directory is discovery: a worker that comes up adds its
socket, one that exits removes it, one that was killed leaves a socket nobody listens on, which
:meth:`Channel.agents` removes. The directory is removed by :meth:`Channel.close`.

**Two ways in, both kept** (measured by ``bench/injection_reach.py``, see ``docs/injection.md``):

* the bootstrap directory first on ``PYTHONPATH``, whose ``sitecustomize`` arms the agent. It
  reaches any interpreter the command runs, wherever memprobe is installed, but is lost when a
  process runs with ``-I`` or ``-E`` or drops ``PYTHONPATH`` before it re-executes itself;
* a ``.pth`` file, written at run time into the site-packages of memprobe's own interpreter (the
  one a command from the same virtualenv runs, ``gunicorn`` and ``uvicorn`` included), and
  removed with the channel, the way coverage.py's ``patch = subprocess`` does it. Python reads
  it in every process of that environment, ``-I``, ``-E`` and a dropped ``PYTHONPATH`` included:
  ``-I`` and ``-E`` ignore the ``PYTHON*`` variables but leave ``os.environ`` whole, so the gate,
  ``$MEMPROBE_CHANNEL`` equal to this channel, still holds. Its one executable line compares
  that variable and stops (~1 µs; 40 to 60 µs a process with reading the file), so every other
  Python process of the environment, other memprobe runs' included, pays nothing more. It needs
  a writable site-packages: where there is none (a system Python), only the first way remains.

Neither reaches a process run with ``-S`` (Python imports ``site`` for neither ``.pth`` nor
``sitecustomize`` then) or one whose environment was emptied: those can only be attached to
(:mod:`memprobe.agent.attach`). A shipped ``.pth`` (pytest-cov's way) was not chosen: setuptools
puts no file at the top of site-packages from ``setup.cfg`` alone (it takes a ``build_py``
hook), an editable install does not run that hook, and it would sit in every environment
memprobe is installed in instead of the one the command uses while it runs.
"""
from __future__ import annotations

import os
import shutil
import site
import tempfile
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path

from memprobe.agent.control import socket_base
from memprobe.agent.inject import ENV_CHANNEL, ENV_FRAMES
from memprobe.process.child import pid_alive

#: The directory whose ``sitecustomize`` arms the agent; first on the command's ``PYTHONPATH``.
BOOTSTRAP_DIR = Path(__file__).resolve().parent / "bootstrap"
#: Run by the ``.pth`` line (and by ``sitecustomize``): arms the agent once per process.
ARM = BOOTSTRAP_DIR / "arm.py"
PREFIX = "memprobe-run-"
SUFFIX = ".sock"
#: The first line of a ``.pth`` file memprobe wrote, followed by its channel's path.
PTH_MARK = "# memprobe channel: "


class Channel:
    """A channel directory: created here (``path=None``) and removed at :meth:`close`, or one
    another memprobe created (``memprobe run``), which is left in place."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.owned = path is None
        self.path = Path(tempfile.mkdtemp(prefix=PREFIX, dir=socket_base()) if path is None else path)
        if not self.path.is_dir():
            raise FileNotFoundError(2, "No such channel directory", str(self.path))
        #: the ``.pth`` files this channel wrote (removed at :meth:`close`, or at exit)
        self.pth_files: list[Path] = []
        self._remove_pth = weakref.finalize(self, _remove, self.pth_files, os.getpid())

    def env(self, base: Mapping[str, str] | None = None, frames: int = 25, pth: bool = True) -> dict[str, str]:
        """The environment of a command whose Python processes get the agent: the bootstrap
        first on ``PYTHONPATH``, the channel in ``$MEMPROBE_CHANNEL``, no tracing inherited.
        With ``pth``, also the gated ``.pth`` file in this interpreter's site-packages
        (:meth:`install_pth`), for the processes that do not read ``PYTHONPATH``."""
        if pth:
            self.install_pth()
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

    def install_pth(self, site_dirs: Iterable[str | os.PathLike[str]] | None = None) -> list[Path]:
        """Write the gated ``.pth`` file into ``site_dirs`` (default: this interpreter's
        site-packages) where they are writable, once each; the files written so far. A file a
        memprobe that was killed left behind (its channel gone) is removed on the way."""
        done = {p.parent for p in self.pth_files}
        for directory in map(Path, site.getsitepackages() if site_dirs is None else site_dirs):
            if directory in done or not directory.is_dir():
                continue
            _remove_stale(directory)
            target = directory / f"{self.path.name}.pth"
            try:
                target.write_text(pth_text(self.path), encoding="utf-8")
            except OSError:
                continue  # not writable: sitecustomize on PYTHONPATH is the way in there
            self.pth_files.append(target)
            done.add(directory)
        return list(self.pth_files)

    def close(self) -> None:
        """Remove the ``.pth`` files this channel wrote, and the directory if it created it."""
        self._remove_pth()
        if self.owned:
            shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pth_text(channel: Path) -> str:
    """The ``.pth`` file of ``channel``: a comment naming it, and one line that arms the agent
    in a process whose ``$MEMPROBE_CHANNEL`` is that channel and does nothing in any other."""
    return (f"{PTH_MARK}{channel}\n"
            f"import os; os.environ.get({ENV_CHANNEL!r}) == {str(channel)!r} "
            f"and __import__('runpy').run_path({str(ARM)!r})\n")


def _remove(files: list[Path], creator: int) -> None:
    if os.getpid() != creator:  # a forked child of memprobe's exiting: the files are its parent's
        return
    while files:
        try:
            files.pop().unlink()
        except FileNotFoundError:
            pass


def _remove_stale(directory: Path) -> None:
    for path in directory.glob(f"{PREFIX}*.pth"):
        try:
            first = path.read_text(encoding="utf-8").partition("\n")[0]
            if first.startswith(PTH_MARK) and not os.path.isdir(first[len(PTH_MARK):]):
                path.unlink()
        except OSError:
            pass
