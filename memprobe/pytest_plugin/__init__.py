"""memprobe's pytest plugin (registered through the ``pytest11`` entry point).

* the ``memprobe`` fixture: ``hunt(...)``, ``serve(target)`` and ``hammer(...)``, the same API and
  result objects as the CLI; every server it starts is stopped at teardown, whatever happened;
* the ``memprobe_limit`` marker: after the test body passes, measure a target's routes and fail
  the test with one line (``memprobe: /api/items grew 412 B/request (limit 64 B) over 2,000
  requests``) and a ``memprobe`` section with the growing sites and the holder;
* a summary of every measured test, ``--memprobe-json FILE``, ``--memprobe-requests N`` and
  ``--memprobe-off``, each with an ini twin;
* ``--memprobe-baseline FILE``: each measured test's bytes per request against the stored figure
  (:mod:`memprobe.pytest_plugin.baseline`).

Importing this module costs nothing a session that does not use it would notice: memprobe's
measuring modules (psutil, asyncio, tracemalloc, rich) are imported inside the fixture and the
hooks that need them, never here.

With pytest-xdist, each worker measures in its own process and starts its own servers; the
records travel to the controller on the test reports (``report.memprobe``), and the controller
alone prints the summary and writes the JSON file, once, with every worker's results.
"""
from __future__ import annotations

import datetime as _dt
import functools
import inspect
import os
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from memprobe.pytest_plugin import baseline, limits

if TYPE_CHECKING:
    from memprobe.agent.channel import Channel
    from memprobe.http.load import LoadResult
    from memprobe.hunt import HuntResult
    from memprobe.process.child import Child
    from memprobe.process.memory import MemoryReading

_RECORDS = pytest.StashKey[list]()
_DETAIL = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--memprobe-json``, ``--memprobe-requests``, ``--memprobe-off`` and their ini twins."""
    group = parser.getgroup("memprobe", "memory growth per request (memprobe)")
    group.addoption("--memprobe-json", metavar="FILE", default=None,
                    help="write every memprobe result of the session to FILE as JSON "
                         "(ini: memprobe_json)")
    group.addoption("--memprobe-requests", metavar="N", type=int, default=None,
                    help="requests per round when a marker or hunt() does not say (default: a hunt "
                         "decides on evidence, an in-process one counts hunt's fixed rounds; ini: "
                         "memprobe_requests)")
    group.addoption("--memprobe-off", action="store_true", default=None,
                    help="measure nothing: memprobe_limit markers are not checked and "
                         "memprobe.hunt() skips its test (ini: memprobe_off)")
    group.addoption("--memprobe-baseline", metavar="FILE", default=None,
                    help="fail a measured test whose bytes per request grew beyond the figure stored "
                         "in FILE (ini: memprobe_baseline)")
    group.addoption("--memprobe-update-baseline", action="store_true", default=False,
                    help="write the measured figures to the baseline file instead of comparing")
    group.addoption("--memprobe-tolerance", metavar="SIZE", default=None,
                    help="bytes per request a test may grow beyond its error bars "
                         f"(default {baseline.DEFAULT_TOLERANCE:g}; ini: memprobe_tolerance)")
    parser.addini("memprobe_json", "write every memprobe result of the session to this file")
    parser.addini("memprobe_baseline", "the baseline file (see --memprobe-baseline)")
    parser.addini("memprobe_tolerance", f"bytes per request beyond the error bars "
                  f"({baseline.DEFAULT_TOLERANCE:g})")
    parser.addini("memprobe_requests", "requests per round by default (see --memprobe-requests)")
    parser.addini("memprobe_off", "measure nothing (see --memprobe-off)", type="bool",
                  default=False)
    parser.addini("memprobe_inconclusive", "fail (the default) or pass a memprobe_limit test whose route "
                  "came out inconclusive (its readings could not see the leaks looked for)", default="fail")


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker (from its docstring) and the session's state."""
    params = _signature(limits.memprobe_limit)
    doc = " ".join((limits.memprobe_limit.__doc__ or "").split())
    config.addinivalue_line("markers", f"memprobe_limit({params}): {doc}")
    config.pluginmanager.register(MemprobeManager(config), "memprobe_manager")


def _signature(fn: Any) -> str:
    """``target, route=None, *, routes=None, ...``: the marker's arguments as a user writes them."""
    out = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind == p.KEYWORD_ONLY and "*" not in out:
            out.append("*")
        out.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    return ", ".join(out)


class MemprobeManager:
    """The session's settings and the records of every measurement."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        off = config.getoption("memprobe_off")
        self.off: bool = bool(off if off is not None else config.getini("memprobe_off"))
        requests = config.getoption("memprobe_requests") or config.getini("memprobe_requests")
        try:
            #: None: not given, each hunt decides on evidence where it can
            self.requests: int | None = int(requests) if requests else None
        except ValueError:
            raise pytest.UsageError(f"memprobe_requests must be a number, not {requests!r}") from None
        if self.requests is not None and self.requests <= 0:
            raise pytest.UsageError(f"--memprobe-requests must be positive, not {self.requests}")
        json_path = config.getoption("memprobe_json") or config.getini("memprobe_json")
        self.json_path = (config.invocation_params.dir / json_path) if json_path else None
        self.is_worker = hasattr(config, "workerinput")
        self.baseline = _baseline(config)
        inconclusive = str(config.getini("memprobe_inconclusive") or "fail").strip()
        if inconclusive not in limits.INCONCLUSIVE:
            raise pytest.UsageError(f"memprobe_inconclusive must be one of {', '.join(limits.INCONCLUSIVE)}, "
                                    f"not {inconclusive!r}")
        #: what an inconclusive route does to a marker's test that does not say
        self.inconclusive = inconclusive
        self.records: list[dict[str, Any]] = []
        # Spelt as the envelope spells it; results.envelope itself would import psutil here.
        self.started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self._t0 = time.monotonic()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> Iterator[None]:
        """Check the test's ``memprobe_limit`` markers once its body has passed."""
        markers = list(pyfuncitem.iter_markers("memprobe_limit"))
        if not (markers or self.baseline) or self.off:
            yield
            return
        original = pyfuncitem.obj

        @functools.wraps(original)
        def measured(*args: Any, **kwargs: Any) -> Any:
            value = original(*args, **kwargs)
            for marker in markers:
                self._check(pyfuncitem, marker)
            if self.baseline is not None:
                grew = self.baseline.regressions(pyfuncitem.nodeid, pyfuncitem.stash.get(_RECORDS, []))
                if grew:
                    pytest.fail("\n".join(grew), pytrace=False)
            return value

        pyfuncitem.obj = measured
        try:
            yield
        finally:
            pyfuncitem.obj = original

    def _check(self, item: pytest.Item, marker: pytest.Mark) -> None:
        try:
            limit = limits.memprobe_limit(*marker.args, **marker.kwargs)
        except TypeError as err:
            pytest.fail(f"memprobe_limit: {err}", pytrace=False)
        except Exception as err:  # UsageError: a size or a metric that is not one
            pytest.fail(f"memprobe_limit: {err}", pytrace=False)
        target = resolve_target(limit.target, item)
        if limit.options.get("replay") is not None:
            limit.options["replay"] = resolve_file(limit.options["replay"], item)
        outcome = limits.measure(limit, target, self.requests, resolve_dir(limit.cwd, item), self.inconclusive)
        record = outcome.record
        record["source"] = "marker"
        record["worker"] = os.environ.get("PYTEST_XDIST_WORKER")
        item.stash.setdefault(_RECORDS, []).append(record)
        if outcome.failure:
            item.stash[_DETAIL] = outcome.detail
            pytest.fail(outcome.failure, pytrace=False)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item,
                                  call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
        """Put the records on the call's report (xdist carries them to the controller) and the
        detail of a failed limit in a ``memprobe`` section."""
        outcome = yield
        if call.when != "call":
            return
        report = outcome.get_result()
        records = item.stash.get(_RECORDS, None)
        if records:
            report.memprobe = records
        detail = item.stash.get(_DETAIL, None)
        if detail and report.failed:
            report.sections.append(("memprobe", detail))

    @pytest.hookimpl(hookwrapper=True, trylast=True)
    def pytest_report_teststatus(self, report: pytest.TestReport) -> Generator[None, Any, None]:
        """A test failed by a memprobe limit shows as ``M`` in the progress line (still
        ``FAILED`` in words, which CI logs are searched for)."""
        outcome = yield
        if report.when == "call" and report.failed and any(
                title == "memprobe" for title, _ in report.sections):
            outcome.force_result(("failed", "M", ("FAILED", {"red": True})))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Collect the records (on the controller, from every worker)."""
        if report.when != "call":
            return
        for record in getattr(report, "memprobe", None) or ():
            self.records.append({**record, "nodeid": report.nodeid, "outcome": report.outcome})

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Write the JSON file and an updated baseline (the controller only, with xdist)."""
        if self.is_worker:
            return
        if self.baseline is not None and self.baseline.update:
            self.baseline.write(self.records)
        if self.json_path is None:
            return
        limits.write_json(self.json_path, self.records, started=self.started,
                          duration_s=time.monotonic() - self._t0)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """One line per measured test."""
        if self.is_worker or not (self.records or self.json_path):
            return
        terminalreporter.write_sep("=", "memprobe")
        for line in limits.summary_lines(self.records):
            terminalreporter.write_line(line)
        if self.json_path is not None:
            terminalreporter.write_line(
                f"memprobe: {len(self.records)} result(s) written to {self.json_path}")
        if self.baseline is not None:
            done = "written to" if self.baseline.update else "compared with"
            terminalreporter.write_line(f"memprobe: bytes per request {done} the baseline {self.baseline.path}")


def _baseline(config: pytest.Config) -> baseline.Baseline | None:
    """The session's baseline (``--memprobe-baseline`` or ``memprobe_baseline``), or None."""
    path, base = config.getoption("memprobe_baseline"), config.invocation_params.dir
    if not path:  # the ini file's path is relative to the ini file
        path, base = config.getini("memprobe_baseline"), (config.inipath.parent if config.inipath else config.rootpath)
    if not path:
        if config.getoption("memprobe_update_baseline"):
            raise pytest.UsageError("--memprobe-update-baseline needs --memprobe-baseline FILE (or memprobe_baseline)")
        return None
    tolerance = config.getoption("memprobe_tolerance") or config.getini("memprobe_tolerance") or None
    try:
        return baseline.Baseline.load(base / path, baseline.tolerance_of(tolerance),
                                      update=bool(config.getoption("memprobe_update_baseline")))
    except baseline.BaselineError as err:
        raise pytest.UsageError(str(err)) from None
    except Exception as err:  # UsageError of memprobe: a tolerance that is not a size
        raise pytest.UsageError(f"memprobe_tolerance: {err}") from None


def resolve_target(target: Any, item: pytest.Item) -> Any:
    """A relative ``file.py:app`` (or ``dir/pkg:app``) target, found from the test file's
    directory, then the rootdir, then where pytest was started, and spelled with its absolute
    path; other targets (``pkg.module:app``, an app object) as given. The spec is parsed by
    :func:`memprobe.target.parse_target`, hunt's parser: a malformed one is returned as given,
    so that the hunt refuses it with the parser's one-line message (a usage error)."""
    if not isinstance(target, str):
        return target
    from memprobe.target import TargetSpecError, parse_target

    try:
        spec = parse_target(target)
    except TargetSpecError:
        return target
    if not spec.is_file or os.path.isabs(os.path.expanduser(spec.source)):
        return target
    config = item.config
    for base in (Path(str(item.path)).parent, config.rootpath, config.invocation_params.dir):
        candidate = base / spec.source
        if candidate.exists():
            return spec.with_path(candidate).spec
    return target


def resolve_file(path: str | os.PathLike[str], item: pytest.Item) -> str:
    """A relative file (a ``replay=`` capture file), found as a relative target is (the test
    file's directory, the rootdir, where pytest was started); as given when none has it (the
    hunt then says it cannot read it)."""
    path = os.path.expanduser(os.fspath(path))
    if os.path.isabs(path):
        return path
    config = item.config
    for base in (Path(str(item.path)).parent, config.rootpath, config.invocation_params.dir):
        if (base / path).is_file():
            return str(base / path)
    return path


def resolve_dir(path: str | os.PathLike[str] | None, item: pytest.Item) -> str | None:
    """A relative working directory of a ``cmd=``, found as a relative target is (the test
    file's directory, the rootdir, where pytest was started); None stays None (the current
    directory)."""
    if path is None or os.path.isabs(os.path.expanduser(path)):
        return None if path is None else os.path.expanduser(path)
    config = item.config
    for base in (Path(str(item.path)).parent, config.rootpath, config.invocation_params.dir):
        if (base / path).is_dir():
            return str(base / path)
    return str(path)


class Server:
    """A target served in a child process by :meth:`Probe.serve`: ``url``
    (``http://127.0.0.1:PORT``, no trailing slash), ``port``, ``pid``; a context manager.
    A Python server started from ``cmd=`` (gunicorn, uvicorn) carries memprobe's agent in each
    worker: :meth:`workers` lists them and :meth:`hunt` hunts the server as it runs."""

    def __init__(self, child: Child, port: int, cmd: str | None = None, channel: Channel | None = None,
                 fixture: Probe | None = None) -> None:
        self.child = child
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.cmd = cmd
        self.channel = channel
        self._fixture = fixture

    def workers(self) -> list[int]:
        """The pids of the server's processes whose agent is up now (empty without agents)."""
        return list(self.channel.agents()) if self.channel is not None else []

    def hunt(self, routes: list[str] | None = None, requests: int | None = None, *, progress: Any = None,
             **choices: Any) -> HuntResult:
        """Hunt this running server worker by worker, as ``memprobe.hunt(cmd=...)`` would: the
        server judged as a whole and one result per process in each route's ``workers``; the
        server keeps running. ``requests`` defaults to ``--memprobe-requests`` (None: decided
        on evidence); any other :class:`~memprobe.results.hunt_settings.HuntSettings` field as a
        keyword (``replay="orders.jsonl"``: the capture file's routes and requests). Recorded for
        the summary and the JSON file. Only for a Python ``cmd=`` (its workers carry the agent)."""
        from memprobe.errors import UsageError
        from memprobe.hunt.probes import compose
        from memprobe.hunt.protocol import normalise, run
        from memprobe.results.hunt import HuntSettings

        if self.channel is None or self.cmd is None:
            raise UsageError("Server.hunt() needs a server started by serve(cmd=...) with a Python "
                             "command (gunicorn, uvicorn, python app.py): its workers carry the agent")
        if self._fixture is not None:
            self._fixture._skip_if_off()
        n = requests or (self._fixture._manager.requests if self._fixture is not None else None)
        if choices.get("replay") is not None and self._fixture is not None:
            choices["replay"] = resolve_file(choices["replay"], self._fixture._request.node)
        settings = HuntSettings.chosen(requests=n, cmd=self.cmd, mode="workers", **choices)
        todo = [normalise(r) for r in routes] if routes else None
        probe = compose.adopted(self.child, self.channel, self.cmd, settings)
        result = run(probe, self.cmd, todo, settings, progress)
        if self._fixture is not None:
            self._fixture._record(result)
        return result

    @property
    def pid(self) -> int:
        """The server process's id."""
        return self.child.pid

    def memory(self) -> MemoryReading:
        """rss, vms, uss, pss, swap of the server process now (bytes)."""
        from memprobe.process.memory import read_memory

        return read_memory(self.pid)

    def hammer(self, path: str = "/", n: int | None = None, **options: Any) -> LoadResult:
        """Send ``n`` requests to ``path`` on this server (see :func:`memprobe.http.hammer.hammer`)."""
        from memprobe.http.hammer import hammer

        return hammer(self.url + (path if path.startswith("/") else "/" + path), n, **options)

    def log_tail(self, lines: int = 15) -> str:
        """The last lines the server wrote."""
        return self.child.log_tail(lines)

    def stop(self) -> None:
        """Stop the server (its whole process group) and remove its agents' channel; safe to
        call twice."""
        try:
            self.child.stop()
        finally:
            if self.channel is not None:
                self.channel.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Server({self.url}, pid={self.child.proc.pid if self.child.proc else None})"


class Probe:
    """What the ``memprobe`` fixture gives a test: the CLI's API, with clean-up."""

    def __init__(self, request: pytest.FixtureRequest, manager: MemprobeManager) -> None:
        self._request = request
        self._manager = manager
        self._servers: list[Server] = []

    def hunt(self, target: Any = None, routes: list[str] | None = None,
             requests: int | None = None, *, in_process: bool = False,
             **options: Any) -> HuntResult:
        """:func:`memprobe.hunt.hunt` (or :func:`memprobe.hunt.hunt_in_process` with
        ``in_process=True``); ``requests`` defaults to ``--memprobe-requests``. With
        ``cmd="gunicorn -w 2 -b 127.0.0.1:{port} app:app"`` (and ``cwd=``, relative to the test
        file), the server it starts is hunted worker by worker: each route's ``workers`` has one
        result per process. ``replay="orders.jsonl"`` (a capture file, relative to the test
        file) hunts its routes with the requests it recorded. The result is recorded for the
        summary and the JSON file. Skips the test under ``--memprobe-off``."""
        self._skip_if_off()
        n = requests or self._manager.requests  # None: hunt decides on evidence
        resolved = resolve_target(target, self._request.node) if target is not None else None
        if options.get("cwd") is not None:
            options["cwd"] = resolve_dir(options["cwd"], self._request.node)
        if options.get("replay") is not None:
            options["replay"] = resolve_file(options["replay"], self._request.node)
        if in_process:
            from memprobe.hunt import hunt_in_process

            result = hunt_in_process(resolved, routes=routes, requests=n, **options)
        else:
            from memprobe.hunt import hunt

            result = hunt(resolved or "", routes=routes, requests=n, **options)
        self._record(result)
        return result

    def _skip_if_off(self) -> None:
        if self._manager.off:
            pytest.skip("memprobe is off (--memprobe-off)")

    def _record(self, result: HuntResult) -> None:
        record = limits.record_of(result, None, result.settings.mode)
        record["source"] = "fixture"
        record["worker"] = os.environ.get("PYTEST_XDIST_WORKER")
        self._request.node.stash.setdefault(_RECORDS, []).append(record)

    def serve(self, target: str | None = None, *, cmd: str | None = None, cwd: str | None = None,
              ready_timeout: float = 30.0, path: str = "/", agent: bool = True) -> Server:
        """Start ``target`` (``app.py:app``...; WSGI, Tornado or ASGI) in a child process, or
        the server ``cmd`` runs (``{port}`` in it becomes a free port; in ``cwd``, relative to
        the test file), and return it once it answers HTTP on ``path``. A Python ``cmd``
        (gunicorn, uvicorn) starts with memprobe's agent in each worker (``agent=False``: as
        is), so that :meth:`Server.hunt` can hunt it worker by worker. It is stopped at
        teardown, also when the test fails."""
        import shlex
        import tempfile

        from memprobe.agent.channel import Channel
        from memprobe.agent.control import socket_base
        from memprobe.errors import UsageError
        from memprobe.hunt.probes.agent import agent_command, agent_env
        from memprobe.hunt.probes.workers import is_python_command
        from memprobe.process.child import start_server
        from memprobe.target import parse_target

        if (target is None) == (cmd is None):
            raise UsageError("serve() takes a target or cmd=, not both and not neither")
        if cmd is not None and "{port}" not in cmd:
            raise UsageError("cmd must contain {port} where the server's port goes")
        workdir = resolve_dir(cwd, self._request.node)
        channel: Channel | None = None
        if target is not None:
            tmp = tempfile.mkdtemp(prefix="memprobe-serve-", dir=socket_base())
            self._request.addfinalizer(functools.partial(_remove_dir, tmp))
            spec = resolve_target(target, self._request.node)
            parse_target(spec)  # a malformed spec is the test's usage error, not a dead child
            control = Path(tmp, "control.sock")
        elif agent and is_python_command(cmd or "", workdir):
            channel = Channel()

        def argv_for(port: int) -> list[str]:
            if cmd is not None:
                return shlex.split(cmd.replace("{port}", str(port)))
            control.unlink(missing_ok=True)  # bound by an attempt on a port taken meanwhile
            return agent_command(spec, port, str(control))

        def hold(child: Child) -> None:
            # Registered before it starts: an interrupt during start-up still reaches stop().
            # Each attempt's Server shares the channel: whichever stops first removes it.
            self._servers.append(Server(child, child.port, cmd, channel, self))

        env = agent_env() if cmd is None else channel.env() if channel is not None else None
        start_server(argv_for, name="" if cmd is not None else "the app", path=path, env=env, cwd=workdir,
                     ready_timeout=ready_timeout, on_child=hold)
        return self._servers[-1]  # the one that started (those before it lost their port)

    def hammer(self, url: str, n: int | None = None, **options: Any) -> LoadResult:
        """:func:`memprobe.http.hammer.hammer`: ``n`` requests to ``url``; a ``{n}`` in the URL becomes
        the request's index."""
        from memprobe.http.hammer import hammer

        return hammer(url, n, **options)

    @property
    def requests(self) -> int:
        """The session's default requests per round (``--memprobe-requests``)."""
        from memprobe.results.hunt_settings import HuntSettings

        return self._manager.requests or HuntSettings().requests

    def close(self) -> None:
        """Stop every server this fixture started."""
        while self._servers:
            self._servers.pop().stop()


def _remove_dir(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def memprobe(request: pytest.FixtureRequest) -> Iterator[Probe]:
    """memprobe's API for a test: ``hunt(target, routes=..., requests=...)``,
    ``serve(target)`` -> a running server (``.url``, ``.pid``), ``hammer(url, n)``.
    Servers it started are stopped at teardown."""
    manager = request.config.pluginmanager.get_plugin("memprobe_manager")
    assert isinstance(manager, MemprobeManager)
    probe = Probe(request, manager)
    try:
        yield probe
    finally:
        probe.close()
