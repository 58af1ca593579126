"""WorkerMetrics: counters and histograms over real HTTP, health by an injected clock."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from flowbus.consumer.metrics import MetricsServer, WorkerMetrics

KNOWN = "org.flowbus.test.metrics.done.v1"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def metrics(clock: FakeClock) -> Iterator[WorkerMetrics]:
    worker_metrics = WorkerMetrics(event_types={KNOWN}, clock=clock)
    yield worker_metrics
    worker_metrics.close()


@pytest.fixture
def server(metrics: WorkerMetrics) -> MetricsServer:
    return metrics.serve(0, health_timeout=60.0)


def get(server: MetricsServer, path: str) -> httpx.Response:
    with httpx.Client(trust_env=False, timeout=10) as client:
        return client.get(server.url + path)


def samples(server: MetricsServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = get(server, "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_counters_appear_in_metrics_output(metrics: WorkerMetrics, server: MetricsServer) -> None:
    metrics.consumed(KNOWN)
    metrics.consumed(KNOWN)
    metrics.resent(KNOWN)
    metrics.retried(KNOWN)
    metrics.dead_lettered(KNOWN, "receiver-failed")

    found = samples(server)

    known = (("event_type", KNOWN),)
    assert found[("flowbus_consumer_events_consumed_total", known)] == 2
    assert found[("flowbus_consumer_events_resent_total", known)] == 1
    assert found[("flowbus_consumer_events_retried_total", known)] == 1
    dead = (("event_type", KNOWN), ("reason", "receiver-failed"))
    assert found[("flowbus_consumer_events_dead_lettered_total", dead)] == 1


def test_unknown_event_types_and_reasons_are_not_label_values(
    metrics: WorkerMetrics, server: MetricsServer
) -> None:
    for i in range(5):
        metrics.consumed(f"attacker.chosen.type.{i}")
    metrics.dead_lettered("whatever", "not-a-reason")

    found = samples(server)

    consumed = {labels for name, labels in found if name.endswith("events_consumed_total")}
    assert consumed == {(("event_type", "unknown"),)}
    assert found[("flowbus_consumer_events_consumed_total", (("event_type", "unknown"),))] == 5
    dead = (("event_type", "unknown"), ("reason", "unknown"))
    assert found[("flowbus_consumer_events_dead_lettered_total", dead)] == 1


def test_defined_signals_are_label_values_by_default() -> None:
    import flowbus.catalog  # noqa: F401  (defines the catalog's signals)
    from flowbus.signals import WorkflowSignal

    defined = WorkflowSignal.all_signals()[0].event_type
    metrics = WorkerMetrics()

    assert metrics.event_type_label(defined) == defined
    assert metrics.event_type_label("no.such.type.v1") == "unknown"


def test_histograms_and_lag_appear_in_metrics_output(
    metrics: WorkerMetrics, server: MetricsServer
) -> None:
    metrics.observe_handling(0.003)
    metrics.observe_handling(2.0)
    metrics.observe_end_to_end(12.0)
    metrics.observe_end_to_end(-3.0)  # producer clock ahead: counted as 0
    metrics.set_lag("events", 2, 17)

    found = samples(server)

    assert found[("flowbus_consumer_handling_seconds_count", ())] == 2
    assert found[("flowbus_consumer_handling_seconds_sum", ())] == pytest.approx(2.003)
    assert found[("flowbus_consumer_handling_seconds_bucket", (("le", "0.005"),))] == 1
    assert found[("flowbus_consumer_end_to_end_seconds_count", ())] == 2
    assert found[("flowbus_consumer_end_to_end_seconds_sum", ())] == pytest.approx(12.0)
    assert found[("flowbus_consumer_end_to_end_seconds_bucket", (("le", "0.01"),))] == 1
    lag = (("partition", "2"), ("topic", "events"))
    assert found[("flowbus_consumer_lag_messages", lag)] == 17


def test_metrics_use_their_own_registry(metrics: WorkerMetrics) -> None:
    metrics.consumed(KNOWN)
    other = WorkerMetrics(event_types={KNOWN})  # a second worker in the process: no clash

    assert REGISTRY.get_sample_value("flowbus_consumer_events_consumed_total") is None
    assert (
        other.registry.get_sample_value(
            "flowbus_consumer_events_consumed_total", {"event_type": KNOWN}
        )
        is None
    )
    assert (
        metrics.registry.get_sample_value(
            "flowbus_consumer_events_consumed_total", {"event_type": KNOWN}
        )
        == 1
    )


def test_healthz_follows_the_last_successful_poll(
    metrics: WorkerMetrics, server: MetricsServer, clock: FakeClock
) -> None:
    response = get(server, "/healthz")
    assert (response.status_code, response.text) == (200, "ok\n")  # within the start grace

    clock.now += 61
    response = get(server, "/healthz")
    assert response.status_code == 503
    assert "no successful poll for 61.0s (limit 60s)" in response.text

    metrics.poll_succeeded()
    assert get(server, "/healthz").status_code == 200

    clock.now += 59.5
    assert get(server, "/healthz").status_code == 200
    clock.now += 1
    assert get(server, "/healthz").status_code == 503
    assert samples(server)[("flowbus_consumer_last_poll_age_seconds", ())] == 60.5


def test_unknown_paths_get_404(server: MetricsServer) -> None:
    response = get(server, "/nope")

    assert response.status_code == 404


def test_close_stops_serving(metrics: WorkerMetrics, server: MetricsServer) -> None:
    url = server.url
    metrics.close()

    with pytest.raises(httpx.ConnectError), httpx.Client(trust_env=False, timeout=5) as client:
        client.get(url + "/metrics")


def test_serve_binds_loopback_by_default(server: MetricsServer) -> None:
    assert server.host == "127.0.0.1"
    assert server.port > 0
