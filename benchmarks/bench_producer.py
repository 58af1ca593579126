"""Section 2, producer pipeline: ``send_event`` to the broker's acknowledgement.

* flowbus: ``SIGNAL.send_event(**data)`` with forwarding to one topic: validation,
  metadata, the forwarding receiver, key resolution, Avro, CloudEvents headers,
  ``Producer.produce``; delivery reports served as it sends (``poll(0)``) and by the
  producer's poller thread. Timed from the first ``send_event`` until ``flush()`` returns,
  i.e. every event acknowledged.
* raw: confluent-kafka's ``Producer.produce`` of a value encoded once beforehand (fastavro,
  same framing) with the same header list, one key per event, ``poll(0)`` every 1000
  messages, same librdkafka configuration (flowbus's defaults: idempotence, acks=all,
  linger.ms=5, lz4, murmur2). Timed the same way, until ``flush()`` returns.

* hand-written: what a user would write without flowbus, per event: a plain dict (the
  event's data as fastavro takes it, built beforehand like flowbus's models) with its two
  JSON values (``context``, the work item's ``meta``) written as JSON text, as the schema
  carries them, through
  fastavro ``schemaless_writer`` behind the Confluent header, 11 headers built per event
  (a fresh ``ce_id``, ``ce_time`` and ``ce_partitionkey``, the rest the same bytes flowbus
  sends), then ``produce`` with that key, an ``on_delivery`` callback counting failures and
  ``poll(0)``, as confluent-kafka's examples do. No validation. Same librdkafka settings.

Every side writes to its own fresh 1-partition topic; one warm-up event each goes first
(connection, schema registration), untimed, and a full garbage collection just before the
timed window. Rounds alternate raw, hand-written (twice: also with its JSON text made
before the timing, the baseline's form until 2026-12-03) and flowbus. Then the interleaved
runs: the three producers side by side, taking turns by blocks of 1,000 events
(``run_interleaved``), which cancels most of the machine's drift between rounds.
"""

from __future__ import annotations

import io
import json
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import fastavro
from bench_common import (
    Target,
    best_and_median,
    collect_garbage,
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
#: JSON text as flowbus writes it (compact, not ASCII-escaped), with json's public API.
_JSON_TEXT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
#: Events per turn of each side in run_interleaved.
INTERLEAVED_BLOCK = 1000


class FlowbusSender:
    """flowbus's side: ``SIGNAL.send_event(**data)`` forwarded to a fresh topic."""

    def __init__(self, target: Target, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.topic = create_topic(target, "producer")
        self.producer = EventProducer(settings=target.settings(), install_exit_handlers=False)
        self.forwarder = start_forwarding(self.producer, {EVENT_TYPE: [{"topic": self.topic}]})
        SIGNAL.send_event(**events[0])  # warm-up: connection, schema registration
        if self.producer.flush(30):
            raise RuntimeError("flowbus warm-up event not delivered")

    def send(self, first: int, stop: int) -> None:
        """Send events ``first`` up to ``stop``."""
        send_event, events = SIGNAL.send_event, self.events
        for index in range(first, stop):
            send_event(**events[index])

    def flush(self) -> int:
        return self.producer.flush(FLUSH_TIMEOUT_S)

    def close(self) -> None:
        self.forwarder.stop()
        self.left = self.producer.close()

    def check(self, sent: int) -> None:
        """Once closed: raise unless each of the ``sent`` events (and the warm-up) was
        delivered."""
        stats = self.producer.stats
        if self.left or stats.failed or stats.dropped or stats.delivered != sent + 1:
            raise RuntimeError(f"flowbus producer lost events: {stats}, {self.left} undelivered")


def run_flowbus(target: Target, events: list[dict[str, Any]]) -> dict[str, Any]:
    """One timed flowbus run; returns its figures and the topic it filled."""
    sender = FlowbusSender(target, events)
    try:
        figures = timed_run(sender, len(events))
    finally:
        sender.close()
    sender.check(len(events))
    return {"topic": sender.topic, **figures}


def timed_run(sender: FlowbusSender | HandWrittenSender, count: int) -> dict[str, Any]:
    """Send ``count`` events and flush, timed from the first send until every event is
    acknowledged."""
    collect_garbage()
    start = time.perf_counter()
    sender.send(0, count)
    sent = time.perf_counter()
    left = sender.flush()
    end = time.perf_counter()
    if left:
        raise RuntimeError(f"{sender.topic}: {left} events undelivered")
    return {
        "events_per_s": rate(count, end - start),
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
    collect_garbage()
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


class HandWrittenSender:
    """The producer a user would write by hand (module docstring)."""

    def __init__(
        self,
        target: Target,
        events: list[dict[str, Any]],
        value: bytes,
        headers: Any,
        *,
        json_text_beforehand: bool = False,
    ) -> None:
        codec = codec_for(SIGNAL)
        self.datums = [codec.to_datum(SIGNAL.validate_data(**data)) for data in events]
        # The schema carries ``context`` and ``meta`` as JSON text: the plain dict holds
        # them as the values they are, and each event's is written as it is sent (with
        # ``json_text_beforehand``, as until 2026-12-03: the text made before the timing).
        self.json_in_loop = not json_text_beforehand
        if self.json_in_loop:
            for datum, data in zip(self.datums, events, strict=True):
                if (_JSON_TEXT(data["context"]), _JSON_TEXT(data["work_item"].meta)) != (
                    datum["context"],
                    datum["work_item"]["meta"],
                ):
                    raise RuntimeError("the hand-written JSON text differs from flowbus's")
                datum["context"] = data["context"]
                datum["work_item"]["meta"] = data["work_item"].meta
        self.keys = [str(data["work_item"].case_id) for data in events]
        self.schema = codec.schema.parsed
        self.frame = value[:CONFLUENT_HEADER_SIZE]
        by_name = dict(headers)
        self.fixed = [(name, by_name[name]) for name in ("ce_specversion",)]
        self.middle = [(name, by_name[name]) for name in ("ce_source", "ce_type")]
        self.rest = [
            (name, by_name[name])
            for name in ("content-type", "ce_minorversion", "ce_sourcehost", "ce_sourcelib")
        ]
        self.dataschema = ("ce_dataschema", by_name["ce_dataschema"])
        self.topic = create_topic(target, "producer-hand")
        self.producer = Producer(
            {**DEFAULT_KAFKA_CONFIG, "bootstrap.servers": target.bootstrap_servers}
        )
        self.failures: list[Any] = []
        failures = self.failures

        def on_delivery(error: Any, message: Any) -> None:
            if error is not None:
                failures.append(error)

        self.on_delivery = on_delivery
        self.producer.produce(self.topic, value=value, key="warm-up", headers=headers)
        if self.producer.flush(30):
            raise RuntimeError("hand-written warm-up message not delivered")

    def send(self, first: int, stop: int) -> None:
        """Send events ``first`` up to ``stop``."""
        produce, poll = self.producer.produce, self.producer.poll
        writer = fastavro.schemaless_writer
        topic, schema, frame, on_delivery = self.topic, self.schema, self.frame, self.on_delivery
        fixed, middle, rest, dataschema = self.fixed, self.middle, self.rest, self.dataschema
        json_text, json_in_loop = _JSON_TEXT, self.json_in_loop
        for datum, key in zip(self.datums[first:stop], self.keys[first:stop], strict=True):
            if json_in_loop:
                datum["context"] = json_text(datum["context"])
                work_item = datum["work_item"]
                work_item["meta"] = json_text(work_item["meta"])
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

    def flush(self) -> int:
        return self.producer.flush(FLUSH_TIMEOUT_S)

    def check(self) -> None:
        """Raise if any event sent failed or is still undelivered."""
        left = self.producer.flush(FLUSH_TIMEOUT_S)
        if left or self.failures:
            raise RuntimeError(
                f"hand-written producer: {left} undelivered, {len(self.failures)} failed"
            )


def run_handwritten(
    target: Target,
    events: list[dict[str, Any]],
    value: bytes,
    headers: Any,
    *,
    json_text_beforehand: bool = False,
) -> dict[str, Any]:
    """One timed run of the producer a user would write by hand (module docstring)."""
    sender = HandWrittenSender(
        target, events, value, headers, json_text_beforehand=json_text_beforehand
    )
    figures = timed_run(sender, len(events))
    sender.check()
    return {"topic": sender.topic, **figures}


def run_interleaved(
    target: Target, events: list[dict[str, Any]], value: bytes, headers: Any, block: int
) -> dict[str, Any]:
    """flowbus and both hand-written producers side by side, taking turns by blocks of
    ``block`` events (who goes first rotates), each side's seconds summed over its blocks
    and its final flush.

    Whatever else the machine does (the broker, the other sides' librdkafka threads) falls
    on every side alike, block by block: the ratios move far less than the rounds'.
    """
    count = len(events)
    flowbus = FlowbusSender(target, events)
    hand_written = {
        "handwritten": HandWrittenSender(target, events, value, headers),
        "handwritten_json_beforehand": HandWrittenSender(
            target, events, value, headers, json_text_beforehand=True
        ),
    }
    sides: dict[str, FlowbusSender | HandWrittenSender] = {"flowbus": flowbus, **hand_written}
    names = list(sides)
    seconds = dict.fromkeys(names, 0.0)
    try:
        collect_garbage()
        for number, first in enumerate(range(0, count, block)):
            turn = number % len(names)
            order = names[turn:] + names[:turn]
            for name in order:
                start = time.perf_counter()
                sides[name].send(first, min(count, first + block))
                seconds[name] += time.perf_counter() - start
        for name in order:
            start = time.perf_counter()
            if sides[name].flush():
                raise RuntimeError(f"{name}: events undelivered")
            seconds[name] += time.perf_counter() - start
    finally:
        flowbus.close()
    flowbus.check(count)
    for sender in hand_written.values():
        sender.check()
    return {
        "events": count,
        "block": block,
        **{f"{name}_events_per_s": round(rate(count, seconds[name]), 1) for name in names},
        **{
            f"producer_vs_{name}": round(seconds[name] / seconds["flowbus"], 3)
            for name in hand_written
        },
    }


def run(target: Target, count: int, rounds: int) -> dict[str, Any]:
    """``rounds`` times (raw, both hand-written, flowbus) over ``count`` events each, then
    ``rounds`` interleaved runs; medians and their ratios."""
    events = build_events(count)
    keys = [str(data["work_item"].case_id) for data in events]
    value, headers = encoded_record(target)
    raw_rounds, hand_rounds, beforehand_rounds, flowbus_rounds = [], [], [], []
    for _ in range(rounds):
        raw_rounds.append(run_raw(target, keys, value, headers))
        hand_rounds.append(run_handwritten(target, events, value, headers))
        beforehand_rounds.append(
            run_handwritten(target, events, value, headers, json_text_beforehand=True)
        )
        flowbus_rounds.append(run_flowbus(target, events))
    interleaved = [
        run_interleaved(target, events, value, headers, INTERLEAVED_BLOCK) for _ in range(rounds)
    ]
    # The flowbus topics feed the consumer section: check they hold every event.
    for run_ in flowbus_rounds:
        held = messages_in(target, run_["topic"])
        if held != count + 1:
            raise RuntimeError(f"{run_['topic']} holds {held} records, expected {count + 1}")
    raw = best_and_median([r["events_per_s"] for r in raw_rounds])
    hand = best_and_median([r["events_per_s"] for r in hand_rounds])
    beforehand = best_and_median([r["events_per_s"] for r in beforehand_rounds])
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
        # The hand-written producer given its JSON text made before the timing (the
        # baseline's form until 2026-12-03): part of its encoding is not timed.
        "handwritten_json_beforehand_events_per_s": beforehand["median"],
        "producer_vs_handwritten_json_beforehand": round(
            flowbus["median"] / beforehand["median"], 3
        ),
        # Round by round (each flowbus round right after its hand-written ones): how far
        # the machine's drift moves the ratios of the medians above.
        "handwritten_round_ratios": [
            round(f["events_per_s"] / h["events_per_s"], 3)
            for f, h in zip(flowbus_rounds, hand_rounds, strict=True)
        ],
        "handwritten_json_beforehand_round_ratios": [
            round(f["events_per_s"] / h["events_per_s"], 3)
            for f, h in zip(flowbus_rounds, beforehand_rounds, strict=True)
        ],
        # The producers taking turns by blocks (run_interleaved): per run, and the medians.
        "interleaved_vs_handwritten": statistics.median(
            run_["producer_vs_handwritten"] for run_ in interleaved
        ),
        "interleaved_vs_handwritten_json_beforehand": statistics.median(
            run_["producer_vs_handwritten_json_beforehand"] for run_ in interleaved
        ),
        "interleaved": interleaved,
        "flowbus_rounds": flowbus["rounds"],
        "raw_rounds": raw["rounds"],
        "handwritten_rounds": hand["rounds"],
        "handwritten_json_beforehand_rounds": beforehand["rounds"],
        "flowbus_send_loop_s": [round(r["send_loop_s"], 3) for r in flowbus_rounds],
        "flowbus_flush_s": [round(r["flush_s"], 3) for r in flowbus_rounds],
        "topics": [r["topic"] for r in flowbus_rounds],
    }
