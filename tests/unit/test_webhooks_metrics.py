"""DeliveryMetrics on its own, and a DeliveryEngine reporting to it (no network)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from flowbus.consumer.metrics import WorkerMetrics
from flowbus.consumer.webhooks.delivery import DeliveryEngine
from flowbus.consumer.webhooks.event import WebhookEvent
from flowbus.consumer.webhooks.http import HTTPResult
from flowbus.consumer.webhooks.metrics import DeliveryMetrics
from flowbus.consumer.webhooks.models import (
    AttemptOutcome,
    DeliveryStatus,
    Subscription,
)
from flowbus.consumer.webhooks.models import (
    DeliveryRetryPolicy as RetryPolicy,
)
from flowbus.consumer.webhooks.ssrf import CheckedURL, SSRFPolicy
from flowbus.consumer.webhooks.store import WebhookStore
from flowbus.errors import WebhookStoreError

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
PORT = 8080


def samples(registry: CollectorRegistry) -> Samples:
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def outcome(value: str) -> tuple[tuple[str, str], ...]:
    return (("outcome", value),)


def status(value: str) -> tuple[tuple[str, str], ...]:
    return (("status", value),)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)


def test_every_series_exists_at_zero_with_bounded_labels(registry: CollectorRegistry) -> None:
    DeliveryMetrics(registry)
    found = samples(registry)
    for value in AttemptOutcome:
        assert found[("flowbus_webhooks_attempts_total", outcome(value.value))] == 0
    finished = {
        labels for name, labels in found if name == "flowbus_webhooks_deliveries_finished_total"
    }
    assert finished == {status("delivered"), status("failed"), status("blocked")}
    assert found[("flowbus_webhooks_deliveries_queued_total", ())] == 0
    assert found[("flowbus_webhooks_retries_scheduled_total", ())] == 0
    assert found[("flowbus_webhooks_attempt_duration_seconds_count", ())] == 0
    assert found[("flowbus_webhooks_attempts_in_flight", ())] == 0
    assert math.isnan(found[("flowbus_webhooks_deliveries_pending", ())])  # nothing watched yet


def test_attempts_count_by_outcome_and_where_they_left_the_delivery(
    registry: CollectorRegistry,
) -> None:
    metrics = DeliveryMetrics(registry)
    metrics.queued(3)
    metrics.attempted(AttemptOutcome.HTTP_ERROR, 0.02, DeliveryStatus.PENDING)
    metrics.attempted(AttemptOutcome.DELIVERED, 0.03, DeliveryStatus.DELIVERED)
    metrics.attempted(AttemptOutcome.TIMEOUT, 10.0, DeliveryStatus.FAILED)
    metrics.attempted(AttemptOutcome.BLOCKED, 0.0, DeliveryStatus.BLOCKED)
    metrics.attempted(AttemptOutcome.DELIVERED, -1.0, None)  # recorded by another worker
    found = samples(registry)
    assert found[("flowbus_webhooks_deliveries_queued_total", ())] == 3
    assert found[("flowbus_webhooks_attempts_total", outcome("delivered"))] == 2
    assert found[("flowbus_webhooks_attempts_total", outcome("http_error"))] == 1
    assert found[("flowbus_webhooks_attempts_total", outcome("timeout"))] == 1
    assert found[("flowbus_webhooks_attempts_total", outcome("blocked"))] == 1
    assert found[("flowbus_webhooks_retries_scheduled_total", ())] == 1
    assert found[("flowbus_webhooks_deliveries_finished_total", status("delivered"))] == 1
    assert found[("flowbus_webhooks_deliveries_finished_total", status("failed"))] == 1
    assert found[("flowbus_webhooks_deliveries_finished_total", status("blocked"))] == 1
    assert found[("flowbus_webhooks_attempt_duration_seconds_count", ())] == 5
    assert found[("flowbus_webhooks_attempt_duration_seconds_sum", ())] == pytest.approx(10.05)
    assert found[("flowbus_webhooks_attempt_duration_seconds_bucket", (("le", "0.025"),))] == 3


def test_gauges_read_at_scrape_time_and_a_store_error_is_nan(
    registry: CollectorRegistry,
) -> None:
    metrics = DeliveryMetrics(registry)
    state: dict[str, Any] = {"in_flight": 2, "pending": 7}

    def pending() -> int:
        if isinstance(state["pending"], Exception):
            raise state["pending"]
        return int(state["pending"])

    metrics.watch(in_flight=lambda: int(state["in_flight"]), pending=pending)
    found = samples(registry)
    assert found[("flowbus_webhooks_attempts_in_flight", ())] == 2
    assert found[("flowbus_webhooks_deliveries_pending", ())] == 7
    state["pending"] = WebhookStoreError("webhook store sqlite:///x: disk I/O error")
    state["in_flight"] = 0
    found = samples(registry)
    assert math.isnan(found[("flowbus_webhooks_deliveries_pending", ())])
    assert found[("flowbus_webhooks_attempts_in_flight", ())] == 0


def test_they_share_the_workers_registry_and_nothing_global() -> None:
    worker = WorkerMetrics(event_types=set())
    DeliveryMetrics(worker.registry)
    text = worker.exposition().decode()
    assert "flowbus_webhooks_attempts_total" in text
    assert "flowbus_consumer_last_poll_age_seconds" in text
    assert REGISTRY.get_sample_value("flowbus_webhooks_deliveries_queued_total") is None
    DeliveryMetrics(CollectorRegistry())  # a second one elsewhere does not collide


# -- a DeliveryEngine reporting to it ---------------------------------------------------


class FakeClient:
    """Answers from a plan of statuses; records the targets it was asked to send to."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.sent: list[CheckedURL] = []

    def send(self, target: CheckedURL, **kwargs: Any) -> HTTPResult:
        self.sent.append(target)
        return HTTPResult(self.statuses.pop(0), 1.5)

    def close(self) -> None:
        pass


@pytest.fixture
def store(tmp_path: Path) -> Iterator[WebhookStore]:
    with WebhookStore.open(f"sqlite:///{tmp_path / 'webhooks.sqlite3'}") as opened:
        yield opened


def webhook_event() -> WebhookEvent:
    return WebhookEvent(
        id=str(uuid.uuid4()),
        type="org.flowbus.caluma.work_item.post_complete.v1",
        source="flowbus/caluma/app",
        time=datetime.now(UTC),
        data={"work_item": {"task_slug": "review-permit"}},
        sourcehost="test-host",
        sourcelib="0.1.0",
    )


def test_an_engine_reports_queued_attempts_and_final_statuses(
    store: WebhookStore, registry: CollectorRegistry
) -> None:
    retry = RetryPolicy(max_attempts=2, initial_backoff=1.0)
    ok = store.add_subscription(
        Subscription.create(event_pattern="*", url=f"http://127.0.0.1:{PORT}/ok", retry=retry)
    )
    blocked = store.add_subscription(
        Subscription.create(event_pattern="*", url=f"http://10.0.0.1:{PORT}/in", retry=retry)
    )
    metrics = DeliveryMetrics(registry)
    client = FakeClient(503, 200)
    engine = DeliveryEngine(
        store,
        policy=SSRFPolicy.from_allowlist(["127.0.0.1/32"], ports=[PORT]),
        client=client,  # type: ignore[arg-type]
        metrics=metrics,
    )
    created = engine.submit(webhook_event())
    assert len(created) == 2
    assert samples(registry)[("flowbus_webhooks_deliveries_pending", ())] == 2
    by_sub = {d.subscription_id: d for d in created}

    retried = engine.attempt(by_sub[ok.id], ok)
    assert retried is not None and retried.status is DeliveryStatus.PENDING
    delivered = engine.attempt(retried, ok)
    assert delivered is not None and delivered.status is DeliveryStatus.DELIVERED
    refused = engine.attempt(by_sub[blocked.id], blocked)
    assert refused is not None and refused.status is DeliveryStatus.BLOCKED

    found = samples(registry)
    assert found[("flowbus_webhooks_deliveries_queued_total", ())] == 2
    assert found[("flowbus_webhooks_attempts_total", outcome("http_error"))] == 1
    assert found[("flowbus_webhooks_attempts_total", outcome("delivered"))] == 1
    assert found[("flowbus_webhooks_attempts_total", outcome("blocked"))] == 1
    assert found[("flowbus_webhooks_retries_scheduled_total", ())] == 1
    assert found[("flowbus_webhooks_deliveries_finished_total", status("delivered"))] == 1
    assert found[("flowbus_webhooks_deliveries_finished_total", status("blocked"))] == 1
    assert found[("flowbus_webhooks_attempt_duration_seconds_count", ())] == 3
    assert found[("flowbus_webhooks_deliveries_pending", ())] == 0
    assert found[("flowbus_webhooks_attempts_in_flight", ())] == 0
    assert len(client.sent) == 2  # the blocked target was never sent to
