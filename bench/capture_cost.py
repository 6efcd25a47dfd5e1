"""What capturing costs a request: the watch wrapper (:class:`memprobe.agent.inject.CountingWSGI`
with a recorder) around a small WSGI app that reads a JSON body, called in-process, without a
capture buffer, with one that records every request (redacting one JSON field), with one whose
route filter does not take the request (teed, then dropped), and with a full one.

Prints the median of ``--repeats`` runs of ``--requests`` calls each, in µs per request, and the
difference to no capture. No server and no socket: what is measured is the capture's own work
in the request's thread, which a real request's parsing and network come on top of.

    python bench/capture_cost.py [--requests 20000] [--repeats 7]
"""
from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from memprobe.agent.inject import CountingWSGI, Served
from memprobe.agent.watching import Recorder
from memprobe.capture.record import CaptureBuffer

BODY = json.dumps({"id": 12345, "customer": {"name": "Ada", "token": "tok-9f8e7d6c5b4a"},
                   "items": [1, 2, 3], "note": "x" * 120}).encode()


def _app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body[:2]]


def _environ() -> dict[str, Any]:
    return {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/orders", "QUERY_STRING": "page=2",
            "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(BODY)), "HTTP_ACCEPT": "*/*",
            "HTTP_AUTHORIZATION": "Bearer abcdef", "wsgi.input": io.BytesIO(BODY)}


def _run(capture: Callable[[], CaptureBuffer | None], requests: int) -> tuple[float, float]:
    recorder = Recorder(3600.0)
    recorder.capture = capture()
    served = Served()
    wrapped = CountingWSGI(_app, lambda: served, lambda: recorder)
    environs = [_environ() for _ in range(requests)]
    collecting = 0
    t0 = time.perf_counter_ns()
    for i, environ in enumerate(environs):
        body = wrapped(environ, lambda *a: None)
        for _ in body:
            pass
        body.close()  # type: ignore[attr-defined]
        if recorder.capture is not None and i % 1000 == 999:
            c0 = time.perf_counter_ns()
            recorder.capture.take()  # as the parent does each poll: on the control thread
            collecting += time.perf_counter_ns() - c0
    return (time.perf_counter_ns() - t0 - collecting) / requests / 1000, collecting / requests / 1000


def main() -> None:
    """Print µs per request for each case."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    big = {"max_requests": 10**9, "max_bytes": 1 << 40}
    full = CaptureBuffer(["*"], max_requests=1)
    full._full = True  # noqa: SLF001 - a buffer whose bounds were reached
    cases: dict[str, Callable[[], CaptureBuffer | None]] = {
        "no capture": lambda: None,
        "captured (redacting 1 JSON field)": lambda: CaptureBuffer(["POST /api/orders"], redact=["token"], **big),
        "captured (no field redacted)": lambda: CaptureBuffer(["POST /api/orders"], **big),
        "a POST, only GET /elsewhere asked": lambda: CaptureBuffer(["GET /elsewhere"], **big),
        "teed, /elsewhere (any method) asked": lambda: CaptureBuffer(["/elsewhere"], **big),
        "buffer full": lambda: full,
    }
    results = {}
    for name, make in cases.items():
        runs = [_run(make, args.requests) for _ in range(args.repeats)]
        results[name] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
    base = results["no capture"][0]
    print(f"{'case':<36} {'µs/request':>11} {'+µs':>7} {'collecting, µs/request':>23}")
    for name, (us, later) in results.items():
        print(f"{name:<36} {us:>11.2f} {us - base:>+7.2f} {later:>23.2f}")
    print("µs/request: in the request's thread; collecting: on the control thread, at each collection "
          "(the redaction), per request captured")


if __name__ == "__main__":
    main()
