"""Prometheus metrics of the webhook delivery engine, registered into a given registry.

``flowbus webhooks serve --metrics-port`` registers them into the consumer worker's
registry (:attr:`~flowbus.consumer.metrics.WorkerMetrics.registry`), so one ``/metrics``
shows both. Label values stay bounded: attempt outcomes are the
:class:`~.models.AttemptOutcome` values and final statuses the ending
:class:`~.models.DeliveryStatus` values; no subscription, URL or event label.

The gauges are read at scrape time: attempts in flight from the engine, pending deliveries
from the store (every worker sharing the database; ``NaN`` while the store is unreachable).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flowbus.errors import WebhookError
from flowbus.extras import requires_extra

from .models import AttemptOutcome, DeliveryStatus

with requires_extra("metrics", "Prometheus metrics"):
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ATTEMPT_BUCKETS", "NAMESPACE", "DeliveryMetrics"]

log = logging.getLogger(__name__)

NAMESPACE = "flowbus_webhooks"
#: Seconds; the longest allowed subscription timeout is 120 s.
ATTEMPT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class DeliveryMetrics:
    """What a :class:`~.delivery.DeliveryEngine` counts; the engine calls one method per fact."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, namespace=NAMESPACE, registry=registry)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, namespace=NAMESPACE, registry=registry)

        self._queued = counter(
            "deliveries_queued", "Deliveries created for consumed events (one per subscription)."
        )
        self._attempts = counter("attempts", "Delivery attempts made, by outcome.", ("outcome",))
        self._retries = counter(
            "retries_scheduled", "Failed attempts after which a retry was scheduled."
        )
        self._finished = counter(
            "deliveries_finished", "Deliveries that ended (delivered, failed or blocked).",
            ("status",),
        )  # fmt: skip
        self._duration = Histogram(
            "attempt_duration_seconds", "Time of one attempt: URL check, DNS, request, response.",
            namespace=NAMESPACE, registry=registry, buckets=ATTEMPT_BUCKETS,
        )  # fmt: skip
        self._in_flight = gauge("attempts_in_flight", "Attempts running in this process right now.")
        self._pending = gauge(
            "deliveries_pending", "Pending deliveries in the store (due or waiting to retry)."
        )
        for outcome in AttemptOutcome:  # every series exists from the start, at 0
            self._attempts.labels(outcome.value)
        for status in DeliveryStatus:
            if status is not DeliveryStatus.PENDING:
                self._finished.labels(status.value)
        self._in_flight.set_function(lambda: 0)
        self._pending.set_function(lambda: float("nan"))

    def watch(self, *, in_flight: Callable[[], int], pending: Callable[[], int]) -> None:
        """Read the gauges from these at scrape time (the engine calls this once).

        ``pending`` may raise a :class:`~flowbus.errors.WebhookError` (store unreachable):
        the gauge is then ``NaN`` and the scrape still succeeds.
        """

        def read_pending() -> float:
            try:
                return float(pending())
            except WebhookError as exc:
                log.debug("webhook metrics: pending deliveries unknown: %s", exc)
                return float("nan")

        self._in_flight.set_function(in_flight)
        self._pending.set_function(read_pending)

    def queued(self, count: int) -> None:
        """``count`` deliveries were created for one event."""
        self._queued.inc(count)

    def attempted(
        self, outcome: AttemptOutcome, seconds: float, status: DeliveryStatus | None
    ) -> None:
        """One attempt ended with ``outcome`` after ``seconds``.

        ``status``: where it left the delivery (``pending``: a retry is scheduled), or
        ``None`` when another worker had recorded this attempt first.
        """
        self._attempts.labels(outcome.value).inc()
        self._duration.observe(max(0.0, seconds))
        if status is DeliveryStatus.PENDING:
            self._retries.inc()
        elif status is not None:
            self._finished.labels(status.value).inc()
