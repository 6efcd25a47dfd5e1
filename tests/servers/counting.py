"""A hello-world that counts the requests it served: ``python counting.py PORT``.

Every request is counted under its User-Agent (memprobe's hammer and Locust engine send
``memprobe``; a readiness check sends none) and its path is remembered, then answered
``hello`` over HTTP/1.1 keep-alive, one thread per connection. ``/slow/MS...`` waits MS
milliseconds first. ``GET /__count`` (not counted) answers the JSON ``{"by_agent": {...},
"by_method": {...}, "paths": distinct paths}``. A test uses it to check what a load engine says it sent against
what the server saw.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_by_agent: dict[str, int] = {}
_by_method: dict[str, int] = {}
_paths: set[str] = set()
_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path == "/__count":
            with _lock:
                body = json.dumps({"by_agent": _by_agent, "by_method": _by_method, "paths": len(_paths)}).encode()
        else:
            agent = self.headers.get("User-Agent") or "-"
            with _lock:
                _by_agent[agent] = _by_agent.get(agent, 0) + 1
                _by_method[self.command] = _by_method.get(self.command, 0) + 1
                _paths.add(self.path)
            if self.path.startswith("/slow/"):
                time.sleep(int(self.path.split("/")[2]) / 1000)
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
