"""Falcon hello-world on the standard library's wsgiref server, as Falcon's quickstart runs it.

    python frameworks/hello_falcon.py --port 8080 [--host 127.0.0.1]
"""
from __future__ import annotations

import falcon

from _common import HELLO, parse_args, serve_wsgiref


class HelloResource:
    """``GET /``."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Answer with the plain-text greeting."""
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = HELLO


class EchoResource:
    """``POST /echo``."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Answer with the JSON body received."""
        resp.media = req.get_media()


app = falcon.App()
app.add_route("/", HelloResource())
app.add_route("/echo", EchoResource())


def main() -> None:
    """Parse the command line and serve until SIGTERM."""
    args = parse_args("falcon", __doc__.splitlines()[0])
    serve_wsgiref(app, args.host, args.port)


if __name__ == "__main__":
    main()
