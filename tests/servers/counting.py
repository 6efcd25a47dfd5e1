"""A hello-world that counts the requests it served: ``python counting.py PORT``.

``GET /__count`` answers the count so far (and is not counted itself); every other request is
counted and answered ``hello`` over HTTP/1.1 keep-alive, one thread per connection. A test
uses it to check what a load engine claims it sent against what the server really saw.
"""
from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_count = 0
_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        global _count
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path == "/__count":
            with _lock:
                body = str(_count).encode()
        else:
            with _lock:
                _count += 1
            body = b"hello"
        # One write: headers and body in separate segments meet the client's delayed ACK
        # (40 ms a request on loopback).
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer.request_queue_size = 128  # 5 by default: connections at once meet SYN drops
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    print(f"counting on {server.server_address[1]}", flush=True)
    server.serve_forever()
