"""How a server is reached: started by memprobe (:class:`Spawned`), or found running
(:class:`Running`). Either way the load goes over HTTP on loopback, by memprobe's hammer or by
a started Locust engine (:func:`memprobe.http.load.sender`)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from memprobe.errors import MemprobeError, TargetError, UsageError
from memprobe.http.engine import sender
from memprobe.http.load import LoadResult
from memprobe.http.template import RequestTemplate
from memprobe.hunt.probes import Launch
from memprobe.process.child import EXIT_GRACE_S, LOOPBACK, Child, pid_alive, server_child, start_server
from memprobe.results.hunt import HuntSettings

if TYPE_CHECKING:
    from memprobe.http.locust_engine import LocustEngine

#: host names of a running server's ``url`` that are loopback: the load goes nowhere else
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def loopback_base(url: str) -> str:
    """``url`` without its trailing slash, when it is an http URL on loopback (UsageError else)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK_NAMES:
        raise UsageError(f"url must be an http URL on loopback (http://127.0.0.1:PORT), not {url!r}")
    return url.rstrip("/")


def command_port(argv: list[str]) -> int:
    """The port a server command binds as written: gunicorn's ``-b``/``--bind HOST:PORT``,
    uvicorn's ``--port N``; 8000 (both servers' default) when it names none."""
    for i, arg in enumerate(argv):
        value = None
        for flag in ("-b", "--bind", "--port"):
            if arg == flag and i + 1 < len(argv):
                value = argv[i + 1]
            elif arg.startswith(flag + "=") or (flag == "-b" and arg.startswith("-b") and len(arg) > 2):
                value = arg.split("=", 1)[1] if "=" in arg else arg[2:]
        if value is not None:
            tail = value.rsplit(":", 1)[-1]
            if tail.isdigit():
                return int(tail)
    return 8000


class _Http:
    """What every server reach shares: requests to ``base`` + route, and a check for a server
    that died under them."""

    settings: HuntSettings
    engine: LocustEngine | None

    @property
    def base(self) -> str:
        """``http://host:port`` of the server."""
        raise NotImplementedError

    def check_alive(self, grace: float = 0.0) -> None:
        """TargetError when the server has exited."""
        raise NotImplementedError

    def send(self, route: str, n: int, first: int, connections: str = "keepalive", *,
             requests: Sequence[RequestTemplate] | None = None) -> LoadResult:
        """``n`` requests at the hunt's concurrency and timeout, shaped as the settings say
        (method, headers, body), or made from the templates ``requests``."""
        s = self.settings
        if requests:
            load = sender(self.base + "/", n, concurrency=s.concurrency, timeout=s.timeout, first=first,
                          mode=connections, engine=self.engine, requests=requests).run()
            load.url = self.base + route.partition(" ")[2]
        else:
            load = sender(self.base + route, n, concurrency=s.concurrency, timeout=s.timeout, first=first,
                          mode=connections, engine=self.engine, method=s.method.upper(), body=s.body_bytes,
                          headers=s.request_headers).run()
        if load.answered < load.sent:
            # Resets and refusals: the server may be on its way out.
            self.check_alive(grace=EXIT_GRACE_S if load.errors else 0.0)
        return load


class Spawned(_Http):
    """A server memprobe starts from ``argv_for(port)`` on a free port of 127.0.0.1, ready once
    ``ready_path`` answers, and stops (its whole process group) at :meth:`close`; or, from
    :meth:`adopt`, one started earlier, left running."""

    def __init__(self, argv_for: Callable[[int], list[str]], settings: HuntSettings, label: str, *,
                 ready_path: str = "/", engine: LocustEngine | None = None) -> None:
        self.argv_for = argv_for
        self.settings = settings
        self.label = label
        self.ready_path = ready_path
        self.engine = engine
        self.child: Child | None = None
        self.adopted = False
        #: the command's own port (``memprobe watch`` starts a deployment command as written);
        #: None: a free port, put in place of ``{port}``
        self.port: int | None = None

    @classmethod
    def command(cls, cmd: str, settings: HuntSettings, *, ready_path: str = "/",
                engine: LocustEngine | None = None) -> Spawned:
        """The user's command, ``{port}`` in it replaced by the free port."""
        import shlex

        reach = cls(lambda port: shlex.split(cmd.replace("{port}", str(port))), settings, cmd,
                    ready_path=ready_path, engine=engine)
        if "{port}" not in cmd:
            reach.port = command_port(shlex.split(cmd))
        return reach

    @classmethod
    def adopt(cls, child: Child, settings: HuntSettings, label: str, *,
              engine: LocustEngine | None = None) -> Spawned:
        """A server started earlier (the pytest fixture's ``serve(cmd=...)``): not started, not
        stopped."""
        reach = cls(lambda _port: list(child.argv), settings, label, engine=engine)
        reach.child, reach.adopted = child, True
        return reach

    @property
    def pid(self) -> int:
        """The server's first process."""
        assert self.child is not None, "open() first"
        return self.child.pid

    @property
    def argv(self) -> list[str]:
        """What it runs."""
        return list(self.child.argv) if self.child is not None else []

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT``."""
        assert self.child is not None, "open() first"
        return f"http://{LOOPBACK}:{self.child.port}"

    def open(self, launch: Launch) -> None:
        """Start the server (another port if the first was taken meanwhile) and wait until it
        answers; TargetError (with the log's tail) when it cannot."""
        if self.adopted:
            return
        if self.port is not None:
            self.child = server_child(self.argv_for, self.port, name=launch.name or "", path=self.ready_path,
                                      env=launch.env, cwd=self.settings.cwd, log_path=launch.log_path,
                                      ready_timeout=self.settings.ready_timeout).start()
            return
        self.child = start_server(self.argv_for, name=launch.name or "", path=self.ready_path,
                                  env=launch.env, cwd=self.settings.cwd, log_path=launch.log_path,
                                  ready_timeout=self.settings.ready_timeout)

    def check_alive(self, grace: float = 0.0) -> None:
        """TargetError (with the log's tail) when the server has died."""
        if self.child is not None:
            self.child.check_alive(grace)

    def log_tail(self) -> str:
        """The server's last lines."""
        return self.child.log_tail() if self.child is not None else ""

    def failure(self, err: MemprobeError, phase: str) -> MemprobeError:
        """A crash is named as a crash (with the log's tail), whatever failed first."""
        child = self.child
        if child is not None and child.proc is not None and child.exited(grace=EXIT_GRACE_S):
            return TargetError(f"the app died {phase} (exit code {child.proc.returncode})", child.log_tail())
        return err

    def close(self) -> None:
        """Stop the server's whole process group (unless adopted)."""
        if self.child is not None and not self.adopted:
            self.child.stop()


class Running(_Http):
    """A server that was running before the hunt: process ``pid``, serving at ``url`` (on
    loopback); never started or stopped here."""

    def __init__(self, pid: int, url: str | None, settings: HuntSettings, *,
                 engine: LocustEngine | None = None) -> None:
        # No url: a server only read (``memprobe watch``), never sent a request.
        self._base = loopback_base(url) if url is not None else ""
        self._pid = pid
        self.settings = settings
        self.engine = engine
        self.label = f"pid {pid} ({self._base})" if url is not None else f"pid {pid}"

    @property
    def pid(self) -> int:
        """The pid the hunt was given."""
        return self._pid

    @property
    def argv(self) -> list[str]:
        """Not known: the server was started by someone else."""
        return []

    @property
    def base(self) -> str:
        """The URL it was given, without its trailing slash."""
        return self._base

    def open(self, launch: Launch) -> None:
        """Nothing to start: TargetError when the process is not there."""
        if not pid_alive(self._pid):
            raise TargetError(f"no process has pid {self._pid}")

    def check_alive(self, grace: float = 0.0) -> None:
        """TargetError when the process is gone."""
        import time

        deadline = time.monotonic() + grace
        while not pid_alive(self._pid):
            if time.monotonic() >= deadline:
                raise TargetError(f"pid {self._pid} exited")
            time.sleep(0.01)

    def log_tail(self) -> str:
        """Not ours to read."""
        return ""

    def failure(self, err: MemprobeError, phase: str) -> MemprobeError:
        """A process that exited is named as such."""
        if not pid_alive(self._pid):
            return TargetError(f"pid {self._pid} exited {phase}")
        return err

    def close(self) -> None:
        """The server serves on."""

