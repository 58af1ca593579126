"""Section 3, consumer pipeline: records already in a topic to events in a receiver.

* flowbus: a :class:`~flowbus.consumer.worker.Worker` on the topic, a fresh group, and one
  no-op receiver connected to the signal: poll, CloudEvents headers to metadata, signal
  lookup, registry-framed Avro decode into the signal's models, data validation, re-send
  to the receiver, offset store (commits every 5 s, the worker's default).
* raw: a confluent-kafka ``Consumer`` in a fresh group polling the same topic, and
  fastavro's ``schemaless_reader`` decoding each body after the Confluent header into
  plain dicts. Offsets auto-committed (librdkafka's default).

Both read the same N records (written by the producer section). The rate is (N - 1) /
(1st record handled -> Nth record handled), as the Open edX peer measures it, so group
join and the first fetch stay out; the start-to-last rate is kept too. Rounds alternate.
"""

from __future__ import annotations

import io
import time
from typing import Any

import fastavro
from bench_common import Target, best_and_median, rate, unique_name
from confluent_kafka import Consumer
from workload import SIGNAL

from flowbus.avro.framing import CONFLUENT_HEADER_SIZE
from flowbus.avro.serializer import codec_for
from flowbus.consumer.worker import Worker
from flowbus.metadata import EventMetadata

TIMEOUT_S = 300.0


class CountingReceiver:
    """A no-op receiver: counts events and notes when the first and the last arrived."""

    def __init__(self) -> None:
        self.count = 0
        self.first_at = 0.0
        self.last_at = 0.0

    def __call__(self, sender: object, *, metadata: EventMetadata, **data: Any) -> None:
        now = time.perf_counter()
        if not self.count:
            self.first_at = now
        self.count += 1
        self.last_at = now


def run_flowbus(target: Target, topic: str, count: int) -> dict[str, Any]:
    receiver = CountingReceiver()
    SIGNAL.connect(receiver)
    try:
        worker = Worker([topic], unique_name("group"), settings=target.settings())
        start = time.perf_counter()
        stats = worker.run(max_messages=count, install_signal_handlers=False)
    finally:
        SIGNAL.disconnect(receiver)
    if stats.dead_lettered or receiver.count != count:
        raise RuntimeError(f"flowbus consumer: {receiver.count} of {count} received, {stats}")
    return {
        "events_per_s": rate(count - 1, receiver.last_at - receiver.first_at),
        "start_to_last_events_per_s": rate(count, receiver.last_at - start),
    }


def run_raw(target: Target, topic: str, count: int) -> dict[str, Any]:
    parsed = codec_for(SIGNAL).schema.parsed
    reader = fastavro.schemaless_reader
    consumer = Consumer(
        {
            "bootstrap.servers": target.bootstrap_servers,
            "group.id": unique_name("group-raw"),
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    received = 0
    first_at = last_at = 0.0
    start = time.perf_counter()
    deadline = start + TIMEOUT_S
    try:
        while received < count and time.perf_counter() < deadline:
            message = consumer.poll(1.0)
            if message is None or message.error() is not None:
                continue
            value = message.value()
            if value[0] != 0:
                raise RuntimeError("not a Confluent-framed value")
            reader(io.BytesIO(value[CONFLUENT_HEADER_SIZE:]), parsed, None)
            received += 1
            if received == 1:
                first_at = time.perf_counter()
        last_at = time.perf_counter()
    finally:
        consumer.close()
    if received != count:
        raise RuntimeError(f"raw consumer: {received} of {count} received")
    return {
        "events_per_s": rate(count - 1, last_at - first_at),
        "start_to_last_events_per_s": rate(count, last_at - start),
    }


def run(target: Target, topics: list[str], count: int) -> dict[str, Any]:
    """One round per topic: raw then flowbus over its first ``count`` records."""
    raw_rounds, flowbus_rounds = [], []
    for topic in topics:
        raw_rounds.append(run_raw(target, topic, count))
        flowbus_rounds.append(run_flowbus(target, topic, count))
    raw = best_and_median([r["events_per_s"] for r in raw_rounds])
    flowbus = best_and_median([r["events_per_s"] for r in flowbus_rounds])
    return {
        "events": count,
        "rounds": len(topics),
        "flowbus_events_per_s": flowbus["median"],
        "raw_events_per_s": raw["median"],
        "consumer_vs_raw": round(flowbus["median"] / raw["median"], 3),
        "flowbus_rounds": flowbus["rounds"],
        "raw_rounds": raw["rounds"],
        "flowbus_start_to_last_events_per_s": [
            round(r["start_to_last_events_per_s"], 1) for r in flowbus_rounds
        ],
        "raw_start_to_last_events_per_s": [
            round(r["start_to_last_events_per_s"], 1) for r in raw_rounds
        ],
    }
