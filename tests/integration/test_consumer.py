"""Consumer worker on the real broker: the same signal, re-sent with the same metadata."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sample_events
from broker_helpers import running_worker
from confluent_kafka import Consumer, Producer

from flowbus import cloudevents
from flowbus.catalog import caluma
from flowbus.consumer.dead_letter import Reason, read_dead_letter_headers
from flowbus.consumer.retry import ReceiverRetryPolicy as RetryPolicy
from flowbus.producer.event_producer import EventProducer
from flowbus.settings import get_settings
from flowbus.testing import isolated_receivers

pytestmark = pytest.mark.usefixtures("flowbus_env")
FAST_RETRY = RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.05)


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def send(signal, topic: str, sender: Any = None, **data: Any):
    """Send an event through a real producer; returns (metadata, validated data)."""
    validated = signal.validate_data(**data)
    metadata = signal.generate_signal_metadata()
    with EventProducer(synchronous=True, install_exit_handlers=False) as producer:
        producer.send(
            signal,
            metadata,
            validated,
            topic=topic,
            key=signal.resolve_key(validated),
            sender=sender,
        )
    return metadata, validated


def read_all(topic: str, expected: int, timeout: float = 30.0) -> list:
    consumer = Consumer(
        {
            "bootstrap.servers": get_settings().kafka_bootstrap_servers,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                messages.append(message)
        # A little longer, to see anything beyond what was expected.
        extra_deadline = time.monotonic() + 1.0
        while time.monotonic() < extra_deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                messages.append(message)
    finally:
        consumer.close()
    return messages


class Recorder:
    """A receiver that records what it got, and can fail its first calls."""

    def __init__(self, fail_times: int = 0) -> None:
        self.fail_times = fail_times
        self.calls = 0
        self.handled: list[tuple[Any, Any, dict[str, Any]]] = []

    def __call__(self, sender, signal, metadata, from_event_bus, **data):
        self.calls += 1
        if self.calls <= self.fail_times:
            raise RuntimeError(f"receiver failure {self.calls}")
        self.handled.append((sender, metadata, data, from_event_bus))
        return "ok"


def test_receiver_gets_the_same_metadata_and_data(unique_topic, unique_group):
    topic = unique_topic()
    with isolated_receivers():
        recorder = Recorder()
        caluma.WORK_ITEM_POST_COMPLETE.connect(recorder)
        with running_worker(topic, unique_group):
            sent_metadata, sent_data = send(
                caluma.WORK_ITEM_POST_COMPLETE,
                topic,
                sender="caluma.workflow.WorkItem",
                **sample_events.work_item_event(),
            )
            wait_for(lambda: recorder.handled)
    sender, metadata, data, from_event_bus = recorder.handled[0]
    assert metadata == sent_metadata  # id, time, source, sourcehost, sourcelib, minor, spec
    for field in ("id", "time", "source", "sourcehost", "sourcelib", "minorversion"):
        assert getattr(metadata, field) == getattr(sent_metadata, field)
    assert data == sent_data
    assert sender == "caluma.workflow.WorkItem"
    assert from_event_bus is True


def test_events_of_one_case_arrive_in_send_order(unique_topic, unique_group):
    topic = unique_topic(partitions=3)
    cases = [uuid.uuid4() for _ in range(3)]
    sequence = [
        caluma.WORK_ITEM_POST_COMPLETE,
        caluma.WORK_ITEM_POST_CREATE,
        caluma.CASE_POST_COMPLETE,
    ]
    received: list[tuple[str, str]] = []

    def record(sender, signal, metadata, **data):
        case_id = data["case"].id if "case" in data else data["work_item"].case_id
        received.append((str(case_id), str(metadata.id)))

    sent: dict[str, list[str]] = {str(c): [] for c in cases}
    with isolated_receivers():
        for signal in sequence:
            signal.connect(record)
        for _round in range(3):  # interleave the cases, three lifecycles each
            for case_id in cases:
                for signal in sequence:
                    data = (
                        sample_events.case_event(case_id)
                        if signal is caluma.CASE_POST_COMPLETE
                        else sample_events.work_item_event(case_id)
                    )
                    metadata, _ = send(signal, topic, **data)
                    sent[str(case_id)].append(str(metadata.id))
        with running_worker(topic, unique_group):
            wait_for(lambda: len(received) == 27)
    for case_id, ids in sent.items():
        assert [event_id for c, event_id in received if c == case_id] == ids


def test_receiver_failing_twice_then_succeeding_is_handled_once(unique_topic, unique_group):
    topic = unique_topic()
    flaky, steady = Recorder(fail_times=2), Recorder()
    with isolated_receivers():
        caluma.WORK_ITEM_POST_COMPLETE.connect(flaky)
        caluma.WORK_ITEM_POST_COMPLETE.connect(steady)
        with running_worker(topic, unique_group, retry=FAST_RETRY) as worker:
            send(caluma.WORK_ITEM_POST_COMPLETE, topic, **sample_events.work_item_event())
            wait_for(lambda: worker.stats.handled == 1)
    assert flaky.calls == 3 and len(flaky.handled) == 1
    assert steady.calls == 1  # only the failing receiver is retried
    assert worker.stats.dead_lettered == 0 and worker.stats.retried == 1
    assert read_all(f"{topic}.dlq", expected=0, timeout=2) == []


def test_receiver_always_failing_is_dead_lettered_with_error_headers(unique_topic, unique_group):
    topic = unique_topic()
    broken, steady = Recorder(fail_times=10**6), Recorder()
    with isolated_receivers():
        caluma.WORK_ITEM_POST_COMPLETE.connect(broken)
        caluma.WORK_ITEM_POST_COMPLETE.connect(steady)
        with running_worker(topic, unique_group, retry=FAST_RETRY) as worker:
            metadata, _ = send(
                caluma.WORK_ITEM_POST_COMPLETE, topic, **sample_events.work_item_event()
            )
            wait_for(lambda: worker.stats.handled == 1)
    assert broken.calls == 3 and steady.calls == 1
    [letter] = read_all(f"{topic}.dlq", expected=1)
    info = read_dead_letter_headers(letter.headers())
    assert info["reason"] == Reason.RECEIVER_FAILED.value
    assert info["error-type"] == "builtins.RuntimeError"
    assert info["error-message"] == "receiver failure 3"
    assert info["failed-receivers"].endswith("Recorder")
    assert info["attempts"] == "3"
    assert (info["original-topic"], info["original-partition"], info["original-offset"]) == (
        topic,
        "0",
        "0",
    )
    assert info["group"] == unique_group
    original = dict(cloudevents.header_pairs(letter.headers()))
    assert original[cloudevents.ID] == str(metadata.id).encode()  # original headers kept
    assert letter.key() == str(sample_events_case_id(letter)).encode()


def sample_events_case_id(letter) -> str:
    return dict(cloudevents.header_pairs(letter.headers()))[cloudevents.PARTITIONKEY].decode()


def test_bad_messages_are_dead_lettered_and_the_next_good_one_handled(unique_topic, unique_group):
    topic = unique_topic()
    recorder = Recorder()
    good_headers = cloudevents.to_headers(caluma.WORK_ITEM_POST_COMPLETE.generate_signal_metadata())
    unknown_type = [(k, b"org.flowbus.nowhere.thing.happened.v1" if k == cloudevents.TYPE else v)
                    for k, v in good_headers]  # fmt: skip
    missing_id = [(k, v) for k, v in good_headers if k != cloudevents.ID]
    raw = Producer({"bootstrap.servers": get_settings().kafka_bootstrap_servers})
    raw.produce(topic, value=b"\x00\x00garbage bytes", headers=good_headers)
    raw.produce(topic, value=b"irrelevant", headers=unknown_type)
    raw.produce(topic, value=b"irrelevant", headers=missing_id)
    assert raw.flush(30) == 0
    with isolated_receivers():
        caluma.WORK_ITEM_POST_COMPLETE.connect(recorder)
        with running_worker(topic, unique_group) as worker:
            good, _ = send(caluma.WORK_ITEM_POST_COMPLETE, topic, **sample_events.work_item_event())
            wait_for(lambda: worker.stats.handled == 4)
    assert [m.id for _, m, _, _ in recorder.handled] == [good.id]
    letters = read_all(f"{topic}.dlq", expected=3)
    reasons = [read_dead_letter_headers(m.headers()) for m in letters]
    assert [(r["reason"], r["original-offset"]) for r in reasons] == [
        (Reason.UNDECODABLE.value, "0"),
        (Reason.UNKNOWN_EVENT_TYPE.value, "1"),
        (Reason.MALFORMED_HEADERS.value, "2"),
    ]
    assert "org.flowbus.nowhere.thing.happened.v1" in reasons[1]["error-message"]
    assert "ce_id" in reasons[2]["error-message"] and "missing" in reasons[2]["error-message"]
    assert [m.value() for m in letters] == [b"\x00\x00garbage bytes", b"irrelevant", b"irrelevant"]


def test_a_slow_receiver_at_concurrency_1_keeps_the_worker_in_its_group(
    unique_topic, unique_group, caplog
):
    # At concurrency 1 the handler thread polls between its records; while it sits in a
    # receiver longer than max.poll.interval.ms, the worker's own thread must poll instead.
    topic = unique_topic()
    handled: list[str] = []

    def slow(sender, signal, metadata, **data):
        if not handled:
            time.sleep(9.0)
        handled.append(str(metadata.id))

    sent = []
    with isolated_receivers():
        caluma.WORK_ITEM_POST_COMPLETE.connect(slow)
        for _ in range(3):
            metadata, _ = send(
                caluma.WORK_ITEM_POST_COMPLETE, topic, **sample_events.work_item_event()
            )
            sent.append(str(metadata.id))
        caplog.set_level("INFO")
        config = {"max.poll.interval.ms": 6000, "session.timeout.ms": 6000}
        with running_worker(
            topic, unique_group, concurrency=1, receiver_timeout=None, kafka_config=config
        ) as worker:
            wait_for(lambda: len(handled) == 3)
            log = caplog.text
            assert "MAXPOLL" not in log and "max.poll.interval" not in log
            assert "partitions revoked" not in log and "partitions lost" not in log
            wait_for(lambda: worker.engine is not None and worker.engine.committable())
            assert worker.stats.handled == 3
    assert handled == sent
    assert log.count("partitions assigned") == 1
