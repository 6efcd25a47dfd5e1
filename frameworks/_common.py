"""What every ``hello_<name>.py`` shares: its command line, its SIGTERM behaviour, its texts.

The scripts import this module as a sibling (``python frameworks/hello_flask.py`` puts
``frameworks/`` on ``sys.path``). It must import nothing but the standard library, and never
memprobe: a script has to run in any virtualenv that has its framework.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import signal
import socket
import sys
import threading
import time
from types import FrameType
from typing import Any, Callable, Iterable, Sequence

#: The body every hello-world answers ``GET /`` with.
HELLO = "Hello World!"
HELLO_BYTES = HELLO.encode("ascii")
TEXT_PLAIN = "text/plain; charset=utf-8"
APPLICATION_JSON = "application/json"


def parse_args(
    distribution: str,
    description: str,
    argv: Sequence[str] | None = None,
) -> argparse.Namespace:
    """Parse ``--port P [--host H]``; ``--version`` prints ``distribution``'s version and exits 0.

    The version comes from the installed distribution's metadata, the same source memprobe's
    catalog reads, so the two always agree.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port to listen on")
    parser.add_argument(
        "--version",
        action="version",
        version=importlib.metadata.version(distribution),
        help="print the framework's version and exit",
    )
    args = parser.parse_args(argv)
    if args.port is None:
        parser.error("--port is required")
    return args


def exit_on_sigterm() -> None:
    """Make SIGTERM end the process like a normal exit (status 0, ``finally`` blocks run).

    Python's default for SIGTERM kills the process without unwinding. Servers that install
    their own handlers (uvicorn, aiohttp, sanic, cherrypy) replace this one while they run;
    uvicorn re-raises the signal after its graceful shutdown, which lands here again.
    """

    def _exit(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _exit)


def echo_body(raw: bytes) -> bytes:
    """The ``POST /echo`` answer for servers without their own JSON helpers: the same JSON back."""
    return json.dumps(json.loads(raw or b"null")).encode("utf-8")


def stop_on_sigterm(get_stop: Callable[[], Callable[[], object] | None],
                    wake: tuple[str, int] | None = None) -> None:
    """Make SIGTERM call the server's own graceful stop, from another thread.

    For servers whose main thread runs the accept loop (wsgiref, cheroot). Raising
    ``SystemExit`` there, as :func:`exit_on_sigterm` does, lands at an arbitrary point of the
    loop: wsgiref's error handler can swallow it inside a request, and cheroot can lose a
    thread-pool wake-up and then wait forever in ``stop()`` for a worker (seen in about one
    SIGTERM in fifteen on a loaded machine). Asked from another thread, both stop at a safe
    point and the main thread returns normally. ``get_stop`` returns the stop function, or
    ``None`` while the server does not exist yet (SIGTERM then exits at once). The thread is
    not a daemon, so the interpreter waits for the stop to finish before it exits. ``wake``:
    the server's own address, knocked on until the stop is done (:func:`wake_accept_loop`).
    """

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop = get_stop()
        if stop is None:
            raise SystemExit(0)
        # The stop functions wait for the accept loop, which runs in this very thread.
        stopping = threading.Thread(target=stop, name="sigterm-stop")
        stopping.start()
        if wake is not None:
            wake_accept_loop(*wake, until=lambda: not stopping.is_alive())

    signal.signal(signal.SIGTERM, _stop)


def wake_accept_loop(host: str, port: int, until: Callable[[], bool], seconds: float = 5.0) -> None:
    """Connect to the server's own listening address every 10 ms, from a daemon thread, until
    ``until()`` is true, the address refuses, or ``seconds`` have passed.

    A graceful stop is only noticed between two waits of the accept loop: up to 0.5 s with
    socketserver's ``poll_interval`` (wsgiref) and cheroot's ``expiration_interval``, whose
    ``stop()`` knocks on its own socket only after it has waited for that loop. Every
    connection wakes the loop at once (it is accepted, reads nothing and closes), so a
    SIGTERM takes ~0.01 s instead of 0-0.5 s; it comes after the last request and reading.
    """

    def knock() -> None:
        deadline = time.monotonic() + seconds
        while not until() and time.monotonic() < deadline:
            try:
                socket.create_connection((host, port), timeout=0.1).close()
            except OSError:
                return  # closed: the loop has ended
            time.sleep(0.01)

    threading.Thread(target=knock, name="sigterm-wake", daemon=True).start()


def serve_wsgiref(app: Callable[..., Iterable[bytes]], host: str, port: int) -> None:
    """Serve a WSGI ``app`` with the standard library's ``wsgiref`` until SIGTERM.

    wsgiref is single-threaded and speaks HTTP/1.0: every response closes its connection.
    """
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        # One line per request on stderr would measure the console, not the framework.
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    with make_server(host, port, app, handler_class=QuietHandler) as httpd:
        stop_on_sigterm(lambda: httpd.shutdown, wake=(host, port))
        print(f"serving on http://{host}:{port}/ (wsgiref)", file=sys.stderr, flush=True)
        httpd.serve_forever()
