"""A stdlib HTTP/1.1 server with one path per behaviour the hammer must cope with.

    python tests/servers/behaviours.py --port P [--host 127.0.0.1] [--die-after N] [--start-delay S] [--crash-on-start]

Paths: /            200 "ok", Content-Length, keep-alive
       /chunked     200, Transfer-Encoding: chunked, three chunks
       /close       200, HTTP/1.0-style body delimited by closing the connection
       /slow        sleeps 2 s before answering (for timeouts)
       /error       500
       /item/<n>    200; the server remembers every distinct path
       /stats       JSON {"distinct_items": K, "connections": C}
       /exit        the process dies at once (os._exit(3))
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ITEMS: set[str] = set()
CONNECTIONS = [0]
SERVED = [0]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    die_after = 0

    def setup(self) -> None:
        CONNECTIONS[0] += 1
        super().setup()

    def log_message(self, *args: object) -> None:  # quiet: the tests read the log only on failure
        pass

    def _send(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        SERVED[0] += 1
        if self.die_after and SERVED[0] > self.die_after:
            os._exit(3)
        if self.path == "/":
            self._send(200, b"ok")
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"Hello", b", ", b"World!" * 50):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"body until close")
            self.close_connection = True
        elif self.path == "/slow":
            time.sleep(2)
            self._send(200, b"late")
        elif self.path == "/error":
            self._send(500, b"boom")
        elif self.path.startswith("/item/"):
            ITEMS.add(self.path)
            self._send(200, b"item")
        elif self.path == "/stats":
            body = json.dumps({"distinct_items": len(ITEMS), "connections": CONNECTIONS[0]}).encode()
            self._send(200, body, "application/json")
        elif self.path == "/exit":
            os._exit(3)
        else:
            self._send(404, b"not found")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1"])
    parser.add_argument("--die-after", type=int, default=0, help="os._exit after N requests")
    parser.add_argument("--start-delay", type=float, default=0.0)
    parser.add_argument("--crash-on-start", action="store_true")
    args = parser.parse_args()
    print("behaviours server starting", flush=True)
    if args.crash_on_start:
        raise RuntimeError("crashing on start, as asked")
    time.sleep(args.start_delay)
    Handler.die_after = args.die_after
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
