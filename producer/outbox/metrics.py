"""Prometheus metrics of an outbox relay, in a registry of their own.

``flowbus_outbox_pending``, ``flowbus_outbox_oldest_age_seconds`` and
``flowbus_outbox_rejected_rows`` are the figures ``flowbus outbox status`` prints, refreshed at
each lease renewal; alert on the age and on any rejected row.
``flowbus_outbox_rejected_total`` counts the rows this relay set aside.
"""

from __future__ import annotations

from typing import Any, TypeVar

from flowbus.extras import requires_extra

from .store import OutboxStatus

with requires_extra("metrics", "the outbox relay's Prometheus metrics"):
    from prometheus_client import (
        CollectorRegistry,
        Counter,
        Gauge,
        generate_latest,
        start_http_server,
    )

__all__ = ["OutboxMetrics"]

NAMESPACE = "flowbus_outbox"

M = TypeVar("M", Gauge, Counter)


class OutboxMetrics:
    """Backlog gauges and publish counters of one relay."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.pending = self._metric(Gauge, "pending", "Outbox rows not yet published.")
        self.oldest_age = self._metric(
            Gauge,
            "oldest_age_seconds",
            "Age of the oldest outbox row not yet published (0 when there is none).",
        )
        self.published_total = self._metric(
            Counter, "published", "Outbox rows the broker acknowledged."
        )
        self.failed_total = self._metric(
            Counter,
            "failed",
            "Failed delivery attempts of outbox rows (each stays and is retried).",
        )
        self.rejected_rows = self._metric(
            Gauge,
            "rejected_rows",
            "Outbox rows the broker rejected for good, kept until re-queued.",
        )
        self.rejected_total = self._metric(
            Counter, "rejected", "Outbox rows this relay set aside as rejected by the broker."
        )
        self._server: Any = None

    def _metric(self, kind: type[M], name: str, documentation: str) -> M:
        """A ``kind`` (Gauge, Counter) named ``flowbus_outbox_<name>`` in this registry."""
        return kind(f"{NAMESPACE}_{name}", documentation, registry=self.registry)

    def observe_status(self, status: OutboxStatus) -> None:
        self.pending.set(status.pending)
        self.oldest_age.set(status.oldest_age_seconds or 0.0)
        self.rejected_rows.set(status.rejected)

    def rejected(self, count: int) -> None:
        self.rejected_total.inc(count)

    def published(self, count: int) -> None:
        self.published_total.inc(count)

    def failed(self, count: int) -> None:
        self.failed_total.inc(count)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def serve(self, port: int, host: str = "0.0.0.0") -> int:  # noqa: S104 (a metrics port)
        """Serve ``/metrics`` on a daemon thread; returns the port (``0`` picks one)."""
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        return int(server.server_address[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
