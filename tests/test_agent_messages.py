"""The agent's answers are typed messages read in one place, and an agent that stops answering is
declared lost within seconds while a long command that is alive completes.

Real agents in real processes on private Unix sockets; the pure parsing on recorded answers.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from memprobe.agent.control import AgentClient, listen
from memprobe.agent.messages import AttributeAnswer, Growth, HeapReading, Hello, LinesAnswer
from memprobe.errors import AgentError, AgentLost, ExitCode, TargetError
from memprobe.hunt.probes.agent import agent_command, agent_env
from memprobe.process.child import Child, start_server

ROOT = Path(__file__).resolve().parent.parent

APP = '''
_kept = []

def app(environ, start_response):
    if environ["PATH_INFO"] == "/leak":
        _kept.append(bytes(300))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
'''

#: An agent whose one command, ``sleep``, takes as long as it is asked: a long command that is alive.
SLOW_AGENT = '''
import os, sys, threading, time
from memprobe.agent import control

class Slow:
    lock = threading.Lock()

    def handle(self, request):
        if request["cmd"] == "hello":
            return {"pid": os.getpid()}
        time.sleep(float(request.get("s", 0)))
        return {"slept": request.get("s")}

control.serve(control.listen(sys.argv[1]), Slow())
threading.Event().wait()
'''


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[Child, Path]]:
    """memprobe's agent serving a small WSGI app in a child: the child and its control socket."""
    (tmp_path / "msg_app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    control = tmp_path / "control.sock"
    with start_server(lambda port: agent_command(f"{tmp_path / 'msg_app.py'}:app", port, control,
                                                 workers=4),
                      name="the agent", env=agent_env(), cwd=tmp_path) as child:
        yield child, control


@pytest.fixture
def slow_agent(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """The slow agent in a process of its own, and its socket; killed after the test."""
    path = tmp_path / "slow.sock"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", SLOW_AGENT, str(path)], env=env)
    try:
        yield proc, path
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait(timeout=30)


def get(child: Child, path: str, n: int) -> None:
    for _ in range(n):
        with urllib.request.urlopen(child.url.rstrip("/") + path, timeout=10) as answer:
            answer.read()


# -- parsing ---------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_every_answer_of_a_real_agent_reads_as_its_message(agent: tuple[Child, Path]) -> None:
    child, control = agent
    client = AgentClient(control, alive=child.check_alive).connect()
    try:
        hello = client.hello()
        assert isinstance(hello, Hello)
        assert (hello.pid, hello.kind, client.pid) == (child.pid, "wsgi", child.pid)
        assert hello.served is None, "a child memprobe serves counts nothing"

        begun = client.begin()
        assert isinstance(begun, HeapReading) and begun.traced is not None and begun.blocks

        get(child, "/leak", 10)
        base = client.baseline()
        get(child, "/leak", 50)
        after = client.measure()
        assert base.traced is not None and after.traced is not None
        assert after.traced - base.traced >= 50 * 300
        assert after.overhead > 0, "tracemalloc's own tables, for the parent to subtract"

        grown = client.growth(50)
        assert isinstance(grown, Growth) and grown.holders >= 1
        client.deepen()
        get(child, "/leak", 50)
        answer = client.attribute(50)
        assert isinstance(answer, AttributeAnswer)
        assert answer.sites and answer.sites[0].file.endswith("msg_app.py") and answer.sites[0].user
        assert answer.holders[0].description.startswith("module msg_app.py, global _kept (list, ")
        assert answer.timings_s and all(isinstance(s, float) for s in answer.timings_s.values())

        lines = client.lines("/leak", requests=5, uss_per_request=300.0, first=0)
        found, note = lines.found()
        assert isinstance(lines, LinesAnswer) and (found or note)

        assert client.end() is None
        client.begin(trace=False, objects=True)
        untraced = client.baseline()
        assert untraced.traced is None and untraced.objects, "untraced: no traced size, not a zero"
    finally:
        client.close()


def test_absent_keys_take_their_defaults() -> None:
    hello = Hello.from_wire({"pid": 7, "kind": None, "extra": "ignored"})
    assert hello == Hello(7)
    assert HeapReading.from_wire({"blocks": 5}) == HeapReading(None, 0, 5, None, None)
    assert Growth.from_wire({}).holders == 0
    assert AttributeAnswer.from_wire({}) == AttributeAnswer()
    note = LinesAnswer.from_wire({"note": "memory_profiler is not installed"})
    assert note.found() == ([], "memory_profiler is not installed")


def test_an_attribute_answer_gives_the_sites_types_holders_timings_and_allocator() -> None:
    site = {"file": "/app/a.py", "line": 3, "bytes_per_request": 300.0, "count_per_request": 1.0,
            "size_diff": 3000, "count_diff": 10, "user_code": True, "code": "_kept.append(b)",
            "traceback": [{"file": "/app/a.py", "line": 3, "user": True}]}
    holder = {"description": "module a.py, global _kept (list, 10 entries)", "chain": ["_kept"],
              "type": "list", "entries": 10, "source": "roots", "unknown": 1}
    kinds = {"type": "bytes", "count_before": 0, "count": 10}
    answer = AttributeAnswer.from_wire({"ok": True, "sites": [site], "types": [kinds],
                                        "holders": [holder], "timings_s": {"sites": 0.01, "types": 1},
                                        "allocator": {"glibc": True}})
    assert answer.sites[0].file == "/app/a.py" and answer.sites[0].size_diff == 3000
    assert answer.holders[0].chain == ["_kept"] and answer.holders[0].entries == 10
    assert answer.types == (kinds,) and answer.timings_s == {"sites": 0.01, "types": 1.0}
    assert answer.allocator == {"glibc": True}


def test_lines_that_grew_carry_their_view_and_no_line_is_said_so() -> None:
    line = {"file": "/app/a.py", "line": 9, "code": "x = make()", "bytes_per_request": 4096.0}
    answer = LinesAnswer.from_wire({"lines": [line], "calls": 40, "view": "/app/a.py:8 leak",
                                    "filled": 3})
    assert answer.found() == ([{**line, "view": "/app/a.py:8 leak", "filled": 3}], None)
    found, note = LinesAnswer.from_wire({"lines": [], "calls": 40, "view": "/app/a.py:8 leak"}).found()
    assert found == [] and note is not None and "/app/a.py:8 leak ran 40 times" in note


@pytest.mark.parametrize("parse, data, says", [
    (Hello.from_wire, [], "a JSON object was expected, not list"),
    (Hello.from_wire, {"kind": "wsgi"}, "'pid' is missing"),
    (Hello.from_wire, {"pid": "12"}, "'pid' should be an integer"),
    (Hello.from_wire, {"pid": 1, "routes": ["/", 2]}, "every route should be a string"),
    (HeapReading.from_wire, {"traced": 1.5}, "'traced' should be an integer"),
    (HeapReading.from_wire, {"blocks": True}, "'blocks' should be an integer"),
    (Growth.from_wire, {"holders": "3"}, "'holders' should be an integer"),
    (AttributeAnswer.from_wire, {"sites": "none"}, "'sites' should be a list"),
    (AttributeAnswer.from_wire, {"sites": [{"line": 3}]}, "a site could not be read"),
    (AttributeAnswer.from_wire, {"holders": [{"chain": []}]}, "a holder could not be read"),
    (AttributeAnswer.from_wire, {"types": ["bytes"]}, "every item of 'types' should be an object"),
    (AttributeAnswer.from_wire, {"timings_s": {"sites": "fast"}}, "'sites' should be a number"),
    (LinesAnswer.from_wire, {"lines": [{"code": "x"}]}, "a line should name its file and line"),
])
def test_a_malformed_answer_is_an_agent_error_naming_the_command_and_the_key(
        parse: Callable[[Any], object], data: Any, says: str) -> None:
    with pytest.raises(AgentError, match="answer to [a-z]+ is malformed") as info:
        parse(data)
    assert says in str(info.value)
    assert info.value.exit_code == ExitCode.TARGET  # a failure to measure, never the leak code


@pytest.mark.timeout(60)
def test_a_line_that_is_not_a_json_object_is_an_agent_error(tmp_path: Path) -> None:
    server = listen(str(tmp_path / "bad.sock"))

    def answer_badly() -> None:
        conn, _ = server.accept()
        with conn, conn.makefile("rb") as stream:
            stream.readline()
            conn.sendall(b"not json\n")
            stream.readline()
            conn.sendall(b"[1, 2]\n")

    thread = threading.Thread(target=answer_badly)
    thread.start()
    client = AgentClient(tmp_path / "bad.sock").connect()
    try:
        with pytest.raises(AgentError, match="answer to hello is malformed: not JSON"):
            client.call("hello")
        with pytest.raises(AgentError, match="a JSON object was expected, not list"):
            client.call("measure")
    finally:
        client.close()
        thread.join(timeout=10)
        server.close()


# -- liveness --------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_heartbeats_keep_a_long_command_alive_and_none_follows_its_answer(
        slow_agent: tuple[subprocess.Popen[bytes], Path]) -> None:
    proc, path = slow_agent
    client = AgentClient(path, lost_after_s=1.0).connect()
    try:
        assert client.call("sleep", s=3)["slept"] == 3, "3 s of work, 1 s allowed between beats"
    finally:
        client.close()

    raw = socket.socket(socket.AF_UNIX)
    raw.connect(str(path))
    with raw, raw.makefile("rb") as stream:
        raw.sendall(json.dumps({"cmd": "sleep", "s": 1.5}).encode() + b"\n")
        lines = []
        while not lines or "ok" not in lines[-1]:
            lines.append(json.loads(stream.readline()))
        assert lines[0] == {"busy": True} and lines[-1] == {"ok": True, "slept": 1.5}
        raw.sendall(json.dumps({"cmd": "sleep", "s": 0}).encode() + b"\n")
        assert json.loads(stream.readline()) == {"ok": True, "slept": 0}, \
            "no heartbeat of the last command arrives after its answer"


@pytest.mark.timeout(60)
def test_a_stopped_agent_is_declared_lost_with_its_pid_and_answers_again_once_continued(
        slow_agent: tuple[subprocess.Popen[bytes], Path]) -> None:
    proc, path = slow_agent
    client = AgentClient(path, lost_after_s=1.0).connect()
    assert client.hello().pid == proc.pid
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        with pytest.raises(AgentLost, match=f"pid {proc.pid} sent nothing for 1 s") as info:
            client.call("sleep", s=0)
        assert (info.value.pid, info.value.silent_s) == (proc.pid, 1.0)
        assert isinstance(info.value, TargetError) and info.value.exit_code == ExitCode.TARGET
        with pytest.raises(AgentLost):  # a lost client answers nothing more
            client.call("sleep", s=0)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    again = AgentClient(path, lost_after_s=1.0).connect()
    try:
        assert again.call("sleep", s=0)["slept"] == 0, "it was stopped, not dead"
    finally:
        again.close()


@pytest.mark.timeout(60)
def test_an_agent_killed_mid_command_is_gone_not_lost(
        slow_agent: tuple[subprocess.Popen[bytes], Path]) -> None:
    proc, path = slow_agent
    client = AgentClient(path, lost_after_s=1.0).connect()
    client.hello()
    threading.Timer(0.5, proc.kill).start()
    with pytest.raises(TargetError, match="the agent stopped answering") as info:
        client.call("sleep", s=20)
    assert not isinstance(info.value, AgentLost)


@pytest.mark.timeout(120)
def test_memprobes_agent_stopped_by_sigstop_is_declared_lost(agent: tuple[Child, Path]) -> None:
    child, control = agent
    client = AgentClient(control, alive=child.check_alive, lost_after_s=1.0).connect()
    client.hello()
    client.begin()
    os.kill(child.pid, signal.SIGSTOP)
    try:
        with pytest.raises(AgentLost) as info:
            client.hello()  # a light command: lost after lost_after_s
        assert info.value.pid == child.pid
    finally:
        os.kill(child.pid, signal.SIGCONT)
    again = AgentClient(control, alive=child.check_alive).connect()
    try:
        assert again.measure().traced is not None
    finally:
        again.close()


@pytest.mark.timeout(60)
def test_a_command_that_beats_but_never_answers_is_lost_at_the_callers_timeout(
        slow_agent: tuple[subprocess.Popen[bytes], Path]) -> None:
    proc, path = slow_agent
    client = AgentClient(path, timeout=2.0, lost_after_s=1.0).connect()
    client.hello()
    with pytest.raises(AgentLost, match="sent only heartbeats for 2 s while it ran sleep") as info:
        client.call("sleep", s=30)
    assert (info.value.pid, info.value.silent_s) == (proc.pid, 2.0)


def test_a_command_that_walks_the_heap_may_be_silent_longer_than_a_light_one() -> None:
    # gc.collect() or Heapy's count of a large heap holds the GIL, and the heartbeat's thread
    # with it: a hunt's growth on 10,000 kept tracebacks was silent over 5 s on a loaded machine.
    from memprobe.agent.control import HEAVY_LOST_AFTER_S

    client = AgentClient("/nonexistent.sock", lost_after_s=1.0)
    assert client.silence_allowed("hello") == 1.0
    assert all(client.silence_allowed(cmd) == HEAVY_LOST_AFTER_S
               for cmd in ("begin", "baseline", "measure", "growth", "deepen", "attribute", "lines"))
