"""The worker under faults, on the real broker and registry: hanging receivers, a registry
outage, an oversized dead letter, concurrency with per-key order, SIGKILL mid-flight."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import random
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sample_events
from broker_helpers import SHORT_SESSION_CONFIG, drop_torn_tail, read_to_end, running_worker
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from tcp_proxy import TcpProxy

from flowbus import cloudevents
from flowbus.catalog import caluma
from flowbus.consumer.dead_letter import Reason, read_dead_letter_headers
from flowbus.consumer.metrics import WorkerMetrics
from flowbus.consumer.retry import ReceiverRetryPolicy as RetryPolicy
from flowbus.producer.event_producer import EventProducer
from flowbus.settings import get_settings
from flowbus.testing import isolated_receivers

pytestmark = pytest.mark.usefixtures("flowbus_env")
SIGNAL = caluma.WORK_ITEM_POST_COMPLETE


# --- helpers -----------------------------------------------------------------------------


def produce(topic: str, events: list[tuple[uuid.UUID, str]]) -> list[tuple[str, int, int]]:
    """Send ``(case id, slug)`` events; returns (event id, partition, offset) of each.

    Sent asynchronously (each key's events stay in order), then located on the topic:
    waiting for each delivery in turn takes seconds per thousand events."""
    sent = []
    with EventProducer(install_exit_handlers=False) as producer:
        for case_id, slug in events:
            data = SIGNAL.validate_data(**sample_events.work_item_event(case_id, task_slug=slug))
            metadata = SIGNAL.generate_signal_metadata()
            producer.send(SIGNAL, metadata, data, topic=topic, key=SIGNAL.resolve_key(data))
            sent.append(str(metadata.id))
        assert producer.flush(30) == 0
    position = {
        dict(message.headers())[cloudevents.ID].decode(): (message.partition(), message.offset())
        for message in read_to_end(topic)
    }
    return [(event_id, *position[event_id]) for event_id in sent]


def keyed_events(keys: int, per_key: int) -> list[tuple[uuid.UUID, str]]:
    cases = [uuid.uuid4() for _ in range(keys)]
    return [(case, f"step-{n:04d}") for n in range(per_key) for case in cases]


def lines(events_file: Path) -> list[dict[str, Any]]:
    if not events_file.exists():
        return []
    text = events_file.read_text()
    complete = text[: text.rfind("\n") + 1]  # a last line without "\n" is still being written
    return [json.loads(line) for line in complete.splitlines() if line]


def ended(events_file: Path) -> list[dict[str, Any]]:
    return [line for line in lines(events_file) if line["phase"] == "end"]


def wait_for(condition: Callable[[], bool], timeout: float = 90.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not reached in {timeout:g}s: {what}"
        time.sleep(0.1)


def committed(group: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer(
        {"bootstrap.servers": get_settings().kafka_bootstrap_servers, "group.id": group}
    )
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], 30)
        return {tp.partition: tp.offset for tp in found}
    finally:
        consumer.close()


def end_offsets(topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer(
        {"bootstrap.servers": get_settings().kafka_bootstrap_servers, "group.id": "ends"}
    )
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()


@contextlib.contextmanager
def worker_process(
    kafka_stack, topic: str, group: str, events_file: Path, *args: str, **env: str
) -> Iterator[subprocess.Popen]:
    """``flowbus consume`` with the keyed receivers; killed at exit if still running."""
    process = subprocess.Popen(
        [sys.executable, "-m", "flowbus", "consume", "--topic", topic, "--group", group,
         "--receivers", "keyed_receivers", *args],
        env={**kafka_stack.env, "FLOWBUS_TEST_EVENTS_FILE": str(events_file),
             "FLOWBUS_LOG_LEVEL": "INFO", **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def terminate(process: subprocess.Popen) -> tuple[float, str]:
    """SIGTERM; the seconds until the worker exited, and its stderr (it must exit 0)."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    took = time.monotonic() - started
    assert process.returncode == 0, stderr
    return took, stderr


def healthz(url: str) -> str:
    with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
        return response.read().decode()


def assert_per_key_order(entries: list[dict[str, Any]]) -> None:
    per_key: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        per_key[entry["key"]].append(entry["slug"])
    for key, slugs in per_key.items():
        assert slugs == sorted(slugs), f"key {key} out of order: {slugs}"


def max_in_flight_per_key(entries: list[dict[str, Any]]) -> int:
    """From start/end lines: the most calls of one key that overlapped in time."""
    worst = 0
    current: dict[str, int] = defaultdict(int)
    for entry in sorted(entries, key=lambda e: (e["t"], e["phase"] == "start")):
        key = entry["key"]
        current[key] += 1 if entry["phase"] == "start" else -1
        worst = max(worst, current[key])
    return worst


# --- a receiver hanging on one key -------------------------------------------------------


def test_a_hanging_receiver_times_out_and_nothing_else_stops(
    kafka_stack, unique_topic, unique_group, tmp_path
):
    topic, events_file = unique_topic(partitions=3), tmp_path / "events.jsonl"
    hung_case = uuid.uuid4()
    events = [(hung_case, "hang"), (hung_case, "step-0001"), *keyed_events(30, 6)]
    landed = produce(topic, events)
    with worker_process(
        kafka_stack, topic, unique_group, events_file,
        "--concurrency", "8", "--receiver-timeout", "5", "--max-attempts", "2",
        "--retry-delay", "0.2", "--shutdown-timeout", "5",
        FLOWBUS_TEST_HANG_SLUG="hang",
        # A worker blocked in the receiver for 7 s would overrun its poll interval and
        # leave the group (MAXPOLL); this one keeps polling.
        FLOWBUS_KAFKA_CONFIG=json.dumps(
            {"session.timeout.ms": 6000, "max.poll.interval.ms": 7000}
        ),
    ) as worker:  # fmt: skip
        # Everything but the hung event is handled, its key's next event included...
        wait_for(lambda: len(ended(events_file)) == len(events) - 1, 90, "the other events")
        handled = ended(events_file)
        assert {(e["key"], e["slug"]) for e in handled} >= {(str(hung_case), "step-0001")}
        hung_partition = landed[0][1]
        # ...and the hung event is dead-lettered with reason timeout once retries are spent.
        dlq = f"{topic}.dlq"
        wait_for(lambda: len(read_to_end(dlq)) == 1, 60, "the dead letter")
        [letter] = read_to_end(dlq)
        info = read_dead_letter_headers(letter.headers())
        assert info["reason"] == Reason.TIMEOUT.value and info["attempts"] == "2"
        assert info["original-offset"] == str(landed[0][2])
        assert info["original-partition"] == str(hung_partition)
        starts = [e for e in lines(events_file) if e["phase"] == "start" and e["slug"] == "hang"]
        assert len(starts) == 2 and starts[1]["t"] - starts[0]["t"] >= 5
        # Other keys flowed during the first 5 s hang, in its partition and the others.
        partition_of = {event_id: p for event_id, p, _ in landed}
        during = {partition_of[e["id"]] for e in handled if e["t"] < starts[0]["t"] + 5}
        assert hung_partition in during and len(during) == 3

        # A second hang, then SIGTERM while it hangs.
        [(_, partition, offset)] = produce(topic, [(uuid.uuid4(), "hang")])
        wait_for(
            lambda: sum(1 for e in lines(events_file) if e["slug"] == "hang") == 3,
            30, "the second hang",
        )  # fmt: skip
        took, stderr = terminate(worker)
    print(f"\nhang: SIGTERM to exit {took:.2f}s; {len(events) - 1} other events handled")
    assert took < 5 + 5, f"SIGTERM took {took:.1f}s"
    assert "MAXPOLL" not in stderr and "partitions revoked" not in stderr.split("signal 15")[0]
    assert stderr.count("partitions assigned") == 1, stderr
    assert "partitions lost" not in stderr
    # Everything handled before SIGTERM is committed; the hanging event is not.
    ends = end_offsets(topic, 3)
    expected = {p: (offset if p == partition else ends[p]) for p in range(3)}
    assert committed(unique_group, topic, 3) == expected


# --- the registry unreachable ------------------------------------------------------------


def test_registry_outage_pauses_the_partition_and_loses_nothing(
    kafka_stack, unique_topic, unique_group, monkeypatch
):
    topic = unique_topic()
    produce(topic, keyed_events(5, 4))  # registers the schema (direct URL)
    registry = urlsplit(kafka_stack.schema_registry_url)
    proxy = TcpProxy(registry.hostname, registry.port)  # not started: the registry is "down"
    proxied = kafka_stack.schema_registry_url.replace(
        f"{registry.hostname}:{registry.port}", f"127.0.0.1:{proxy.port}"
    )
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", proxied)
    get_settings.cache_clear()
    seen: list[str] = []
    metrics = WorkerMetrics()
    server = metrics.serve(0, health_timeout=30)
    try:
        with isolated_receivers():
            SIGNAL.connect(lambda sender, metadata, **kw: seen.append(str(metadata.id)))
            with running_worker(topic, unique_group, metrics=metrics) as worker:
                wait_for(lambda: worker.engine is not None and worker.engine.paused(), 60,
                         "the partition paused")  # fmt: skip
                wait_for(lambda: healthz(server.url).startswith("degraded"), 10, "degraded")
                assert "SchemaRegistryError" in healthz(server.url)
                time.sleep(3)  # more failed tries, still nothing dead-lettered or committed
                assert seen == [] and read_to_end(f"{topic}.dlq") == []
                assert committed(unique_group, topic, 1)[0] <= 0  # nothing committed past it
                proxy.start()  # the registry is back
                wait_for(lambda: len(seen) == 20, 90, "every event re-sent")
                wait_for(lambda: not worker.engine.paused(), 10, "partition resumed")
                time.sleep(1.5)  # one commit interval
                assert healthz(server.url) == "ok\n"
    finally:
        proxy.stop()
        metrics.close()
    assert read_to_end(f"{topic}.dlq") == []
    assert committed(unique_group, topic, 1) == end_offsets(topic, 1) == {0: 20}


# --- a dead letter larger than the dead-letter topic takes -------------------------------


@pytest.mark.parametrize(
    ("size", "client_limit"),
    [(1_030_000, None), (1_500_000, 2_000_000)],
    ids=["refused-by-the-client", "refused-by-the-broker"],
)
def test_an_oversized_dead_letter_becomes_a_pointer_record(
    kafka_stack, unique_group, size, client_limit
):
    """The source topic takes 2 MB records, the dead-letter topic the broker's default
    (1 MiB); librdkafka itself refuses more than 1,000,000 bytes unless told otherwise."""
    topic = f"big-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_stack.bootstrap_servers})
    admin.create_topics([NewTopic(topic, 1, config={"max.message.bytes": "2000000"})])[
        topic
    ].result(30)
    headers = cloudevents.to_headers(SIGNAL.generate_signal_metadata())
    value = random.randbytes(size)  # accepted by its topic; garbage for the decoder
    producer = Producer(
        {"bootstrap.servers": kafka_stack.bootstrap_servers, "message.max.bytes": 2_000_000}
    )
    producer.produce(topic, value=value, key=b"big", headers=headers)
    assert producer.flush(30) == 0
    produce(topic, [(uuid.uuid4(), "after")])
    seen: list[str] = []
    options: dict[str, Any] = {"retry": RetryPolicy(max_attempts=1)}
    if client_limit:
        options["kafka_config"] = {"message.max.bytes": client_limit}
    with isolated_receivers():
        SIGNAL.connect(lambda sender, work_item, **kw: seen.append(work_item.task_slug))
        with running_worker(topic, unique_group, **options) as worker:
            wait_for(lambda: seen == ["after"] and worker.stats.dead_lettered == 1, 60,
                     "the pointer and the next event")  # fmt: skip
    [pointer] = read_to_end(f"{topic}.dlq")
    info = read_dead_letter_headers(pointer.headers())
    assert pointer.value() is None and pointer.key() == b"big"
    assert info["pointer"] == "true" and info["reason"] == Reason.UNDECODABLE.value
    assert info["original-size"] == str(len(value))
    assert info["original-sha256"] == hashlib.sha256(value).hexdigest()
    assert (info["original-topic"], info["original-offset"]) == (topic, "0")
    assert committed(unique_group, topic, 1) == {0: 2}


# --- concurrency: per-key order, at least once --------------------------------------------


@pytest.mark.parametrize("receiver_kind", ["sync", "async"])
def test_2000_events_over_200_keys_keep_per_key_order_at_concurrency_32(
    kafka_stack, unique_topic, unique_group, tmp_path, receiver_kind
):
    topic, events_file = unique_topic(partitions=6), tmp_path / "events.jsonl"
    events = keyed_events(200, 10)
    produce(topic, events)
    with worker_process(
        kafka_stack, topic, unique_group, events_file, "--concurrency", "32",
        FLOWBUS_TEST_RECEIVER_DELAY="0.02",
        FLOWBUS_TEST_ASYNC="1" if receiver_kind == "async" else "0",
    ) as worker:  # fmt: skip
        wait_for(lambda: len(ended(events_file)) >= 2000, 120, "2,000 events")
        time.sleep(1.5)  # a commit interval
        terminate(worker)
    entries = lines(events_file)
    handled = [e for e in entries if e["phase"] == "end"]
    span = max(e["t"] for e in handled) - min(e["t"] for e in entries)
    print(f"\n{receiver_kind}: 2,000 events at concurrency 32 in {span:.2f}s")
    assert len(handled) == 2000 and len({e["id"] for e in handled}) == 2000
    assert_per_key_order(handled)
    assert max_in_flight_per_key(entries) == 1
    assert committed(unique_group, topic, 6) == end_offsets(topic, 6)


def test_sigkill_during_concurrent_handling_redoes_at_most_about_a_second(
    kafka_stack, unique_topic, unique_group, tmp_path
):
    topic, events_file = unique_topic(partitions=3), tmp_path / "events.jsonl"
    events = keyed_events(100, 30)
    landed = produce(topic, events)
    position = {event_id: (partition, offset) for event_id, partition, offset in landed}
    concurrency = 8
    start = functools.partial(
        worker_process, kafka_stack, topic, unique_group, events_file,
        "--concurrency", str(concurrency), FLOWBUS_TEST_RECEIVER_DELAY="0.02",
        FLOWBUS_KAFKA_CONFIG=json.dumps(SHORT_SESSION_CONFIG),
    )  # fmt: skip
    with start() as worker:
        wait_for(lambda: len(ended(events_file)) >= 400, 60, "handling under way")
        time.sleep(random.uniform(0.5, 3.0))
        worker.kill()  # SIGKILL: no shutdown, no last commit
        killed_at = time.time()
        worker.communicate(timeout=30)
    drop_torn_tail(events_file)
    first_run = ended(events_file)
    assert 0 < len(first_run) < len(events)
    at_kill = committed(unique_group, topic, 3)
    assert sum(offset for offset in at_kill.values() if offset > 0) > 0, at_kill

    with start() as worker:
        ids = set(position)
        wait_for(lambda: {e["id"] for e in ended(events_file)} == ids, 120, "every event")
        time.sleep(1.5)
        terminate(worker)
    handled = ended(events_file)
    runs: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for entry in handled:
        runs[entry["pid"]].append(entry)
    assert len(runs) == 2
    for entries in runs.values():
        assert_per_key_order(entries)
    duplicates = len(handled) - len(events)
    # Exactly what was handled at or after each partition's committed offset is redone...
    beyond_commit = sum(
        1 for e in first_run if position[e["id"]][1] >= at_kill[position[e["id"]][0]]
    )
    assert duplicates == beyond_commit
    # ...and that is at most what was in flight plus about a second of work.
    last_second = sum(1 for e in first_run if e["t"] >= killed_at - 1.5)
    print(f"\nSIGKILL after {len(first_run)} handled: {duplicates} redone "
          f"(bound {concurrency} in flight + {last_second} in the last 1.5 s)")  # fmt: skip
    assert duplicates <= concurrency + last_second, (duplicates, last_second)
