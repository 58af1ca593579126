"""Section 2, producer pipeline: ``send_event`` to the broker's acknowledgement.

* flowbus: ``SIGNAL.send_event(**data)`` with forwarding to one topic: validation,
  metadata, the forwarding receiver, key resolution, Avro, CloudEvents headers,
  ``Producer.produce``; delivery reports served by the producer's poller thread. Timed from
  the first ``send_event`` until ``flush()`` returns, i.e. every event acknowledged.
* raw: confluent-kafka's ``Producer.produce`` of a value encoded once beforehand (fastavro,
  same framing) with the same header list, one key per event, ``poll(0)`` every 1000
  messages, same librdkafka configuration (flowbus's defaults: idempotence, acks=all,
  linger.ms=5, lz4, murmur2). Timed the same way, until ``flush()`` returns.

* hand-written: what a user would write without flowbus, per event: a plain dict (the
  event's data as fastavro takes it, built beforehand like flowbus's models) through
  fastavro ``schemaless_writer`` behind the Confluent header, 11 headers built per event
  (a fresh ``ce_id``, ``ce_time`` and ``ce_partitionkey``, the rest the same bytes flowbus
  sends), then ``produce`` with that key, an ``on_delivery`` callback counting failures and
  ``poll(0)``, as confluent-kafka's examples do. No validation. Same librdkafka settings.

Every side writes to its own fresh 1-partition topic; one warm-up event each goes first
(connection, schema registration), untimed. Rounds alternate raw, hand-written and flowbus.
"""

from __future__ import annotations

import io
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import fastavro
from bench_common import (
    Target,
    best_and_median,
    create_topic,
    messages_in,
    rate,
    unique_name,
)
from confluent_kafka import Producer
from workload import EVENT_TYPE, KEY_PATH, SIGNAL, build_events

from flowbus import cloudevents
from flowbus.avro.framing import CONFLUENT_HEADER_SIZE
from flowbus.avro.serializer import EventSerializer, codec_for
from flowbus.producer.event_producer import DEFAULT_KAFKA_CONFIG, EventProducer
from flowbus.producer.forwarding import start_forwarding

FLUSH_TIMEOUT_S = 120.0


def run_flowbus(target: Target, events: list[dict[str, Any]]) -> dict[str, Any]:
    """One timed flowbus run; returns its figures and the topic it filled."""
    topic = create_topic(target, "producer")
    producer = EventProducer(settings=target.settings(), install_exit_handlers=False)
    forwarder = start_forwarding(producer, {EVENT_TYPE: [{"topic": topic}]})
    try:
        SIGNAL.send_event(**events[0])  # warm-up: connection, schema registration
        if producer.flush(30):
            raise RuntimeError("flowbus warm-up event not delivered")
        send_event = SIGNAL.send_event
        start = time.perf_counter()
        for data in events:
            send_event(**data)
        sent = time.perf_counter()
        left = producer.flush(FLUSH_TIMEOUT_S)
        end = time.perf_counter()
    finally:
        forwarder.stop()
        producer.close()
    stats = producer.stats
    if left or stats.failed or stats.dropped or stats.delivered != len(events) + 1:
        raise RuntimeError(f"flowbus producer lost events: {stats}, {left} undelivered")
    return {
        "topic": topic,
        "events_per_s": rate(len(events), end - start),
        "send_loop_s": sent - start,
        "flush_s": end - sent,
    }


def encoded_record(target: Target) -> tuple[bytes, cloudevents.KafkaHeaders]:
    """One event's value and headers, encoded once beforehand as flowbus encodes them."""
    data = SIGNAL.validate_data(**build_events(1)[0])
    serializer = EventSerializer.from_settings(target.settings())
    serialized = serializer.serialize(SIGNAL, data, unique_name("raw"))  # registers a subject
    codec = codec_for(SIGNAL)
    out = io.BytesIO()
    out.write(serialized.value[:CONFLUENT_HEADER_SIZE])  # magic + the registered schema id
    fastavro.schemaless_writer(out, codec.schema.parsed, codec.to_datum(data))
    value = out.getvalue()
    if value != serialized.value:
        raise RuntimeError("fastavro and flowbus encode the record differently")
    headers = cloudevents.to_headers(
        SIGNAL.generate_signal_metadata(),
        partitionkey=SIGNAL.resolve_key(data, KEY_PATH),
        dataschema=serialized.dataschema,
    )
    return value, headers


def run_raw(target: Target, keys: list[str], value: bytes, headers: Any) -> dict[str, Any]:
    topic = create_topic(target, "producer-raw")
    producer = Producer({**DEFAULT_KAFKA_CONFIG, "bootstrap.servers": target.bootstrap_servers})
    producer.produce(topic, value=value, key="warm-up", headers=headers)
    if producer.flush(30):
        raise RuntimeError("raw warm-up message not delivered")
    produce, poll = producer.produce, producer.poll
    start = time.perf_counter()
    for index, key in enumerate(keys):
        while True:
            try:
                produce(topic, value=value, key=key, headers=headers)
                break
            except BufferError:  # local queue full: serve delivery reports, try again
                poll(0.005)
        if index % 1000 == 0:
            poll(0)
    sent = time.perf_counter()
    left = producer.flush(FLUSH_TIMEOUT_S)
    end = time.perf_counter()
    if left:
        raise RuntimeError(f"raw producer: {left} messages undelivered")
    return {
        "topic": topic,
        "events_per_s": rate(len(keys), end - start),
        "send_loop_s": sent - start,
        "flush_s": end - sent,
    }


def run_handwritten(
    target: Target, events: list[dict[str, Any]], value: bytes, headers: Any
) -> dict[str, Any]:
    """One timed run of the producer a user would write by hand (module docstring)."""
    codec = codec_for(SIGNAL)
    datums = [codec.to_datum(SIGNAL.validate_data(**data)) for data in events]  # untimed
    keys = [str(data["work_item"].case_id) for data in events]
    schema = codec.schema.parsed
    frame = value[:CONFLUENT_HEADER_SIZE]
    by_name = dict(headers)
    fixed = [(name, by_name[name]) for name in ("ce_specversion",)]
    middle = [(name, by_name[name]) for name in ("ce_source", "ce_type")]
    rest = [
        (name, by_name[name])
        for name in ("content-type", "ce_minorversion", "ce_sourcehost", "ce_sourcelib")
    ]
    dataschema = ("ce_dataschema", by_name["ce_dataschema"])
    topic = create_topic(target, "producer-hand")
    producer = Producer({**DEFAULT_KAFKA_CONFIG, "bootstrap.servers": target.bootstrap_servers})
    failures: list[Any] = []

    def on_delivery(error: Any, message: Any) -> None:
        if error is not None:
            failures.append(error)

    producer.produce(topic, value=value, key="warm-up", headers=headers)
    if producer.flush(30):
        raise RuntimeError("hand-written warm-up message not delivered")
    produce, poll, writer = producer.produce, producer.poll, fastavro.schemaless_writer
    start = time.perf_counter()
    for datum, key in zip(datums, keys, strict=True):
        out = io.BytesIO()
        out.write(frame)
        writer(out, schema, datum)
        record_headers = [
            *fixed,
            ("ce_id", str(uuid.uuid4()).encode()),
            *middle,
            ("ce_time", datetime.now(UTC).isoformat().encode()),
            *rest,
            ("ce_partitionkey", key.encode()),
            dataschema,
        ]
        while True:
            try:
                produce(
                    topic,
                    value=out.getvalue(),
                    key=key,
                    headers=record_headers,
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                poll(0.005)
        poll(0)
    sent = time.perf_counter()
    left = producer.flush(FLUSH_TIMEOUT_S)
    end = time.perf_counter()
    if left or failures:
        raise RuntimeError(f"hand-written producer: {left} undelivered, {len(failures)} failed")
    return {
        "topic": topic,
        "events_per_s": rate(len(events), end - start),
        "send_loop_s": sent - start,
        "flush_s": end - sent,
    }


def run(target: Target, count: int, rounds: int) -> dict[str, Any]:
    """``rounds`` times (raw, hand-written, flowbus) over ``count`` events each; medians and
    their ratios."""
    events = build_events(count)
    keys = [str(data["work_item"].case_id) for data in events]
    value, headers = encoded_record(target)
    raw_rounds, hand_rounds, flowbus_rounds = [], [], []
    for _ in range(rounds):
        raw_rounds.append(run_raw(target, keys, value, headers))
        hand_rounds.append(run_handwritten(target, events, value, headers))
        flowbus_rounds.append(run_flowbus(target, events))
    # The flowbus topics feed the consumer section: check they hold every event.
    for run_ in flowbus_rounds:
        held = messages_in(target, run_["topic"])
        if held != count + 1:
            raise RuntimeError(f"{run_['topic']} holds {held} records, expected {count + 1}")
    raw = best_and_median([r["events_per_s"] for r in raw_rounds])
    hand = best_and_median([r["events_per_s"] for r in hand_rounds])
    flowbus = best_and_median([r["events_per_s"] for r in flowbus_rounds])
    return {
        "events": count,
        "rounds": rounds,
        "value_bytes": len(value),
        "headers": len(headers),
        "flowbus_events_per_s": flowbus["median"],
        "raw_events_per_s": raw["median"],
        "producer_vs_raw": round(flowbus["median"] / raw["median"], 3),
        "handwritten_events_per_s": hand["median"],
        "producer_vs_handwritten": round(flowbus["median"] / hand["median"], 3),
        # Round by round (each flowbus round right after its hand-written one): how far the
        # machine's drift moves the ratio of the medians above.
        "handwritten_round_ratios": [
            round(f["events_per_s"] / h["events_per_s"], 3)
            for f, h in zip(flowbus_rounds, hand_rounds, strict=True)
        ],
        "flowbus_rounds": flowbus["rounds"],
        "raw_rounds": raw["rounds"],
        "handwritten_rounds": hand["rounds"],
        "flowbus_send_loop_s": [round(r["send_loop_s"], 3) for r in flowbus_rounds],
        "flowbus_flush_s": [round(r["flush_s"], 3) for r in flowbus_rounds],
        "topics": [r["topic"] for r in flowbus_rounds],
    }
