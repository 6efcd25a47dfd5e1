"""CherryPy hello-world as ``cherrypy.quickstart`` runs it: CherryPy's own server (cheroot).

    python frameworks/hello_cherrypy.py --port 8080 [--host 127.0.0.1]
"""
from __future__ import annotations

import logging
import threading
from typing import Any

import cherrypy
from cherrypy.process.wspbus import states

from _common import HELLO, TEXT_PLAIN, parse_args, wake_accept_loop


class Root:
    """The application: ``GET /`` and ``POST /echo``."""

    @cherrypy.expose
    def index(self) -> str:
        """Answer ``/`` with the plain-text greeting."""
        cherrypy.response.headers["Content-Type"] = TEXT_PLAIN
        return HELLO

    @cherrypy.expose
    @cherrypy.tools.allow(methods=["POST"])
    @cherrypy.tools.json_in()
    @cherrypy.tools.json_out()
    def echo(self) -> Any:
        """Answer with the JSON body received."""
        return cherrypy.request.json


def exit_when_started() -> None:
    """SIGTERM handler: CherryPy's own (``engine.exit``), once the engine has finished starting.

    The server answers HTTP a moment before the bus reports STARTED, and ``engine.exit()`` in
    that window ends the process with status 70 by design; a SIGTERM sent right after the first
    answer must still be a clean exit. The engine stops cheroot, whose accept loop notices
    only every 0.5 s: :func:`wake_accept_loop` knocks until it has.
    """
    engine = cherrypy.engine
    host, port = cherrypy.server.bound_addr[:2]
    wake_accept_loop(host, port, until=lambda: engine.state in (states.STOPPED, states.EXITING))
    if engine.state != states.STARTING:
        engine.exit()
        return

    def wait_then_exit() -> None:
        engine.wait([states.STARTED, states.STOPPED, states.EXITING])
        engine.exit()

    threading.Thread(target=wait_then_exit, name="exit-when-started", daemon=True).start()


def wsgi_app() -> Any:
    """The application for a WSGI server (gunicorn): CherryPy's tree, with no server and no
    autoreloader of its own, as CherryPy's "hosting in another WSGI server" recipe has it."""
    cherrypy.config.update({"engine.autoreload.on": False, "environment": "embedded"})
    cherrypy.server.unsubscribe()
    app = cherrypy.tree.mount(Root(), "", {"/": {}})
    app.log.access_log.setLevel(logging.WARNING)
    return cherrypy.tree


def main() -> None:
    """Parse the command line and serve until SIGTERM (quickstart handles the signal)."""
    args = parse_args("CherryPy", __doc__.splitlines()[0])
    cherrypy.config.update(
        {
            "server.socket_host": args.host,
            "server.socket_port": args.port,
            # The autoreloader polls every module's mtime once a second and re-executes the
            # process on a change: a development aid that would be measured as the framework.
            "engine.autoreload.on": False,
        }
    )
    # What cherrypy.quickstart(Root()) does, step by step, to reach the mounted application:
    app = cherrypy.tree.mount(Root(), "", {"/": {}})
    # log.screen stays on so engine errors (port in use) reach stderr; only the per-request
    # access log goes (each application has its own): we measure the framework, not its console.
    app.log.access_log.setLevel(logging.WARNING)
    cherrypy.engine.signal_handler.handlers["SIGTERM"] = exit_when_started
    cherrypy.engine.signals.subscribe()
    cherrypy.engine.start()
    cherrypy.engine.block()


if __name__ == "__main__":
    main()
