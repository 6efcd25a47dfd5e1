"""Which processes of a command get memprobe's agent, for each way of arming it.

    PYTHONPATH=$PWD python bench/injection_reach.py [--cases gunicorn,uvicorn,...] [--repeat 200000]

For each mechanism (the bootstrap's ``sitecustomize`` first on ``PYTHONPATH``; the gated
``.pth`` memprobe writes into this interpreter's site-packages; both, which is what
:meth:`memprobe.agent.channel.Channel.env` does) and each kind of command, starts the command
for real on 127.0.0.1, waits for its processes to import the app, and counts

* ``procs``: the Python processes that imported the app (each writes a mark file on import),
* ``armed``: those in which memprobe's bootstrap ran (``memprobe.agent.inject`` armed),
* ``agents``: the agents that answer on their socket in the channel directory (a socket file
  whose process re-executed itself is there but answers nobody: not counted).

Then it measures what the ``.pth`` costs a Python process that is not memprobe's: reading the
file and running its gated line, with the gate closed. Figures, not pass/fail
(docs/injection.md has a run).
"""
from __future__ import annotations

import argparse
import os
import site
import socket
import sys
import tempfile
import textwrap
import time
import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from memprobe.agent.channel import BOOTSTRAP_DIR, Channel
from memprobe.process.child import LOOPBACK, start_server

BIN = Path(sys.executable).parent
MECHANISMS = ("sitecustomize", "pth", "both")

APP = textwrap.dedent('''\
    """The app of every case: WSGI ``app``, ASGI ``asgi``, or a script (wsgiref) that may
    re-execute itself without PYTHONPATH or serve from a multiprocessing-spawned worker."""
    import os
    import sys


    def _mark():
        inject = sys.modules.get("memprobe.agent.inject")
        armed = inject is not None and getattr(inject, "_armed", False)
        with open(os.path.join(os.environ["REACH_MARKS"], str(os.getpid())), "w") as f:
            f.write("1" if armed else "0")


    _mark()


    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]


    async def asgi(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})


    def serve(port):
        from wsgiref.simple_server import WSGIRequestHandler, make_server

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args):
                pass

        make_server("127.0.0.1", port, app, handler_class=Quiet).serve_forever()


    if __name__ == "__main__":
        mode, port = sys.argv[1], int(sys.argv[2])
        if mode == "reexec" and "--again" not in sys.argv:
            os.environ.pop("PYTHONPATH", None)  # what a server that re-executes itself may do
            os.execv(sys.executable, [*sys.orig_argv, "--again"])
        if mode == "spawn":
            import multiprocessing

            worker = multiprocessing.get_context("spawn").Process(target=serve, args=(port,))
            worker.start()
            worker.join()
        else:
            serve(port)
''')


@dataclass(frozen=True)
class Case:
    """A kind of command: its argv for a port, and how many processes import the app."""

    name: str
    argv: Callable[[int], list[str]]
    procs: int


CASES = (
    Case("gunicorn -w 2", lambda p: [str(BIN / "gunicorn"), "-w", "2", "-b", f"{LOOPBACK}:{p}", "reach_app:app"], 2),
    Case("uvicorn --workers 2", lambda p: [str(BIN / "uvicorn"), "--workers", "2", "--host", LOOPBACK,
                                           "--port", str(p), "--log-level", "warning", "reach_app:asgi"], 2),
    Case("python app.py", lambda p: [sys.executable, "reach_app.py", "serve", str(p)], 1),
    Case("python -I app.py", lambda p: [sys.executable, "-I", "reach_app.py", "serve", str(p)], 1),
    Case("python -E app.py", lambda p: [sys.executable, "-E", "reach_app.py", "serve", str(p)], 1),
    Case("python -S app.py", lambda p: [sys.executable, "-S", "reach_app.py", "serve", str(p)], 1),
    Case("re-exec without PYTHONPATH", lambda p: [sys.executable, "reach_app.py", "reexec", str(p)], 1),
    Case("multiprocessing spawn", lambda p: [sys.executable, "reach_app.py", "spawn", str(p)], 2),
)


@dataclass(frozen=True)
class Reach:
    """What one mechanism reached in one command."""

    case: str
    mechanism: str
    procs: int
    armed: int
    agents: int


@dataclass(frozen=True)
class GateCost:
    """What the ``.pth`` costs a process without the gate, in microseconds."""

    read_and_run_us: float  # site.addpackage of the file: open, read, exec of its gated line
    gate_us: float  # the gated line alone, already compiled


def environment(channel: Channel, mechanism: str, base: dict[str, str]) -> dict[str, str]:
    """The command's environment for ``mechanism``."""
    env = channel.env(base, pth=mechanism != "sitecustomize")
    if mechanism == "pth":
        rest = [p for p in env["PYTHONPATH"].split(os.pathsep) if p != str(BOOTSTRAP_DIR)]
        env["PYTHONPATH"] = os.pathsep.join(rest)
        if not rest:
            del env["PYTHONPATH"]
    return env


def answering(channel: Channel) -> int:
    """Agents that accept a connection on their socket."""
    count = 0
    for path in channel.agents().values():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            try:
                sock.connect(str(path))
                count += 1
            except OSError:
                pass
    return count


def reach(case: Case, mechanism: str, app_dir: Path, settle: float = 3.0) -> Reach:
    """Start ``case`` with ``mechanism`` and count what got the agent; stops it again."""
    with tempfile.TemporaryDirectory(prefix="reach-marks-") as marks, Channel() as channel:
        env = environment(channel, mechanism, {**os.environ, "REACH_MARKS": marks})
        child = start_server(case.argv, env=env, cwd=app_dir, name=case.name, ready_timeout=30.0)
        try:
            deadline = time.monotonic() + 15.0
            while len(os.listdir(marks)) < case.procs and time.monotonic() < deadline:
                time.sleep(0.05)
            deadline = time.monotonic() + settle
            while answering(channel) < len(os.listdir(marks)) and time.monotonic() < deadline:
                time.sleep(0.1)
            found = [Path(marks, name).read_text() for name in os.listdir(marks)]
            agents = answering(channel)
        finally:
            child.stop()
    return Reach(case.name, mechanism, len(found), found.count("1"), agents)


def gate_cost(repeat: int) -> GateCost:
    """Time the ``.pth`` of a channel in a process whose ``$MEMPROBE_CHANNEL`` is not that one."""
    with Channel() as channel, tempfile.TemporaryDirectory() as directory:
        (pth,) = channel.install_pth([directory])
        line = pth.read_text().splitlines()[1]
        saved = os.environ.pop("MEMPROBE_CHANNEL", None)
        try:
            code = compile(line, "<pth>", "exec")
            # the fastest of many short batches: the machine is shared, and other processes'
            # bursts only ever add time
            gate = min(timeit.repeat(lambda: exec(code, {}), number=repeat // 100, repeat=100)) / (repeat // 100)
            files = min(timeit.repeat(lambda: site.addpackage(directory, pth.name, set()),
                                      number=repeat // 2000, repeat=100)) / (repeat // 2000)
        finally:
            if saved is not None:
                os.environ["MEMPROBE_CHANNEL"] = saved
    return GateCost(files * 1e6, gate * 1e6)


def table(results: Sequence[Reach]) -> str:
    """Cases down, mechanisms across; each cell agents/armed/procs."""
    if not results:
        return "(no case run)"
    width = max(len(r.case) for r in results) + 2
    lines = ["agents / armed / processes that imported the app".rjust(width + 45),
             "case".ljust(width) + "".join(m.rjust(15) for m in MECHANISMS)]
    for name in dict.fromkeys(r.case for r in results):
        cells = {r.mechanism: f"{r.agents} / {r.armed} / {r.procs}" for r in results if r.case == name}
        lines.append(name.ljust(width) + "".join(cells.get(m, "-").rjust(15) for m in MECHANISMS))
    return "\n".join(lines)


def main() -> None:
    """Run every case with every mechanism and print the table and the gate's cost."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="",
                        help="comma-separated substrings of the case names (default all; 'none': the cost only)")
    parser.add_argument("--repeat", type=int, default=200_000, help="runs of the gated line to time")
    args = parser.parse_args()
    wanted = [w for w in args.cases.split(",") if w]
    cases = [c for c in CASES if not wanted or any(w in c.name for w in wanted)]
    writable = os.access(site.getsitepackages()[0], os.W_OK)
    print(f"python {sys.version.split()[0]}, site-packages {site.getsitepackages()[0]} "
          f"({'writable' if writable else 'NOT writable: the .pth cannot be written'})")
    with tempfile.TemporaryDirectory(prefix="reach-app-") as app_dir:
        Path(app_dir, "reach_app.py").write_text(APP)
        results = [reach(case, mechanism, Path(app_dir)) for case in cases for mechanism in MECHANISMS]
    print(table(results))
    cost = gate_cost(args.repeat)
    print(f"\n.pth with the gate closed: {cost.read_and_run_us:.1f} us a file a process "
          f"(open, read, run the line), of which the gated line {cost.gate_us * 1000:.0f} ns")


if __name__ == "__main__":
    main()
