"""A real worker reporting to WorkerMetrics: what it handled shows up in /metrics."""

from __future__ import annotations

import threading
import uuid

import httpx
import pytest
import sample_events
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from flowbus import cloudevents
from flowbus.catalog import caluma
from flowbus.consumer.metrics import WorkerMetrics
from flowbus.consumer.retry import ReceiverRetryPolicy as RetryPolicy
from flowbus.consumer.worker import Worker
from flowbus.metadata import EventMetadata
from flowbus.producer.event_producer import EventProducer
from flowbus.settings import get_settings
from flowbus.testing import isolated_receivers

pytestmark = pytest.mark.usefixtures("flowbus_env")


def send_known_event(topic: str) -> None:
    signal = caluma.WORK_ITEM_POST_COMPLETE
    data = signal.validate_data(**sample_events.work_item_event())
    with EventProducer(synchronous=True, install_exit_handlers=False) as producer:
        producer.send(signal, signal.generate_signal_metadata(), data, topic=topic)


def send_unknown_event(topic: str) -> None:
    metadata = EventMetadata(event_type=f"org.example.unheard.of.{uuid.uuid4().hex}.v1")
    producer = Producer({"bootstrap.servers": get_settings().kafka_bootstrap_servers})
    producer.produce(topic, value=b"\x00", headers=cloudevents.to_headers(metadata))
    assert producer.flush(30) == 0


def test_worker_counts_in_its_metrics(unique_topic, unique_group):
    topic = unique_topic()
    send_known_event(topic)
    send_unknown_event(topic)
    metrics = WorkerMetrics()
    server = metrics.serve(0)
    worker = Worker(
        [topic], unique_group, metrics=metrics, retry=RetryPolicy(max_attempts=1), poll_timeout=0.2
    )
    guard = threading.Timer(120, worker.stop)  # never hang the suite if something breaks
    guard.start()
    try:
        with isolated_receivers():
            caluma.WORK_ITEM_POST_COMPLETE.connect(lambda sender, **kwargs: None)
            stats = worker.run(max_messages=2, install_signal_handlers=False)
        with httpx.Client(trust_env=False, timeout=10) as client:
            text = client.get(server.url + "/metrics").text
            health = client.get(server.url + "/healthz")
    finally:
        guard.cancel()
        metrics.close()

    assert stats.handled == 2
    found = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    known = (("event_type", caluma.WORK_ITEM_POST_COMPLETE.event_type),)
    unknown = (("event_type", "unknown"),)
    assert found[("flowbus_consumer_events_consumed_total", known)] == 1
    assert found[("flowbus_consumer_events_resent_total", known)] == 1
    assert found[("flowbus_consumer_events_consumed_total", unknown)] == 1
    dead = (("event_type", "unknown"), ("reason", "unknown-event-type"))
    assert found[("flowbus_consumer_events_dead_lettered_total", dead)] == 1
    assert found[("flowbus_consumer_handling_seconds_count", ())] == 2
    assert found[("flowbus_consumer_end_to_end_seconds_count", ())] == 1
    assert health.status_code == 200
