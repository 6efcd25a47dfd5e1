"""The fleet view through tools that exist: an OpenMetrics/Prometheus endpoint (prometheus_client,
the ``watch`` extra) with per-route retention, per-worker memory and the time to the limit, so
Prometheus and Grafana aggregate many machines. Served on 127.0.0.1 unless an address is given:
a report of routes and pids is nobody else's business by default.

Each scrape reads the report as it stands (``state()``): nothing is kept here.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

from memprobe.errors import MissingDependency, UsageError
from memprobe.results.watch import WatchResult

#: where the endpoint listens unless told otherwise
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9464  # the port OpenTelemetry's Prometheus exporter uses


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ModuleNotFoundError:
        raise MissingDependency("prometheus_client (for the metrics endpoint)", "memprobe[watch]") from None
    return prometheus_client


def parse_address(address: str | int | None) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT``, ``PORT`` or None (127.0.0.1:9464) as (host, port)."""
    if address is None:
        return DEFAULT_HOST, DEFAULT_PORT
    if isinstance(address, int):
        return DEFAULT_HOST, address
    host, sep, port = str(address).rpartition(":")
    if not sep:
        host, port = "", str(address)
    host = host.strip("[]") or DEFAULT_HOST
    if not port.isdigit() or int(port) > 65535:
        raise UsageError(f"not a metrics address: {address!r} (write PORT or HOST:PORT, e.g. 127.0.0.1:9464)")
    return host, int(port)


class _Collector:
    """Turns the report into metric families at each scrape."""

    def __init__(self, state: Callable[[], WatchResult | None]) -> None:
        self.state = state

    def describe(self) -> list[Any]:
        return []  # families depend on the report; nothing to declare up front

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        result = self.state()
        if result is None:
            return
        retained = GaugeMetricFamily("memprobe_watch_route_retained_bytes_per_request",
                                     "Bytes a request of the route keeps (the server's estimate)",
                                     labels=["route", "verdict"])
        error = GaugeMetricFamily("memprobe_watch_route_retained_bytes_per_request_error",
                                  "Standard error of the bytes a request keeps", labels=["route"])
        requests = CounterMetricFamily("memprobe_watch_route_requests", "Requests of the route seen",
                                       labels=["route"])
        for r in result.routes:
            requests.add_metric([r.route], r.requests)
            if r.bytes is not None:
                retained.add_metric([r.route, r.verdict], r.bytes.value)
                if math.isfinite(r.bytes.error):
                    error.add_metric([r.route], r.bytes.error)
        yield from (retained, error, requests)
        memory = {name: GaugeMetricFamily(f"memprobe_watch_worker_{name}_bytes", f"The worker's {name.upper()}",
                                          labels=["pid"]) for name in ("rss", "uss", "pss")}
        until = GaugeMetricFamily("memprobe_watch_worker_time_to_limit_seconds",
                                  "Seconds until the worker's share of the limit at its growth", labels=["pid"])
        for w in result.workers:
            if not w.alive:
                continue
            for name, family in memory.items():
                value = getattr(w, name)
                if value is not None:
                    family.add_metric([str(w.pid)], value)
            if w.time_to_limit_s is not None:
                until.add_metric([str(w.pid)], w.time_to_limit_s.value)
        yield from (*memory.values(), until)
        server = result.advice.time_to_limit_s if result.advice else None
        if server is not None:
            yield GaugeMetricFamily("memprobe_watch_time_to_limit_seconds",
                                    "Seconds until the server's cgroup limit at its growth", value=server.value)
        cg = result.cgroup
        if cg is not None and cg.usage is not None:
            yield GaugeMetricFamily("memprobe_watch_cgroup_usage_bytes", "The cgroup's memory usage", value=cg.usage)
            if cg.limit is not None:
                yield GaugeMetricFamily("memprobe_watch_cgroup_limit_bytes", "The cgroup's memory limit",
                                        value=cg.limit)


class MetricsServer:
    """A running endpoint: call it (or :meth:`stop`) to stop it; ``host`` and ``port`` say
    where it listens (the port the system chose when 0 was asked)."""

    def __init__(self, httpd: Any, thread: Any) -> None:
        self._httpd, self._thread = httpd, thread
        self.host, self.port = httpd.server_address[:2]

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    __call__ = stop


def serve_metrics(state: Callable[[], WatchResult | None], address: str | int | None = None) -> MetricsServer:
    """Serve the report ``state()`` answers at each scrape on ``address`` (127.0.0.1:9464 by
    default); answers the running server, which is its own ``stop()``."""
    prometheus = _prometheus()
    host, port = parse_address(address)
    registry = prometheus.CollectorRegistry(auto_describe=False)
    registry.register(_Collector(state))
    try:
        httpd, thread = prometheus.start_http_server(port, addr=host, registry=registry)
    except OSError as err:
        raise UsageError(f"cannot serve metrics on {host}:{port}: {err.strerror or err}") from None
    return MetricsServer(httpd, thread)
