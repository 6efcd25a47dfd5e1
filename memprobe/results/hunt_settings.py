"""How a hunt runs, as the user asked for it: the one place where a hunt's defaults are written.

:class:`HuntSettings` holds the protocol's numbers and how the app is reached; the CLI, the
pytest plugin and the Python API each build one (:meth:`HuntSettings.chosen` applies the rules
that tie the choices together) and pass it to :func:`memprobe.hunt.hunt`. What the hunt
measured is in :mod:`memprobe.results.hunt`.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from memprobe.errors import UsageError

#: How the app was reached and read: an agent in a child memprobe started, the app called in
#: this process, readings from outside only, an agent in every worker of a server started from a
#: command, or an agent attached to a running process.
MODES = ("child", "in_process", "outside", "workers", "attached")
#: What the measured rounds read inside the process: the traced heap (tracemalloc on, one frame
#: deep, in every round) or the allocated blocks only (tracemalloc off until the attribution
#: round: ~2.5x the requests per second, blind to growth inside blocks that already exist).
SIGNALS = ("traced", "blocks")
#: The modes whose agent can run the rounds untraced (one process, the agent inside).
UNTRACED_MODES = ("child", "attached")
#: How code is run in a process reached by pid.
ATTACH_METHODS = ("auto", "sys.remote_exec", "gdb", "lldb")


class SettingError(UsageError):
    """A setting no hunt can use. ``str()`` names it as the API does (``warmup must be...``);
    :attr:`setting` lets a front end name it its own way (the CLI's ``--warmup``)."""

    def __init__(self, setting: str, problem: str, mentions: tuple[str, ...] = ()) -> None:
        super().__init__(f"{setting} {problem}")
        self.setting = setting
        self.problem = problem
        #: other settings named in ``problem``
        self.mentions = mentions

    def worded(self, name: Callable[[str], str]) -> str:
        """The message with every setting named by ``name`` (the CLI: ``--max-seconds``)."""
        problem = self.problem
        for other in self.mentions:
            problem = re.sub(rf"\b{re.escape(other)}\b", name(other), problem)
        return f"{name(self.setting)} {problem}"


@dataclass(frozen=True)
class HuntSettings:
    """How a hunt runs: the protocol's numbers, and how the app is reached.

    The defaults are memprobe's: the sequential protocol (rounds sized by time, each route
    stopped once its readings decide; :mod:`memprobe.hunt.sequential`). ``sequential=False``
    is the fixed protocol, ``rounds`` x ``requests`` whatever the readings show.
    """

    #: the sequential protocol; False: ``rounds`` x ``requests`` (explicit counts, ``--thorough``)
    sequential: bool = True
    #: fixed protocol: requests per round, and measured rounds after the baseline
    requests: int = 2000
    rounds: int = 5
    #: requests before the baseline; a server hunted worker by worker gets them for each worker
    warmup: int = 500
    concurrency: int = 4
    #: traceback depth of the attribution round's allocation sites
    frames: int = 25
    #: seconds per request
    timeout: float = 10.0
    #: seconds the app may take to answer its first request
    ready_timeout: float = 30.0
    #: requests of the attribution round (deep tracebacks), at most ``requests``
    attribution_requests: int = 300
    #: what the rounds are judged on inside: ``traced`` or ``blocks`` (:data:`SIGNALS`)
    signal: str = "traced"
    #: sequential: measured requests, and seconds, a route may take to decide
    max_requests: int = 10_000
    max_seconds: float = 40.0
    #: sequential: a flat route stops once it could see leaks this large (B/request, traced heap)
    sensitivity: float = 16.0
    #: sequential: seconds a round should take, from the measured time per request
    round_seconds: float = 0.25
    #: children hunting the routes side by side (``"auto"``: one per idle core); in a result,
    #: how many did (:mod:`memprobe.hunt.parallel`)
    jobs: int | str = 1
    #: how the app was reached (:data:`MODES`); :func:`memprobe.hunt.hunt` sets it from the rest
    mode: str = "child"
    #: a server's command (``{port}`` in it becomes a free port), and where it (or a TARGET) runs
    cmd: str | None = None
    cwd: str | None = None
    #: with ``cmd``: read the server from outside only, even when it runs Python
    outside: bool = False
    #: a running server: its pid, where it serves HTTP, and how code is run in it
    pid: int | None = None
    url: str | None = None
    attach_method: str = "auto"
    #: in-process only: the test client used, and whether the test process's USS is judged
    client: str | None = None
    uss: bool | None = None
    #: every request of the hunt: its method, headers (``{"Authorization": "Bearer x"}``) and
    #: body (a str is sent UTF-8 encoded), for a route that needs more than a bare GET
    method: str = "GET"
    headers: dict[str, str] | None = None
    body: str | bytes | None = None
    #: a capture file (``memprobe watch --capture``): its routes are the hunt's, each loaded with
    #: its recorded requests, the fields that vary numbered on (:mod:`memprobe.capture.replay`)
    replay: str | None = None

    @classmethod
    def chosen(cls, *, requests: int | None = None, rounds: int | None = None, thorough: bool = False,
               **choices: Any) -> HuntSettings:
        """The settings a user's choices make, checked: explicit counts (``requests``,
        ``rounds``) or ``thorough`` give the fixed protocol, with the defaults for the count not
        given; otherwise the sequential one. Anything else is a field of this class, and a
        name that is not is a :class:`SettingError`. ``None`` means "the default"."""
        names = {f.name for f in dataclasses.fields(cls)}
        for name in choices:
            if name not in names:
                raise SettingError(name, "is not a hunt setting")
        fixed = thorough or requests is not None or rounds is not None
        given = {k: v for k, v in choices.items() if v is not None}
        for name in ("cwd", "replay"):
            if name in given:
                given[name] = str(given[name])
        if fixed:
            given["sequential"] = False
            if requests is not None:
                given["requests"] = requests
            if rounds is not None:
                given["rounds"] = rounds
        settings = cls(**given)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise :class:`SettingError` for a setting no hunt can use."""
        for name, ok, problem in (
            ("requests", self.requests > 0, "must be more than 0"),
            ("rounds", self.rounds >= 2, "must be at least 2"),
            ("warmup", self.warmup >= 0, "must be 0 or more"),
            ("concurrency", self.concurrency > 0, "must be more than 0"),
            ("frames", self.frames >= 1, "must be at least 1"),
            ("timeout", self.timeout > 0, "must be positive"),
            ("ready_timeout", self.ready_timeout > 0, "must be positive"),
            ("max_requests", self.max_requests > 0, "must be more than 0"),
            ("max_seconds", self.max_seconds > 0, "must be positive"),
            ("sensitivity", self.sensitivity > 0, "must be positive"),
            ("round_seconds", self.round_seconds > 0, "must be positive"),
            ("mode", self.mode in MODES, f"must be one of {', '.join(MODES)}"),
            ("signal", self.signal in SIGNALS, f"must be one of {', '.join(SIGNALS)}"),
            ("attach_method", self.attach_method in ATTACH_METHODS, f"must be one of {', '.join(ATTACH_METHODS)}"),
            ("method", bool(re.fullmatch(r"[A-Za-z]+", self.method or "")), "must be an HTTP method such as POST"),
            ("headers", self.headers is None or (isinstance(self.headers, dict) and all(
                isinstance(k, str) and isinstance(v, str) and k.strip() and ":" not in k
                for k, v in self.headers.items())), "must map header names to str values"),
        ):
            if not ok:
                raise SettingError(name, f"{problem} (not {getattr(self, name)!r})")
        if self.signal != "traced" and self.mode not in UNTRACED_MODES:
            raise SettingError("signal", f"{self.signal} needs the agent in one process (an app hunted in "
                               f"a child, or a pid), not mode {self.mode}", ("pid",))
        if self.pid is not None and self.url is None:
            raise SettingError("pid", "needs url, where the process serves HTTP (http://127.0.0.1:PORT)",
                               ("url",))
        if self.pid is not None and self.cmd is not None:
            raise SettingError("pid", "and cmd are two ways to reach a server: give one", ("cmd",))
        if self.outside and self.cmd is None and self.pid is None:
            raise SettingError("outside", "reads a server started from cmd, or running as pid: give one",
                               ("cmd", "pid"))
        if self.replay is not None and (self.method.upper() != "GET" or self.body is not None):
            raise SettingError("replay", "sends the methods and bodies the capture recorded: drop method and body "
                               "(headers are added to every replayed request)", ("method", "body"))
        if self.cmd is not None and "{port}" not in self.cmd:
            raise SettingError("cmd", "must contain {port} where the server's port goes, e.g. "
                               "'gunicorn app:app -b 127.0.0.1:{port}'")

    @property
    def protocol(self) -> str:
        """``sequential`` or ``fixed``."""
        return "sequential" if self.sequential else "fixed"

    @property
    def body_bytes(self) -> bytes | None:
        """The body as sent (None: no body)."""
        return self.body.encode() if isinstance(self.body, str) else self.body

    @property
    def request_headers(self) -> dict[str, str]:
        """The headers every request carries (empty: none beyond the engine's own)."""
        return dict(self.headers or {})

    @property
    def attributed(self) -> int:
        """Requests in the attribution round."""
        return min(self.requests, self.attribution_requests)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``timeout_s`` in seconds); ``client`` and ``uss`` only in-process."""
        out: dict[str, Any] = {
            "requests": self.requests, "rounds": self.rounds, "warmup": self.warmup,
            "concurrency": self.concurrency, "frames": self.frames, "cmd": self.cmd,
            "timeout_s": self.timeout, "mode": self.mode, "signal": self.signal, "protocol": self.protocol,
        }
        if self.sequential:
            out.update({"max_requests": self.max_requests, "max_seconds": self.max_seconds,
                        "target_b_per_request": self.sensitivity, "round_seconds": self.round_seconds})
        if isinstance(self.jobs, int) and self.jobs > 1:
            out["jobs"] = self.jobs
        if self.pid is not None:
            out.update({"pid": self.pid, "url": self.url})
        if self.client is not None:
            out["client"] = self.client
        if self.uss is not None:
            out["uss"] = self.uss
        # the request's shape only when it is not a bare GET; header values stay out of reports
        # (an Authorization header's token)
        if self.method.upper() != "GET":
            out["method"] = self.method.upper()
        if self.headers:
            out["header_names"] = sorted(self.headers)
        if self.body is not None:
            out["body_bytes"] = len(self.body_bytes or b"")
        if self.replay is not None:
            out["replay"] = self.replay
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HuntSettings:
        """Read back what :meth:`to_dict` wrote (reports written before ``mode`` existed
        were child-process hunts, or outside-only ones when they had a ``cmd``; before
        ``protocol`` existed, fixed ones). An absent number is the default's."""
        default = cls()
        mode = data.get("mode") or ("outside" if data.get("cmd") else "child")
        return cls(requests=int(data.get("requests", 0)), rounds=int(data.get("rounds", 0)),
                   warmup=int(data.get("warmup", 0)), concurrency=int(data.get("concurrency", 1)),
                   frames=int(data.get("frames", 1)), timeout=float(data.get("timeout_s", default.timeout)),
                   mode=mode, cmd=data.get("cmd"), client=data.get("client"), uss=data.get("uss"),
                   signal=str(data.get("signal") or default.signal),
                   sequential=data.get("protocol") == "sequential",
                   max_requests=int(data.get("max_requests") or default.max_requests),
                   max_seconds=float(data.get("max_seconds") or default.max_seconds),
                   sensitivity=float(data.get("target_b_per_request") or default.sensitivity),
                   round_seconds=float(data.get("round_seconds") or default.round_seconds),
                   jobs=int(data.get("jobs") or 1), pid=data.get("pid"), url=data.get("url"),
                   method=str(data.get("method") or default.method), replay=data.get("replay"))
