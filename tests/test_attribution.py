"""The agent's readings wait for the server to close the connections a load closed, not a fixed
time: the whole settle time once, at a route's baseline, then only until no more sockets are
open than then (at most the settle time)."""
from __future__ import annotations

import socket
import threading
import time

from memprobe.agent.attribution import Attributor, open_sockets


def test_open_sockets_counts_this_process_sockets() -> None:
    before = open_sockets()
    assert before is not None
    a, b = socket.socketpair()
    try:
        assert open_sockets() == before + 2
    finally:
        a.close()
        b.close()
    assert open_sockets() == before


def test_a_reading_waits_for_the_sockets_then_returns() -> None:
    attributor = Attributor(1, settle_s=0.05)
    attributor.collect()  # the baseline: the whole settle time, and the sockets open then
    attributor.settle_s = 30.0
    conns = socket.socketpair()

    def close_later() -> None:
        time.sleep(0.2)
        for conn in conns:
            conn.close()

    closer = threading.Thread(target=close_later)
    closer.start()
    started = time.monotonic()
    attributor.collect("sockets")
    waited = time.monotonic() - started
    # close() marks a socket closed before it closes its descriptor
    closed = [conn.fileno() == -1 for conn in conns]
    closer.join()
    assert closed == [True, True], "the reading was taken while the connection was still open"
    assert waited < 30.0, "it waited out the whole settle time"


def test_a_socket_that_stays_open_holds_a_reading_no_longer_than_the_settle_time() -> None:
    attributor = Attributor(1, settle_s=0.05)
    attributor.collect()
    conns = socket.socketpair()  # another client, connected for good
    try:
        attributor.settle_s = 0.3
        started = time.monotonic()
        attributor.collect("sockets")
        assert time.monotonic() - started >= 0.3
    finally:
        for conn in conns:
            conn.close()
