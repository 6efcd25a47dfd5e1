"""The faults suite: every bad input and every failure, as a user meets it.

Each case asserts what memprobe promises: one line on stderr (``memprobe: ...``; a dead child's
log may follow, indented), the documented exit code (README, "Exit codes"), no traceback, and
nothing left behind: no process, no socket, no temporary file. The ``nothing_left`` fixture
checks the last before and after every case: the temp directory (a private one given to
memprobe as TMPDIR and ``tempfile.tempdir``, so that other runs writing to /tmp at the same time
cannot make a case pass or fail) and the process table (children of this test process, and any
process carrying the case's marker in its environment, which is how a grandchild reparented to
init after its parent died is still found).

Cases where memprobe starts no child run ``memprobe.cli.main`` in-process; the others run a real
``python -m memprobe`` subprocess.
"""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO, SERVERS, ctrl_c_reaches_it, run_cli, start_behaviours, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

MARK = "MEMPROBE_FAULTS_CASE"


@dataclass
class Left:
    """What a case may not leave: the temp directory memprobe writes to, and a marker its
    processes inherit."""

    tmp: Path
    marker: str
    env: dict[str, str] = field(default_factory=dict)


def _marked(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARK) == marker and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE}


def _sockets() -> set[tuple[object, ...]]:
    return {(c.family, c.type, c.laddr) for c in psutil.Process().net_connections(kind="all")
            if c.status in (psutil.CONN_LISTEN, psutil.CONN_NONE, psutil.CONN_ESTABLISHED)}


@pytest.fixture
def nothing_left(tmp_path_factory: pytest.TempPathFactory,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[Left]:
    """A private temp directory and a marker for the case; after it, both must show nothing
    new: no entry in the temp directory, no child process, no marked process, no socket."""
    tmp = tmp_path_factory.mktemp("tmpdir")
    marker = uuid.uuid4().hex
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setenv("TMPDIR", str(tmp))
    before_children, before_sockets = _children(), _sockets()
    left = Left(tmp, marker, {**os.environ, "TMPDIR": str(tmp), MARK: marker, "PYTHONPATH": str(REPO)})
    yield left
    # A child stopped a moment ago may still be on its way out.
    try:
        wait_until(lambda: not (_children() - before_children) and not _marked(marker), 10,
                   "the case's processes end")
    except TimeoutError:
        stray = [psutil.Process(pid) for pid in _children() - before_children] + _marked(marker)
        for proc in stray:
            proc.kill()
        pytest.fail(f"processes left behind: {[(p.pid, p.cmdline()) for p in stray]}")
    assert sorted(os.listdir(tmp)) == [], "temp files left behind"
    assert _sockets() <= before_sockets, "sockets left open"


def one_line(err: str) -> str:
    """The one line of an expected failure (a dead child's indented log may follow)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line and not line.startswith("    ")]
    assert len(lines) == 1, err
    assert lines[0].startswith("memprobe: "), err
    return lines[0]


def memprobe(left: Left, *args: str, cwd: Path = REPO, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    """``python -m memprobe ARGS`` as a user runs it, with the case's temp directory and marker."""
    return subprocess.run([sys.executable, "-m", "memprobe", *args], capture_output=True, text=True,
                          cwd=cwd, env=left.env, timeout=timeout)


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


# --- no child started: memprobe.cli.main in-process -----------------------------------------

IN_PROCESS = [
    # (case, argv, exit code, words of the one line)
    ("N <= 0", ["compare", "0", "--no-save"], 2, "N must be a positive number of requests"),
    ("negative timeout", ["compare", "10", "-1", "--no-save"], 2, "TIMEOUT must be a positive number"),
    ("a port that is not a number", ["hammer", "http://127.0.0.1:abc/", "-n", "10", "--no-save"], 2, "port"),
    ("a header latin-1 cannot carry", ["hammer", "http://127.0.0.1:1/", "-n", "10", "-H", "X-City: Łódź",
                                      "--no-save"], 2, "latin-1"),
    ("a missing module", ["hunt", "surely_no_such_module_xyz:app"], 3,
     "no module named 'surely_no_such_module_xyz'"),
    ("factory arguments with a colon", ["hunt", "missing.py:create_app('sqlite:///x.db')"], 3,
     "no such file or directory"),
    ("a report of garbage", ["report", "{garbage}"], 2, "not JSON"),
    ("a report of a JSON memprobe did not write", ["report", "{foreign}"], 2, "foreign.json"),
]


@pytest.mark.parametrize("case, argv, code, words", IN_PROCESS, ids=[c[0] for c in IN_PROCESS])
def test_without_a_child(nothing_left: Left, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         case: str, argv: list[str], code: int, words: str) -> None:
    (tmp_path / "garbage.json").write_text("{not json at all", encoding="utf-8")
    (tmp_path / "foreign.json").write_text(json.dumps({"name": "a package.json", "version": "1"}))
    monkeypatch.chdir(tmp_path)
    argv = [a.format(garbage=tmp_path / "garbage.json", foreign=tmp_path / "foreign.json") for a in argv]
    got, _, err = run_cli(*argv)
    assert got == code, err
    assert words in one_line(err)


def test_a_renderer_bug_is_a_bug_not_a_foreign_file(nothing_left: Left, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The one case that must not be one line: a file memprobe wrote that its own renderer
    fails on is memprobe's bug, and surfaces as the exception it is (Python: a traceback, exit 1)."""
    import memprobe.render.compare  # noqa: F401 - registers the renderer replaced below
    from memprobe import render as render_module

    saved = REPO / "tests" / "fixtures" / "results" / "compare.json"

    def broken(*args: object, **kwargs: object) -> str:
        raise KeyError("a bug of ours")

    monkeypatch.setitem(render_module._REGISTRY, ("text", "compare"), broken)
    with pytest.raises(KeyError, match="a bug of ours"):
        run_cli("report", str(saved))


def test_in_process_hunts_count_failed_requests(nothing_left: Left, tmp_path: Path) -> None:
    from memprobe.hunt import hunt_in_process

    app = write(tmp_path, "half_fails.py", """
        _n = [0]
        def app(environ, start_response):
            _n[0] += 1
            if _n[0] % 2:
                start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
                return [b"no"]
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]
    """)
    result = hunt_in_process(f"{app}:app", routes=["/"], requests=100, rounds=2, warmup=10)
    load = result.routes[0].load
    assert load["sent"] == load["ok"] + load["failed"] == 200
    assert load["failed"] == 100


# --- a real child: python -m memprobe in a subprocess --------------------------------------

HUNT_TARGETS = [
    ("a syntax error", "syntax.py", "def (:\n", "raised SyntaxError"),
    ("an import error", "imports.py", "import surely_no_such_mod_q\n", "raised ModuleNotFoundError"),
    ("not an app", "notapp.py", "app = 42\n", "is an int, not an app"),
]


@pytest.mark.parametrize("case, name, source, words", HUNT_TARGETS, ids=[c[0] for c in HUNT_TARGETS])
def test_a_target_the_agent_cannot_serve(nothing_left: Left, tmp_path: Path,
                                         case: str, name: str, source: str, words: str) -> None:
    write(tmp_path, name, source)
    out = tmp_path / "partial.json"
    run = memprobe(nothing_left, "hunt", f"{name}:app", "--json", str(out), cwd=tmp_path)
    assert run.returncode == 3, run.stderr
    assert words in one_line(run.stderr)
    assert json.loads(out.read_text())["routes"] == []


SCRIPTS = [
    ("a crash mid-run", SERVERS / "hello_dies_mid_run.py", "crashed", "died during the run"),
    ("a server that never answers", None, "failed-to-start", "did not answer HTTP"),
]


@pytest.mark.parametrize("case, script, status, words", SCRIPTS, ids=[c[0] for c in SCRIPTS])
def test_a_compared_server_that_fails(nothing_left: Left, tmp_path: Path,
                                      case: str, script: Path | None, status: str, words: str) -> None:
    if script is None:
        script = write(tmp_path, "hangs.py", "import time\ntime.sleep(120)\n")
    out = tmp_path / "out.json"
    run = memprobe(nothing_left, "compare", "1000", "2", "--frameworks", str(script), "--no-save",
                   "--json", str(out), "--settle", "0", "--ready-timeout", "5")
    assert run.returncode == 3, run.stderr
    assert "Traceback" not in run.stderr
    row = json.loads(out.read_text())["results"][0]
    assert row["status"] == status and words in row["reason"]


def test_an_internal_failure_of_the_agent_is_exit_3_never_the_leak_code(nothing_left: Left,
                                                                        tmp_path: Path) -> None:
    write(tmp_path, "breaks_agent.py", """
        import tracemalloc

        def _broken(*args):
            raise RuntimeError("tracemalloc broken on purpose")

        tracemalloc.take_snapshot = tracemalloc.get_traced_memory = _broken

        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]
    """)
    run = memprobe(nothing_left, "hunt", "breaks_agent.py:app", "--requests", "50", "--rounds", "2",
                   "--warmup", "0", cwd=tmp_path)
    assert run.returncode == 3, run.stderr
    assert "the agent failed" in one_line(run.stderr)


def test_a_cmd_route_without_its_slash(nothing_left: Left, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    run = memprobe(nothing_left, "hunt", "--cmd", f"{sys.executable} {SERVERS / 'behaviours.py'} --port {{port}}",
                   "--route", "chunked", "--requests", "100", "--rounds", "2", "--warmup", "0", "-q",
                   "--json", str(out))
    assert run.returncode in (0, 1, 5), run.stderr  # a verdict, whichever: the route was hunted
    assert "Traceback" not in run.stderr
    route = json.loads(out.read_text())["routes"][0]
    assert route["route"] == "/chunked" and route["load"]["ok"] == 200


def test_a_burst_over_an_open_file_limit_that_cannot_be_raised(nothing_left: Left) -> None:
    def low_hard_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))

    with start_behaviours() as server:
        run = subprocess.run([sys.executable, "-m", "memprobe", "hammer", server.url, "-n", "400",
                              "--mode", "burst", "--no-save"], capture_output=True, text=True, cwd=REPO,
                             env=nothing_left.env, timeout=60, preexec_fn=low_hard_limit)
    assert run.returncode == 4, run.stderr
    assert "open" in one_line(run.stderr)


def _interrupt(proc: subprocess.Popen[str], ready: object, sig: int) -> str:
    try:
        wait_until(ready, 120, "the run is under way")  # type: ignore[arg-type]
        proc.send_signal(sig)
        return proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_an_interrupted_compare_writes_its_partial_json(nothing_left: Left, tmp_path: Path, sig: int) -> None:
    out = tmp_path / "partial.json"
    proc = subprocess.Popen([sys.executable, "-m", "memprobe", "compare", "10000000", "5", "--frameworks",
                             str(SERVERS / "behaviours.py"), "--no-save", "--json", str(out), "--settle", "0"],
                            cwd=REPO, env=nothing_left.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=ctrl_c_reaches_it)

    def hammering() -> bool:
        servers = psutil.Process(proc.pid).children()
        return any(c.status == psutil.CONN_ESTABLISHED for s in servers for c in s.net_connections("tcp"))

    err = _interrupt(proc, hammering, sig)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err and f"wrote partial results to {out}" in err
    assert json.loads(out.read_text())["interrupted"] is True


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_an_interrupted_hunt_writes_its_partial_json(nothing_left: Left, tmp_path: Path, sig: int) -> None:
    marker, out = tmp_path / "second-route", tmp_path / "partial.json"
    write(tmp_path, "two_routes.py", f"""
        import time
        from pathlib import Path

        def app(environ, start_response):
            if environ["PATH_INFO"] == "/second":
                Path({str(marker)!r}).touch()
                time.sleep(0.01)
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]
    """)
    proc = subprocess.Popen([sys.executable, "-m", "memprobe", "hunt", "two_routes.py:app", "--route", "/",
                             "--route", "/second", "--requests", "2000", "--rounds", "2", "--warmup", "0",
                             "--json", str(out)], cwd=tmp_path, env=nothing_left.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=ctrl_c_reaches_it)
    err = _interrupt(proc, marker.exists, sig)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err and "interrupted" in err
    data = json.loads(out.read_text())
    assert data["interrupted"] is True and [r["route"] for r in data["routes"]][:1] == ["/"]


def test_the_fixture_sees_a_process_left_behind(nothing_left: Left) -> None:
    """The check itself: a marked process is found even once it is nobody's child."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=nothing_left.env)
    try:
        wait_until(lambda: _marked(nothing_left.marker), 10, "the marked process is seen")
    finally:
        proc.kill()
        proc.wait()
