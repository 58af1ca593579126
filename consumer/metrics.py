"""Prometheus metrics of a consumer worker, and its ``/metrics`` and ``/healthz`` endpoints.

Metrics live in a registry of their own, so several workers (or tests) in one process do
not collide and nothing else leaks into the scrape. Label values stay bounded: an event
type is a label only when a signal is defined for it here (else ``unknown``, since
``ce_type`` comes from the wire), reasons are the dead-letter :class:`Reason` values,
and topic/partition labels are bounded by the worker's assignment.

``/healthz`` answers 503 ``unhealthy`` when the last successful poll is older than the
health timeout (counted from start until the first poll): a worker cut off from the
broker stops polling. Otherwise 200, with the body ``ok``, or ``degraded`` and one line
per reason (a partition paused by an infrastructure failure, receivers stuck past their
deadline): a degraded worker is alive and restarting it would not help, so a liveness
probe passes; alert on ``flowbus_consumer_degraded`` instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from flowbus.extras import requires_extra
from flowbus.signals import WorkflowSignal

from .dead_letter import Reason

with requires_extra("metrics", "Prometheus metrics"):
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        generate_latest,
    )

log = logging.getLogger(__name__)

UNKNOWN = "unknown"
NAMESPACE = "flowbus_consumer"
HANDLING_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
END_TO_END_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600)
_REASONS = frozenset(reason.value for reason in Reason)


def _is_defined(event_type: str) -> bool:
    try:
        WorkflowSignal.get_signal_by_type(event_type)
    except KeyError:
        return False
    return True


class MetricsServer:
    """The HTTP server behind :meth:`WorkerMetrics.serve`, running on a daemon thread."""

    def __init__(self, httpd: ThreadingHTTPServer) -> None:
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, name="flowbus-metrics-http", daemon=True
        )
        self._thread.start()

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class WorkerMetrics:
    """What a worker counts and measures; the worker calls one method per fact.

    ``event_types``: the types that may become label values; by default the signals
    defined in this process, looked up at each call (signals may be defined later).
    ``clock``: monotonic seconds, injectable for tests.
    """

    def __init__(
        self,
        *,
        event_types: Collection[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._event_types = event_types
        self._clock = clock
        self._started = clock()
        self._last_poll: float | None = None
        self._servers: list[MetricsServer] = []
        self._lock = threading.Lock()

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Counter:
            return Counter(name, doc, labels, namespace=NAMESPACE, registry=self.registry)

        self._consumed = counter(
            "events_consumed", "Messages taken from Kafka and handled.", ("event_type",)
        )
        self._resent = counter(
            "events_resent", "Events re-sent to local receivers without dead-lettering.",
            ("event_type",),
        )  # fmt: skip
        self._retried = counter(
            "events_retried", "Events whose failed receivers were called again.", ("event_type",)
        )
        self._dead_lettered = counter(
            "events_dead_lettered", "Messages sent to the dead-letter topic.",
            ("event_type", "reason"),
        )  # fmt: skip
        self._handling = Histogram(
            "handling_seconds", "Time to handle one message, retries included.",
            namespace=NAMESPACE, registry=self.registry, buckets=HANDLING_BUCKETS,
        )  # fmt: skip
        self._end_to_end = Histogram(
            "end_to_end_seconds", "Time from the event's ce_time to the end of its handling.",
            namespace=NAMESPACE, registry=self.registry, buckets=END_TO_END_BUCKETS,
        )  # fmt: skip
        self._lag = Gauge(
            "lag_messages", "Messages after the worker's position, per assigned partition.",
            ("topic", "partition"), namespace=NAMESPACE, registry=self.registry,
        )  # fmt: skip
        self._last_poll_age = Gauge(
            "last_poll_age_seconds", "Seconds since the last successful poll (or since start).",
            namespace=NAMESPACE, registry=self.registry,
        )  # fmt: skip
        self._last_poll_age.set_function(self.poll_age)
        self._paused = counter(
            "events_paused",
            "Attempts that failed on infrastructure and paused their partition.",
            ("event_type",),
        )

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, namespace=NAMESPACE, registry=self.registry)

        self._in_flight = gauge("in_flight", "Attempts running and dead letters unacknowledged.")
        self._buffered = gauge("buffered_messages", "Messages taken from Kafka, not finished.")
        self._paused_partitions = gauge(
            "paused_partitions", "Partitions paused by an infrastructure failure."
        )
        self._abandoned = gauge(
            "abandoned_receivers", "Receiver threads stuck past their deadline."
        )
        self._degraded_gauge = gauge("degraded", "1 while the worker is degraded (see /healthz).")
        self._degraded: list[str] = []

    # --- what the worker reports ---------------------------------------------------------

    def event_type_label(self, event_type: str) -> str:
        """``event_type`` if a signal is defined for it, else ``unknown``."""
        if self._event_types is None:
            return event_type if _is_defined(event_type) else UNKNOWN
        return event_type if event_type in self._event_types else UNKNOWN

    def consumed(self, event_type: str) -> None:
        self._consumed.labels(self.event_type_label(event_type)).inc()

    def resent(self, event_type: str) -> None:
        self._resent.labels(self.event_type_label(event_type)).inc()

    def retried(self, event_type: str) -> None:
        self._retried.labels(self.event_type_label(event_type)).inc()

    def dead_lettered(self, event_type: str, reason: str) -> None:
        label = reason if reason in _REASONS else UNKNOWN
        self._dead_lettered.labels(self.event_type_label(event_type), label).inc()

    def observe_handling(self, seconds: float) -> None:
        self._handling.observe(max(0.0, seconds))

    def observe_end_to_end(self, seconds: float) -> None:
        # Clocks of producer and consumer hosts differ: a negative age is skew, count it as 0.
        self._end_to_end.observe(max(0.0, seconds))

    def paused(self, event_type: str) -> None:
        self._paused.labels(self.event_type_label(event_type)).inc()

    def set_state(
        self,
        *,
        in_flight: int,
        buffered: int,
        paused_partitions: int,
        abandoned: int,
        degraded: list[str],
    ) -> None:
        """The worker's state now; ``degraded``: why it is degraded (empty: it is not)."""
        self._in_flight.set(in_flight)
        self._buffered.set(buffered)
        self._paused_partitions.set(paused_partitions)
        self._abandoned.set(abandoned)
        self._degraded_gauge.set(1 if degraded else 0)
        with self._lock:
            self._degraded = list(degraded)

    def health(self, health_timeout: float) -> tuple[int, str]:
        """The ``/healthz`` status code and body."""
        age = self.poll_age()
        if age >= health_timeout:
            return (
                503,
                f"unhealthy: no successful poll for {age:.1f}s (limit {health_timeout:g}s)\n",
            )
        with self._lock:
            degraded = list(self._degraded)
        if degraded:
            return 200, "degraded\n" + "".join(f"- {reason}\n" for reason in degraded)
        return 200, "ok\n"

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        self._lag.labels(topic, str(partition)).set(max(0, lag))

    def poll_succeeded(self) -> None:
        with self._lock:
            self._last_poll = self._clock()

    # --- health and exposition -----------------------------------------------------------

    def poll_age(self) -> float:
        """Seconds since the last successful poll, or since start if none yet."""
        with self._lock:
            since = self._started if self._last_poll is None else self._last_poll
        return max(0.0, self._clock() - since)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)

    def serve(
        self, port: int, host: str = "127.0.0.1", health_timeout: float = 60.0
    ) -> MetricsServer:
        """Serve GET ``/metrics`` and ``/healthz`` on ``host:port`` (0: any free port)."""
        if health_timeout <= 0:
            raise ValueError("health_timeout must be positive")
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._reply(200, metrics.exposition(), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    status, body = metrics.health(health_timeout)
                    self._reply(status, body.encode())
                else:
                    self._reply(404, b"not found: try /metrics or /healthz\n")

            def _reply(
                self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8"
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("metrics http: " + format, *args)

        server = MetricsServer(ThreadingHTTPServer((host, port), Handler))
        with self._lock:
            self._servers.append(server)
        log.info("serving /metrics and /healthz on %s", server.url)
        return server

    def close(self) -> None:
        """Stop the HTTP servers started by :meth:`serve`."""
        with self._lock:
            servers, self._servers = self._servers, []
        for server in servers:
            server.close()
