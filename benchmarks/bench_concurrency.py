"""Section 7, concurrency: a slow handler over many keys, flowbus against FastStream.

The workload is written once per run by flowbus's producer (``send_event`` with forwarding):
N events of "work item completed" over K case ids (the Kafka key) on a topic with P
partitions. The keys come in a shuffled order (a fixed seed); each key's events carry an
increasing sequence number in ``context["seq"]``, so per-key order can be checked.

For each concurrency level, in a fresh consumer group each, one after the other:

* flowbus: a :class:`~flowbus.consumer.worker.Worker` with ``concurrency=c`` and an
  ``async def`` receiver that awaits ``asyncio.sleep`` for the handler time;
* FastStream: ``peer_faststream/bench_faststream.py`` in its own venv, ``max_workers=c``,
  ``AckPolicy.ACK_FIRST``, the same ``async def`` handler (see its docstring).

Both handlers report to ``concurrency_checks.KeyTracker`` (one piece of code, imported by
both sides): events/s from the 1st to the Nth event finished, keys that ever had two events
in flight at once, events begun (or finished) after a later event of their key. After each
run the group's committed offsets are compared with the end offsets and with the records
the handler finished.

Then, at the highest level, each side once more in a fresh group, stopped by its own
shutdown (``Worker.stop()``, ``broker.stop()``) once half the events have finished: records
committed without having been handled are lost to the group; handled but not committed
ones would be delivered again.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import fastavro
from bench_common import Target, create_topic, messages_in, peer_python, run_peer, unique_name
from concurrency_checks import KeyTracker, Positions, offsets, write_positions
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from workload import EVENT_TYPE, SIGNAL, event_data

from flowbus.avro.framing import CONFLUENT_HEADER_SIZE
from flowbus.avro.serializer import codec_for
from flowbus.consumer.worker import Worker
from flowbus.metadata import EventMetadata
from flowbus.producer.event_producer import EventProducer
from flowbus.producer.forwarding import start_forwarding

PEER_DIR = Path(__file__).resolve().parent / "peer_faststream"
HANDLER_S = 0.02
SEED = 7
FLUSH_TIMEOUT_S = 120.0
# The peer's process starts and joins a group before its timed span; this bounds all of it.
PEER_GRACE_S = 60.0
STOP_WAIT_S = 600.0


def keyed_events(count: int, keys: int, seed: int = SEED) -> list[dict[str, Any]]:
    """``count`` events over ``keys`` case ids in a shuffled order; ``context["seq"]`` counts
    each key's events from 0 in the order they are sent."""
    rng = random.Random(seed)
    case_ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(keys)]
    order = [index % keys for index in range(count)]
    rng.shuffle(order)
    next_sequence = [0] * keys
    events = []
    for index, key in enumerate(order):
        data = event_data(index, case_id=case_ids[key])
        data["context"]["seq"] = next_sequence[key]
        next_sequence[key] += 1
        events.append(data)
    return events


def prepare(target: Target, count: int, keys: int, partitions: int) -> tuple[str, Positions]:
    """Fill a fresh topic with the keyed workload; returns its name and where each event is."""
    events = keyed_events(count, keys)
    topic = create_topic(target, "concurrency", partitions)
    producer = EventProducer(settings=target.settings(), install_exit_handlers=False)
    forwarder = start_forwarding(producer, {EVENT_TYPE: [{"topic": topic}]})
    try:
        for data in events:
            SIGNAL.send_event(**data)
        left = producer.flush(FLUSH_TIMEOUT_S)
    finally:
        forwarder.stop()
        producer.close()
    stats = producer.stats
    if left or stats.failed or stats.dropped or stats.delivered != count:
        raise RuntimeError(f"concurrency workload not written: {stats}, {left} undelivered")
    if messages_in(target, topic) != count:
        raise RuntimeError(f"topic {topic} holds {messages_in(target, topic)}, not {count}")
    return topic, read_positions(target, topic, partitions, count)


def read_positions(target: Target, topic: str, partitions: int, count: int) -> Positions:
    """(case id, sequence) -> (partition, offset) of every record, read back from the topic
    (untimed); checks that each key sits on one partition in sequence order."""
    parsed = codec_for(SIGNAL).schema.parsed
    consumer = Consumer(
        {"bootstrap.servers": target.bootstrap_servers, "group.id": unique_name("positions")}
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    positions: dict[tuple[str, int], tuple[int, int]] = {}
    deadline = time.perf_counter() + FLUSH_TIMEOUT_S
    try:
        while len(positions) < count and time.perf_counter() < deadline:
            message = consumer.poll(1.0)
            if message is None or message.error() is not None:
                continue
            body = io.BytesIO(message.value()[CONFLUENT_HEADER_SIZE:])
            record: Any = fastavro.schemaless_reader(body, parsed, None)
            key = (str(record["work_item"]["case_id"]), json.loads(record["context"])["seq"])
            positions[key] = (message.partition(), message.offset())
    finally:
        consumer.close()
    if len(positions) != count:
        raise RuntimeError(f"read back {len(positions)} of {count} records of {topic}")
    last: dict[str, tuple[int, int]] = {}
    for (key, _), position in sorted(positions.items()):
        if key in last and (position[0] != last[key][0] or position[1] < last[key][1]):
            raise RuntimeError(f"key {key} is not on one partition in sequence order")
        last[key] = position
    return positions


def run_flowbus(
    target: Target,
    topic: str,
    positions: Positions,
    concurrency: int,
    stop_after: int | None = None,
    handler_s: float = HANDLER_S,
    synchronous: bool = False,
) -> dict[str, Any]:
    """One worker run over the whole topic, or stopped once ``stop_after`` events finished.

    The receiver is ``async def`` and awaits ``asyncio.sleep(handler_s)``; with
    ``synchronous`` (and no handler time) it is a plain function that returns at once."""
    tracker = KeyTracker(positions, stop_after)
    count = tracker.expected

    async def receiver(sender: object, *, metadata: EventMetadata, **data: Any) -> None:
        key, seq = str(data["work_item"].case_id), data["context"]["seq"]
        tracker.start(key, seq)
        try:
            await asyncio.sleep(handler_s)
        finally:
            tracker.finish(key, seq)

    def synchronous_receiver(sender: object, *, metadata: EventMetadata, **data: Any) -> None:
        key, seq = str(data["work_item"].case_id), data["context"]["seq"]
        tracker.start(key, seq)
        tracker.finish(key, seq)

    group = unique_name("group-concurrency")
    worker = Worker(
        [topic],
        group,
        settings=target.settings(),
        concurrency=concurrency,
        receiver_timeout=None,
        commit_interval=1.0,
    )
    if stop_after:
        # The worker's own shutdown, asked for from outside as a deployment's SIGTERM would.
        stopper = threading.Thread(
            target=lambda: tracker.done.wait(STOP_WAIT_S) and worker.stop(), daemon=True
        )
        stopper.start()
    connected = synchronous_receiver if synchronous else receiver
    SIGNAL.connect(connected)
    try:
        started_at = time.perf_counter()
        stats = worker.run(
            max_messages=None if stop_after else count, install_signal_handlers=False
        )
    finally:
        SIGNAL.disconnect(connected)
    figures = {
        "concurrency": concurrency,
        "group": group,
        "stop_after": stop_after,
        **tracker.summary(started_at),
        "offsets": offsets(target.bootstrap_servers, group, topic, tracker),
        "worker_handled": stats.handled,
        "worker_dead_lettered": stats.dead_lettered,
    }
    if stats.dead_lettered or tracker.finished < tracker.stop_after:
        raise RuntimeError(f"flowbus worker: {tracker.finished} of {count} handled, {stats}")
    return figures


def run_faststream(
    python: Path,
    target: Target,
    topic: str,
    positions: Path,
    concurrency: int,
    timeout: float,
    stop_after: int | None = None,
    handler_s: float = HANDLER_S,
) -> dict[str, Any]:
    command = [str(python), str(PEER_DIR / "bench_faststream.py"), *target.args()]
    command += ["--topic", topic, "--positions", str(positions)]
    command += ["--concurrency", str(concurrency)]
    command += ["--handler-ms", str(handler_s * 1000), "--timeout", str(timeout)]
    if stop_after:
        command += ["--stop-after", str(stop_after)]
    report = run_peer(command, timeout + PEER_GRACE_S)
    if report["exit_status"] != 0 or not report.get("ok"):
        raise RuntimeError(f"FastStream peer not ok: {json.dumps(report)[:2000]}")
    return report


def run_noop(
    python: Path,
    target: Target,
    count: int,
    keys: int,
    partitions: int,
    timeout: float,
    scratch: str,
) -> dict[str, Any] | None:
    """Concurrency 1 over a topic of its own, a handler that does nothing: FastStream's and
    flowbus's ``async def`` awaiting ``asyncio.sleep(0)``, and flowbus's plain function
    (the receivers of a Django or Caluma service are plain functions)."""
    if not count:
        return None
    topic, positions = prepare(target, count, keys, partitions)
    positions_file = Path(scratch) / "noop-positions.json"
    write_positions(positions_file, positions)
    flowbus_async = run_flowbus(target, topic, positions, 1, handler_s=0.0)
    flowbus_sync = run_flowbus(target, topic, positions, 1, handler_s=0.0, synchronous=True)
    (faststream,) = run_faststream(
        python, target, topic, positions_file, 1, timeout, handler_s=0.0
    )["runs"]
    return {
        "events": count,
        "flowbus_async": flowbus_async,
        "flowbus_sync": flowbus_sync,
        "faststream": faststream,
        "async_vs_faststream": _ratio(flowbus_async["events_per_s"], faststream["events_per_s"]),
        "sync_vs_faststream": _ratio(flowbus_sync["events_per_s"], faststream["events_per_s"]),
    }


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return round(numerator / denominator, 3) if numerator and denominator else None


def run(
    target: Target,
    venv_dir: Path,
    count: int,
    keys: int,
    partitions: int,
    levels: list[int],
    timeout: float,
    noop_events: int = 0,
) -> dict[str, Any]:
    """Both sides at every level of ``levels`` over one prepared topic, alternating; then,
    with ``noop_events``, both at concurrency 1 with a handler that returns at once."""
    python = peer_python(PEER_DIR, venv_dir)
    topic, positions = prepare(target, count, keys, partitions)
    flowbus: dict[str, Any] = {}
    faststream: dict[str, Any] = {}
    peer_versions: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="flowbus-bench-concurrency-") as scratch:
        positions_file = Path(scratch) / "positions.json"
        write_positions(positions_file, positions)
        for level in levels:
            flowbus[str(level)] = run_flowbus(target, topic, positions, level)
            report = run_faststream(python, target, topic, positions_file, level, timeout)
            (faststream[str(level)],) = report["runs"]
            peer_versions = report["versions"]
        level, half = max(levels), count // 2
        stopped = {
            "concurrency": level,
            "stop_after": half,
            "flowbus": run_flowbus(target, topic, positions, level, half),
            "faststream": run_faststream(
                python, target, topic, positions_file, level, timeout, half
            )["runs"][0],
        }
        noop = run_noop(python, target, noop_events, keys, partitions, timeout, scratch)
    return {
        "events": count,
        "keys": keys,
        "partitions": partitions,
        "seed": SEED,
        "handler_ms": HANDLER_S * 1000,
        "handler": "async def, await asyncio.sleep(0.02), on both sides",
        "concurrency": levels,
        "topic": topic,
        # What the handler time allows at each level, if nothing else took any time.
        "handler_bound_events_per_s": {str(c): round(c / HANDLER_S, 1) for c in levels},
        "flowbus_vs_faststream": {
            str(c): _ratio(flowbus[str(c)]["events_per_s"], faststream[str(c)]["events_per_s"])
            for c in levels
        },
        "flowbus": flowbus,
        "faststream": faststream,
        "stopped_halfway": stopped,
        "noop_at_1": noop,
        "faststream_ack_policy": "ACK_FIRST (offsets stored when polled, before handling)",
        "faststream_versions": peer_versions,
    }
