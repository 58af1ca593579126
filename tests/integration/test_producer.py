"""The producer against a real broker: headers, partitioning, idempotence, shutdown, restarts,
forwarding and ``flowbus produce``."""

from __future__ import annotations

import json
import logging
import re
import signal as signals
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import pytest
import sample_events
from cloudevents.v1.kafka import KafkaMessage, from_binary
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from tcp_proxy import TcpProxy

from flowbus import cloudevents
from flowbus.avro.serializer import EventDeserializer
from flowbus.backoff import Backoff
from flowbus.catalog import caluma
from flowbus.catalog.models import CaseStatus, WorkItemStatus
from flowbus.metadata import EventMetadata
from flowbus.producer.event_producer import EventProducer
from flowbus.producer.forwarding import start_forwarding
from flowbus.settings import FlowbusSettings
from flowbus.signals import WorkflowSignal
from flowbus.testing import capture_events, isolated_receivers

SUPPORT = Path(__file__).parent / "support"
COMPLETED = caluma.WORK_ITEM_POST_COMPLETE
CREATED = caluma.WORK_ITEM_POST_CREATE
CASE_COMPLETED = caluma.CASE_POST_COMPLETE
#: Every header a flowbus record carries when no trace context is active.
HEADERS = {
    "ce_specversion",
    "ce_id",
    "ce_source",
    "ce_type",
    "ce_time",
    "content-type",
    "ce_minorversion",
    "ce_sourcehost",
    "ce_sourcelib",
    "ce_partitionkey",
    "ce_sender",
    "ce_dataschema",
}
TASKS = ("review", "decision")
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
T = TypeVar("T")


@pytest.fixture(autouse=True)
def _isolated_receivers() -> Iterator[None]:
    with isolated_receivers():
        yield


# --- helpers --------------------------------------------------------------------------------


def settings_for(
    bootstrap: str, registry_url: str | None = None, **changes: Any
) -> FlowbusSettings:
    """Producer settings; without ``registry_url``, the registry-free single-object framing."""
    return FlowbusSettings(
        kafka_bootstrap_servers=bootstrap,
        schema_registry_url=registry_url,
        schema_auto_register=registry_url is not None,
        **changes,
    )


def record_count(bootstrap: str, topic: str) -> int:
    """How many records the topic holds (sum of the partitions' watermark spans)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"count-{uuid.uuid4().hex}"})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        spans = [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30) for p in partitions
        ]
    finally:
        consumer.close()
    return sum(high - low for low, high in spans)


def read_records(bootstrap: str, topic: str, timeout: float = 60.0) -> list[Message]:
    """Every record the topic holds now, in offset order within each partition."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        last: dict[int, int] = {}
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
            if high > low:
                last[partition] = high - 1
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in last])
        records: list[Message] = []
        deadline = time.monotonic() + timeout
        while last:
            assert time.monotonic() < deadline, f"records of {topic} not read within {timeout}s"
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            records.append(message)
            if message.offset() >= last.get(message.partition(), -1):
                last.pop(message.partition(), None)
    finally:
        consumer.close()
    return sorted(records, key=lambda m: (m.partition(), m.offset()))


def headers_of(record: Message) -> dict[str, str]:
    names = [name for name, _ in record.headers()]
    assert len(names) == len(set(names)), f"a header appears twice: {names}"
    return {name: value.decode() for name, value in record.headers()}


def wait_for(probe: Callable[[], T | None], timeout: float = 30.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        assert time.monotonic() < deadline, f"{what} not reached within {timeout}s"
        time.sleep(0.1)


def completed_work_item(case_id: uuid.UUID, task: str = "review") -> dict[str, Any]:
    return COMPLETED.validate_data(
        **sample_events.work_item_event(case_id, task_slug=task, status=WorkItemStatus.COMPLETED)
    )


def flowbus_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "flowbus", *args]


# --- 1. headers -----------------------------------------------------------------------------


@pytest.mark.parametrize("registry", [False, True], ids=["single-object", "registry"])
def test_record_carries_exactly_the_cloudevents_headers(kafka_stack, unique_topic, registry):
    topic = unique_topic()
    settings = settings_for(
        kafka_stack.bootstrap_servers, kafka_stack.schema_registry_url if registry else None
    )
    case_id = uuid.uuid4()
    data = completed_work_item(case_id)
    metadata = COMPLETED.generate_signal_metadata()
    assert cloudevents.current_traceparent() is None  # no trace context is active here

    with EventProducer(
        settings=settings, synchronous=True, install_exit_handlers=False
    ) as producer:
        report = producer.send(
            COMPLETED, metadata, data, topic=topic, key=str(case_id), sender="caluma.workflow"
        )

    (record,) = read_records(kafka_stack.bootstrap_servers, topic)
    assert report is not None
    assert (record.topic(), record.partition(), record.offset()) == (
        report.topic,
        report.partition,
        report.offset,
    )
    assert report.event_id == str(metadata.id)
    assert record.key() == str(case_id).encode()
    headers = headers_of(record)
    assert set(headers) == HEADERS
    assert {k: v for k, v in headers.items() if k not in ("ce_time", "ce_dataschema")} == {
        "ce_specversion": "1.0",
        "ce_id": str(metadata.id),
        "ce_source": metadata.source,
        "ce_type": "org.flowbus.caluma.work_item.post_complete.v1",
        "content-type": "application/avro",
        "ce_minorversion": str(metadata.minorversion),
        "ce_sourcehost": metadata.sourcehost,
        "ce_sourcelib": ".".join(map(str, metadata.sourcelib)),
        "ce_partitionkey": str(case_id),
        "ce_sender": "caluma.workflow",
    }
    assert RFC3339_UTC.match(headers["ce_time"]), headers["ce_time"]
    assert datetime.fromisoformat(headers["ce_time"]) == metadata.time

    value = record.value()
    if registry:
        subject = f"{topic}-{COMPLETED.event_type}"
        latest = SchemaRegistryClient({"url": kafka_stack.schema_registry_url}).get_latest_version(
            subject
        )
        assert value[:1] == b"\x00"
        assert int.from_bytes(value[1:5], "big") == latest.schema_id
        assert headers["ce_dataschema"] == f"{subject}/{latest.version}"
    else:
        assert value[:2] == b"\xc3\x01"
        assert headers["ce_dataschema"].startswith(f"schemas/{COMPLETED.event_type}/")
    assert EventDeserializer.from_settings(settings).deserialize(COMPLETED, value, topic) == data

    # The CloudEvents SDK's own Kafka binding reads the record as the same event.
    event = from_binary(
        KafkaMessage(headers=dict(record.headers()), key=record.key(), value=value),
        data_unmarshaller=lambda raw: raw,
    )
    assert event["specversion"] == "1.0"
    assert event["id"] == str(metadata.id)
    assert event["type"] == metadata.event_type
    assert event["source"] == metadata.source
    assert datetime.fromisoformat(event["time"]) == metadata.time
    assert event["datacontenttype"] == "application/avro"
    assert event["dataschema"] == headers["ce_dataschema"]
    assert event.get_data() == value


def test_traceparent_header_only_while_a_trace_context_is_active(
    kafka_stack, unique_topic, monkeypatch
):
    # opentelemetry is not a dependency: without it there is never a trace context.
    assert cloudevents.current_traceparent() is None
    topic = unique_topic()
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    settings = settings_for(kafka_stack.bootstrap_servers)
    with EventProducer(
        settings=settings, synchronous=True, install_exit_handlers=False
    ) as producer:
        case_id = uuid.uuid4()
        without = COMPLETED.generate_signal_metadata()
        producer.send(COMPLETED, without, completed_work_item(case_id), topic=topic)
        # What the OpenTelemetry propagator would return inside an active span.
        monkeypatch.setattr(cloudevents, "current_traceparent", lambda: traceparent)
        within = COMPLETED.generate_signal_metadata()
        producer.send(COMPLETED, within, completed_work_item(case_id), topic=topic)

    first, second = (headers_of(r) for r in read_records(kafka_stack.bootstrap_servers, topic))
    assert first["ce_id"] == str(without.id)
    assert "traceparent" not in first
    assert second["ce_id"] == str(within.id)
    assert second["traceparent"] == traceparent
    # No key and no sender given: those extensions are absent rather than empty.
    assert set(first) == HEADERS - {"ce_partitionkey", "ce_sender"}


# --- 2. partitioning ------------------------------------------------------------------------


def test_events_of_one_case_share_a_partition_in_send_order(kafka_stack, unique_topic):
    topic = unique_topic(partitions=6)
    config = {s.event_type: [{"topic": topic}] for s in (CREATED, COMPLETED, CASE_COMPLETED)}
    case_ids = [
        uuid.uuid5(uuid.NAMESPACE_URL, f"https://caluma.example/case/{n}") for n in range(8)
    ]
    items = {c: {t: sample_events.work_item(c, task=t) for t in TASKS} for c in case_ids}

    def created(case_id: uuid.UUID, task: str) -> dict[str, Any]:
        return {"work_item": items[case_id][task], "user": sample_events.user(), "context": {}}

    def completed(case_id: uuid.UUID, task: str) -> dict[str, Any]:
        item = items[case_id][task].model_copy(
            update={
                "status": WorkItemStatus.COMPLETED,
                "closed_at": sample_events.BASE_TIME + timedelta(hours=1),
                "closed_by_user": "alice",
            }
        )
        return {"work_item": item, "user": sample_events.user(), "context": {}}

    def case_completed(case_id: uuid.UUID, _: str) -> dict[str, Any]:
        case = sample_events.case(case_id, status=CaseStatus.COMPLETED)
        return {"case": case, "user": sample_events.user(), "context": {}}

    steps: list[tuple[WorkflowSignal, Callable[[uuid.UUID, str], dict[str, Any]], str]] = [
        (CREATED, created, "review"),
        (COMPLETED, completed, "review"),
        (CREATED, created, "decision"),
        (COMPLETED, completed, "decision"),
        (CASE_COMPLETED, case_completed, ""),
    ]
    settings = settings_for(kafka_stack.bootstrap_servers)
    with (
        EventProducer(settings=settings, install_exit_handlers=False) as producer,
        capture_events(CREATED, COMPLETED, CASE_COMPLETED) as sent,
    ):
        forwarder = start_forwarding(producer, config)
        try:
            for signal, data, task in steps:  # the cases' events interleave, as in real life
                for case_id in case_ids:
                    signal.send_event(sender="caluma.workflow", **data(case_id, task))
        finally:
            forwarder.stop()
        assert producer.flush(60) == 0
        assert producer.stats.failed == 0

    def case_of(data: dict[str, Any]) -> str:
        return str(data["case"].id if "case" in data else data["work_item"].case_id)

    records = read_records(kafka_stack.bootstrap_servers, topic)
    assert len(records) == len(sent) == len(steps) * len(case_ids)
    expected_types = [signal.event_type for signal, _, _ in steps]
    partitions_used = set()
    for case_id in map(str, case_ids):
        mine = [r for r in records if r.key() == case_id.encode()]
        partitions = {r.partition() for r in mine}
        assert len(partitions) == 1, f"case {case_id} spread over partitions {partitions}"
        partitions_used |= partitions
        in_offset_order = sorted(mine, key=lambda r: r.offset())
        assert [headers_of(r)["ce_type"] for r in in_offset_order] == expected_types
        sent_ids = [str(e.metadata.id) for e in sent if case_of(e.data) == case_id]
        assert [headers_of(r)["ce_id"] for r in in_offset_order] == sent_ids
    assert len(partitions_used) > 1  # the keys really spread the cases over partitions


# --- 3. idempotence -------------------------------------------------------------------------


def test_idempotent_producer_is_assigned_a_producer_id(kafka_stack, unique_topic, caplog):
    caplog.set_level(logging.DEBUG, logger="flowbus.librdkafka")
    topic = unique_topic()
    statistics: list[dict[str, Any]] = []
    kafka_config = {
        "statistics.interval.ms": 200,
        "stats_cb": lambda text: statistics.append(json.loads(text)),
        "debug": "conf",  # librdkafka logs the configuration it runs with
    }
    settings = settings_for(kafka_stack.bootstrap_servers, service_name="billing")
    with EventProducer(
        settings=settings, kafka_config=kafka_config, synchronous=True, install_exit_handlers=False
    ) as producer:
        case_id = uuid.uuid4()
        metadata = COMPLETED.generate_signal_metadata()
        producer.send(COMPLETED, metadata, completed_work_item(case_id), topic=topic)
        latest = wait_for(
            lambda: next(
                (
                    s
                    for s in reversed(statistics)
                    if s["txmsgs"] >= 1 and s["eos"]["producer_id"] >= 0
                ),
                None,
            ),
            what="statistics of a delivered message",
        )

    assert producer.config["enable.idempotence"] is True
    assert producer.config["acks"] == "all"
    assert latest["eos"]["idemp_state"] == "Assigned"
    assert latest["eos"]["producer_epoch"] >= 0
    assert latest["client_id"] == "flowbus-billing"
    # The configuration as librdkafka itself reports it ("  name = value" lines).
    effective = dict(
        line.strip().split(" = ", 1)
        for record in caplog.records
        if record.name == "flowbus.librdkafka"
        for line in [record.getMessage().split("]: ", 1)[-1]]
        if line.startswith("  ") and " = " in line
    )
    assert effective["enable.idempotence"] == "true"
    assert effective["request.required.acks"] == "-1"  # acks=all
    assert effective["client.id"] == "flowbus-billing"
    assert effective["metadata.broker.list"] == kafka_stack.bootstrap_servers


# --- 4. SIGTERM before the queue was flushed ----------------------------------------------


def test_sigterm_flushes_queued_events_then_exits_with_143(kafka_stack, unique_topic):
    topic = unique_topic()
    count = 25
    process = subprocess.Popen(
        [sys.executable, str(SUPPORT / "queue_then_wait.py"), kafka_stack.bootstrap_servers,
         topic, str(count)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=kafka_stack.env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the script prints once all events are queued
        assert line, process.stderr.read() if process.stderr else "no output"
        queued = json.loads(line)["queued"]
        assert len(queued) == count
        assert record_count(kafka_stack.bootstrap_servers, topic) == 0  # all still queued
        process.send_signal(signals.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)

    # The exit handler flushes, then exits as SystemExit(128 + SIGTERM).
    assert process.returncode == 128 + signals.SIGTERM, stderr
    assert "undelivered" not in stderr
    records = read_records(kafka_stack.bootstrap_servers, topic)
    assert [headers_of(r)["ce_id"] for r in records] == queued


def test_exit_handlers_respect_ignored_signals_and_are_restored(kafka_stack):
    previous_term = signals.getsignal(signals.SIGTERM)
    previous_int = signals.signal(signals.SIGINT, signals.SIG_IGN)  # as in a background job
    try:
        producer = EventProducer(settings=settings_for(kafka_stack.bootstrap_servers))
        try:
            assert signals.getsignal(signals.SIGTERM) == producer._on_exit_signal
            assert signals.getsignal(signals.SIGINT) == signals.SIG_IGN
        finally:
            assert producer.close() == 0
        assert signals.getsignal(signals.SIGTERM) == previous_term
        assert signals.getsignal(signals.SIGINT) == signals.SIG_IGN
    finally:
        signals.signal(signals.SIGINT, previous_int)


# --- 5. broker restart mid-stream -----------------------------------------------------------


def test_broker_restart_mid_stream_loses_and_duplicates_nothing(dedicated_broker):
    stack = dedicated_broker  # stopped and started again here
    bootstrap = stack.up().bootstrap_servers
    topic = f"restart-test-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=3)])[topic].result(timeout=30)
    total = 600
    case_ids = [uuid.uuid4() for _ in range(10)]
    sent: list[EventMetadata] = []
    sender_errors: list[BaseException] = []
    a_third_sent, restarted = threading.Event(), threading.Event()
    settings = settings_for(bootstrap)
    with EventProducer(settings=settings, install_exit_handlers=False) as producer:

        def keep_sending() -> None:
            try:
                for index in range(total):
                    if index == total // 3:
                        a_third_sent.set()  # the broker goes down while we keep sending
                    if index == 2 * total // 3:
                        restarted.wait(240)  # the last third goes to the restarted broker
                    case_id = case_ids[index % len(case_ids)]
                    metadata = COMPLETED.generate_signal_metadata()
                    data = completed_work_item(case_id)
                    producer.send(COMPLETED, metadata, data, topic=topic, key=str(case_id))
                    sent.append(metadata)
                    time.sleep(0.005)  # a steady stream rather than one burst
            except BaseException as exc:  # surfaced below
                sender_errors.append(exc)

        sender = threading.Thread(target=keep_sending, name="restart-test-sender")
        sender.start()
        try:
            assert a_third_sent.wait(60)
            stack.stop_kafka()  # SIGTERM, mid-stream
            time.sleep(3)
            stack.start_kafka()
        finally:
            restarted.set()
            sender.join(240)
        assert not sender.is_alive()
        assert sender_errors == []
        assert producer.flush(180) == 0
        stats = producer.stats

    assert (stats.sent, stats.delivered, stats.failed, stats.dropped) == (total, total, 0, 0)
    assert record_count(bootstrap, topic) == total
    ids = [headers_of(r)["ce_id"] for r in read_records(bootstrap, topic)]
    assert len(ids) == total
    assert sorted(ids) == sorted(str(m.id) for m in sent)  # each exactly once


# --- 6. forwarding --------------------------------------------------------------------------


def test_forwarding_config_decides_topics_keys_and_what_is_sent(kafka_stack, unique_topic):
    by_case, by_item, cases = unique_topic(), unique_topic(), unique_topic()
    config = {
        COMPLETED.event_type: [
            {"topic": by_case},  # the signal's own key path: work_item.case_id
            {"topic": by_item, "key_path": "work_item.id"},
        ],
        CASE_COMPLETED.event_type: [{"topic": cases, "enabled": False}],
    }
    case_id = uuid.uuid4()
    settings = settings_for(kafka_stack.bootstrap_servers)
    with EventProducer(settings=settings, install_exit_handlers=False) as producer:
        forwarder = start_forwarding(producer, json.dumps(config))
        try:
            with capture_events(COMPLETED) as completed:
                results = COMPLETED.send_event(
                    sender="caluma.workflow", **sample_events.work_item_event(case_id)
                )
            assert dict(results)[forwarder.forward] == 2  # two routes
            work_item = completed[0].data["work_item"]
            closed_case = sample_events.case_event(case_id)
            closed_case["case"] = closed_case["case"].model_copy(
                update={"status": CaseStatus.COMPLETED}
            )
            disabled = CASE_COMPLETED.send_event(**closed_case)
            assert dict(disabled)[forwarder.forward] == 0  # its only route is disabled
            unrouted = CREATED.send_event(**sample_events.work_item_event(case_id))
            assert forwarder.forward not in dict(unrouted)  # not configured: not connected
            # An event a consumer read from the bus and re-sends here must not travel again.
            replayed = COMPLETED.send_event_with_custom_metadata(
                COMPLETED.generate_signal_metadata(), **sample_events.work_item_event(case_id)
            )
            assert dict(replayed)[forwarder.forward] == 0
        finally:
            forwarder.stop()
        assert producer.flush(60) == 0
        assert producer.stats.sent == 2

    (keyed_by_case,) = read_records(kafka_stack.bootstrap_servers, by_case)
    (keyed_by_item,) = read_records(kafka_stack.bootstrap_servers, by_item)
    assert keyed_by_case.key() == str(case_id).encode()
    assert keyed_by_item.key() == str(work_item.id).encode()
    for record in (keyed_by_case, keyed_by_item):
        headers = headers_of(record)
        assert headers["ce_id"] == str(completed[0].metadata.id)
        assert headers["ce_sender"] == "caluma.workflow"
        assert headers["ce_partitionkey"] == record.key().decode()
    assert record_count(kafka_stack.bootstrap_servers, cases) == 0


# --- 6b. registry outage -------------------------------------------------------------------


def test_registry_outage_never_raises_into_send_event_and_the_events_follow(
    kafka_stack, unique_topic, caplog
):
    """An event type never sent before, with the registry unreachable (a cut proxy in front
    of the real one): send_event returns at once, and the events arrive once it answers."""
    topic = unique_topic()  # a fresh subject: its schema was never resolved
    registry = urlparse(kafka_stack.schema_registry_url)
    proxy = TcpProxy(registry.hostname, registry.port)  # not started: the registry is "down"
    proxied = kafka_stack.schema_registry_url.replace(f":{registry.port}/", f":{proxy.port}/", 1)
    settings = settings_for(kafka_stack.bootstrap_servers, proxied)
    case_id = uuid.uuid4()
    with EventProducer(
        settings=settings,
        install_exit_handlers=False,
        registry_backoff=Backoff(initial=0.2, maximum=1.0),
    ) as producer:
        forwarder = start_forwarding(producer, {COMPLETED.event_type: [{"topic": topic}]})
        try:
            with capture_events(COMPLETED) as sent:
                started = time.monotonic()
                for task in ("review", "decision", "archive"):
                    results = COMPLETED.send_event(
                        **sample_events.work_item_event(case_id, task_slug=task)
                    )
                    assert dict(results)[forwarder.forward] == 1  # handed on, nothing raised
                took = time.monotonic() - started
            assert took < 1.0, f"send_event took {took:.2f}s with the registry down"
            wait_for(
                lambda: (
                    any("waits for the schema registry" in r.getMessage() for r in caplog.records)
                    or None
                ),
                what="a failed registry attempt",
            )
            assert producer.pending == 3
            assert record_count(kafka_stack.bootstrap_servers, topic) == 0
            proxy.start()  # the registry answers again
            assert producer.flush(60) == 0
        finally:
            forwarder.stop()
            proxy.stop()
        assert (producer.stats.delivered, producer.stats.dropped) == (3, 0)

    records = read_records(kafka_stack.bootstrap_servers, topic)
    assert [headers_of(r)["ce_id"] for r in records] == [str(e.metadata.id) for e in sent]
    assert {r.key() for r in records} == {str(case_id).encode()}


# --- 6c. a burst before the schema is resolved ----------------------------------------------


def test_a_burst_before_the_schema_is_resolved_drops_nothing_and_keeps_each_key_in_order(
    kafka_stack, unique_topic
):
    """A fresh producer, its writer schema not resolved yet, gets 20,000 events over 200 keys
    sent flat out. Every event of a key with events waiting waits too (per-key order), so
    the waiting events must drain faster than the caller adds to them: when the preparing
    thread served delivery reports after each event, it handed the GIL to the caller each
    time, the queue (10,000) filled, and 3,000-10,000 events were dropped."""
    topic = unique_topic(6)
    count, keys = 20_000, 200
    case_ids = [uuid.uuid4() for _ in range(keys)]
    item = sample_events.work_item(case_ids[0])
    events = [
        {"work_item": item.model_copy(update={"case_id": case_ids[index % keys]}),
         "user": sample_events.user(), "context": {"request": f"r-{index}"}}
        for index in range(count)
    ]  # fmt: skip
    settings = settings_for(kafka_stack.bootstrap_servers, kafka_stack.schema_registry_url)
    with EventProducer(settings=settings, install_exit_handlers=False) as producer:
        forwarder = start_forwarding(producer, {COMPLETED.event_type: [{"topic": topic}]})
        try:
            with capture_events(COMPLETED) as sent:
                for data in events:
                    COMPLETED.send_event(**data)
        finally:
            forwarder.stop()
        assert producer.flush(120) == 0
        stats = producer.stats
    assert (stats.sent, stats.delivered, stats.failed, stats.dropped) == (count, count, 0, 0)

    records = read_records(kafka_stack.bootstrap_servers, topic)
    on_topic: dict[bytes, list[str]] = {}
    for record in records:  # in offset order within each partition: a key's order
        on_topic.setdefault(record.key(), []).append(headers_of(record)["ce_id"])
    in_send_order: dict[bytes, list[str]] = {}
    for event in sent:
        key = str(event.data["work_item"].case_id).encode()
        in_send_order.setdefault(key, []).append(str(event.metadata.id))
    assert on_topic == in_send_order


# --- 7. flowbus produce ---------------------------------------------------------------------


def _work_item_json(case_id: uuid.UUID) -> str:
    event = sample_events.work_item_event(case_id, status=WorkItemStatus.COMPLETED)
    return json.dumps({name: _jsonable(value) for name, value in event.items()})


def _jsonable(value: Any) -> Any:
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


OUTPUT = re.compile(
    r"^(?P<topic>\S+)\[(?P<partition>\d+)\]@(?P<offset>\d+) id=(?P<id>\S+) key=(?P<key>\S+)$"
)


def test_produce_command_prints_where_the_event_landed(kafka_stack, unique_topic):
    topic = unique_topic(partitions=3)
    case_id = uuid.uuid4()
    env = {**kafka_stack.env, "FLOWBUS_SCHEMA_AUTO_REGISTER": "true"}
    run = subprocess.run(
        flowbus_command("produce", COMPLETED.event_type, "--data", _work_item_json(case_id),
                        "--topic", topic, "--sender", "cli-test"),
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    match = OUTPUT.match(run.stdout.strip())
    assert match, run.stdout
    assert match["topic"] == topic
    assert match["key"] == str(case_id)
    (record,) = read_records(kafka_stack.bootstrap_servers, topic)
    assert (record.partition(), record.offset()) == (int(match["partition"]), int(match["offset"]))
    headers = headers_of(record)
    assert headers["ce_id"] == match["id"]
    assert headers["ce_type"] == COMPLETED.event_type
    assert headers["ce_sender"] == "cli-test"
    assert headers["ce_dataschema"].startswith(f"{topic}-{COMPLETED.event_type}/")


def test_produce_command_without_topic_follows_the_forwarding_routes(kafka_stack, unique_topic):
    by_case, by_item = unique_topic(), unique_topic()
    routes = {
        COMPLETED.event_type: [{"topic": by_case}, {"topic": by_item, "key_path": "work_item.id"}]
    }
    env = {
        **kafka_stack.env,
        "FLOWBUS_SCHEMA_AUTO_REGISTER": "true",
        "FLOWBUS_PRODUCER_CONFIG": json.dumps(routes),
    }
    case_id = uuid.uuid4()
    run = subprocess.run(
        flowbus_command("produce", COMPLETED.event_type, "--data", _work_item_json(case_id)),
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = [OUTPUT.match(line) for line in run.stdout.splitlines()]
    assert [m["topic"] for m in lines if m] == [by_case, by_item]
    (first, second) = (m for m in lines if m)
    assert first["id"] == second["id"]  # one event, two routes
    assert first["key"] == str(case_id)
    (record,) = read_records(kafka_stack.bootstrap_servers, by_item)
    assert record.key().decode() == second["key"] != str(case_id)


@pytest.mark.parametrize(
    ("arguments", "status", "message"),
    [
        (
            ["org.flowbus.caluma.work_item.post_explode.v1", "--data", "{}"],
            2,
            "unknown event type 'org.flowbus.caluma.work_item.post_explode.v1'",
        ),
        (
            [COMPLETED.event_type, "--data", "{not json"],
            2,
            "Invalid value for --data: not valid JSON",
        ),
        ([COMPLETED.event_type, "--data", "[1, 2]"], 2, "must be a JSON object"),
        (
            [
                COMPLETED.event_type,
                "--data",
                json.dumps({"user": {"username": "a"}, "context": {}}),
            ],
            2,
            f"cannot send '{COMPLETED.event_type}': argument 'work_item': missing",
        ),
        (
            [
                COMPLETED.event_type,
                "--data",
                '{"work_item": {"id": "nope"}, "user": {}, "context": {}}',
            ],
            2,
            f"cannot send '{COMPLETED.event_type}': "
            "argument 'work_item': expected WorkItemSnapshot",
        ),
    ],
    ids=["unknown-event-type", "bad-json", "not-an-object", "missing-argument", "invalid-data"],
)
def test_produce_command_rejects_bad_input(kafka_stack, unique_topic, arguments, status, message):
    topic = unique_topic()
    run = subprocess.run(
        flowbus_command("produce", *arguments, "--topic", topic),
        env=kafka_stack.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == status, run.stderr
    assert message in run.stderr
    assert "Traceback" not in run.stderr
    assert run.stdout == ""
    assert record_count(kafka_stack.bootstrap_servers, topic) == 0


@pytest.mark.parametrize(
    ("env", "with_topic", "status", "message"),
    [
        (
            {"FLOWBUS_KAFKA_CONFIG": '{"lingerms": 5}'},
            True,
            2,
            "invalid Kafka configuration (FLOWBUS_KAFKA_CONFIG / kafka_config): "
            'No such configuration property: "lingerms"',
        ),
        (
            {"FLOWBUS_RECEIVER_MODULES": '["caluma_receivers_that_do_not_exist"]'},
            True,
            2,
            "could not import receiver module 'caluma_receivers_that_do_not_exist'",
        ),
        (
            {"FLOWBUS_PRODUCER_CONFIG": "{not json"},
            False,
            2,
            "FLOWBUS_PRODUCER_CONFIG: not valid JSON",
        ),
        (
            {"FLOWBUS_PRODUCER_CONFIG": json.dumps({COMPLETED.event_type: [{"topic": ""}]})},
            False,
            2,
            f"FLOWBUS_PRODUCER_CONFIG[{COMPLETED.event_type!r}][0]: topic: String should have",
        ),
        ({}, False, 2, f"no topic: pass --topic or route {COMPLETED.event_type}"),
    ],
    ids=["kafka-config", "receiver-module", "routes-json", "routes-entry", "no-route"],
)
def test_produce_command_reports_bad_configuration(
    kafka_stack, unique_topic, env, with_topic, status, message
):
    topic = unique_topic()
    command = ["produce", COMPLETED.event_type, "--data", _work_item_json(uuid.uuid4())]
    run = subprocess.run(
        flowbus_command(*command, *(["--topic", topic] if with_topic else [])),
        env={**kafka_stack.env, "FLOWBUS_SCHEMA_AUTO_REGISTER": "true", **env},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == status, run.stderr
    assert message in run.stderr
    assert "Traceback" not in run.stderr
    assert record_count(kafka_stack.bootstrap_servers, topic) == 0


def test_produce_command_names_an_unregistered_subject(kafka_stack, unique_topic):
    topic = unique_topic()
    env = {
        key: value
        for key, value in kafka_stack.env.items()
        if not key.startswith("FLOWBUS_SCHEMA_AUTO")
    }
    run = subprocess.run(
        flowbus_command("produce", COMPLETED.event_type, "--data", _work_item_json(uuid.uuid4()),
                        "--topic", topic),
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 1
    assert f"{topic}-{COMPLETED.event_type}" in run.stderr
    assert "flowbus schemas register" in run.stderr
    assert record_count(kafka_stack.bootstrap_servers, topic) == 0


def test_produce_command_without_registry_uses_the_catalog_framing(kafka_stack, unique_topic):
    topic = unique_topic()
    env = {k: v for k, v in kafka_stack.env.items() if k != "SCHEMA_REGISTRY_URL"}
    run = subprocess.run(
        flowbus_command("produce", COMPLETED.event_type, "--data", _work_item_json(uuid.uuid4()),
                        "--topic", topic),
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    (record,) = read_records(kafka_stack.bootstrap_servers, topic)
    assert record.value()[:2] == b"\xc3\x01"
    dataschema = headers_of(record)["ce_dataschema"]
    assert re.fullmatch(rf"schemas/{re.escape(COMPLETED.event_type)}/\d+\.avsc", dataschema)
