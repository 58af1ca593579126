"""Peer benchmark: the Open edX event bus (openedx-events + edx-event-bus-kafka) on flowbus's event.

Run inside the peer venv made by setup_venv.py (NOT flowbus's venv):

    python benchmarks/peer_openedx/bench_openedx.py --bootstrap 127.0.0.1:19092 \\
        --registry-url http://127.0.0.1:18081/apis/ccompat/v7 --events 20000 --mode both

It configures Django in-process, declares an OpenEdxPublicSignal whose data has the same shape
as flowbus's "work item completed" event, and times the real Open edX code paths:

* producer: ``get_producer().send(...)`` for N events, then ``prepare_for_shutdown()`` (flush);
  events/s over the whole send + flush.
* consumer: ``make_single_consumer(...).consume_indefinitely()``, re-sending each event through
  the signal to a counting no-op receiver; events/s from the 1st to the Nth received event.

Prints one JSON object on stdout. Exit status 0 only if every event was produced / received
without an error logged by the peer libraries; the JSON is printed in every case.
"""

import argparse
import json
import logging
import os
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # peer_support.py

from peer_support import versions

EVENT_TYPE = "org.flowbus.peer.workflow.work_item.completed.v1"
BASE_TOPIC = "work-item-completed"  # EVENT_BUS_TOPIC_PREFIX is prepended by edx-event-bus-kafka
EVENT_KEY_FIELD = "work_item.case_id"
SERVICE_NAME = "flowbus-peer-bench"
# Hard stop: the process exits by itself this long after --timeout, whatever hangs.
HARD_STOP_GRACE_S = 30.0
VERSIONED_PACKAGES = (
    "openedx-events",
    "edx-event-bus-kafka",
    "Django",
    "confluent-kafka",
    "fastavro",
    "attrs",
    "edx-django-utils",
    "edx-toggles",
)

log = logging.getLogger("bench_openedx")


# --- Event data: same shape as flowbus's work item completed event -------------------------------
# openedx-events builds the Avro schema from these attrs classes (record names = class names).
# `type=` is given explicitly because openedx-events reads `attribute.type`.


@attr.s(frozen=True, kw_only=True)
class WorkItemData:
    """A workflow work item (flowbus's work item record)."""

    id = attr.ib(type=str)
    case_id = attr.ib(type=str)
    task_slug = attr.ib(type=str)
    name = attr.ib(type=str)
    status = attr.ib(type=str)
    assigned_users = attr.ib(type=list[str])
    addressed_groups = attr.ib(type=list[str])
    controlling_groups = attr.ib(type=list[str])
    # default=None makes openedx-events emit the Avro union ["null", "string"].
    deadline = attr.ib(type=datetime, default=None)
    created_at = attr.ib(type=datetime)
    modified_at = attr.ib(type=datetime)
    meta = attr.ib(type=str)


@attr.s(frozen=True, kw_only=True)
class UserData:
    """The user who completed the work item."""

    username = attr.ib(type=str)
    groups = attr.ib(type=list[str])


def build_event_data(count: int) -> list[dict[str, Any]]:
    """Signal kwargs for `count` distinct events (distinct ids and case ids, i.e. keys)."""
    now = datetime.now(UTC)
    user = UserData(username="alice.meier", groups=["building-authority", "fire-department"])
    events = []
    for i in range(count):
        created = now - timedelta(hours=3, seconds=i)
        work_item = WorkItemData(
            id=str(uuid.uuid4()),
            case_id=str(uuid.uuid4()),
            task_slug="review-building-permit",
            name="Review building permit application",
            status="completed",
            assigned_users=["alice.meier", "bruno.keller", "chantal.roth"],
            addressed_groups=["building-authority", "fire-department"],
            controlling_groups=["building-authority", "municipality-admin"],
            deadline=created + timedelta(days=14),
            created_at=created,
            modified_at=now,
            meta=json.dumps({"priority": "high", "channel": "e-portal", "form_version": 3}),
        )
        context = json.dumps(
            {"request_id": str(uuid.uuid4()), "tenant": "municipality-42", "origin": "caluma"}
        )
        events.append({"work_item": work_item, "user": user, "context": context})
    return events


# --- Setup outside the timed sections ------------------------------------------------------------


class ErrorCounter(logging.Handler):
    """Counts ERROR records: both Open edX sides log (and swallow) failures instead of raising."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.count = 0
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if len(self.first) < 5:
            self.first.append(f"{record.name}: {record.getMessage()[:300]}")


def configure_django(args: argparse.Namespace) -> None:
    """In-process Django settings; the EVENT_BUS_* names are those edx-event-bus-kafka reads."""
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,  # DEBUG=True would make signal sending non-robust (receivers' errors raise)
        USE_TZ=True,
        DATABASES={},  # the consumer's per-message DB reconnect check then finds no connection
        INSTALLED_APPS=["openedx_events", "edx_event_bus_kafka"],
        EVENTS_SERVICE_NAME=SERVICE_NAME,  # CloudEvent source and Kafka client.id
        EVENT_BUS_PRODUCER="edx_event_bus_kafka.create_producer",
        EVENT_BUS_CONSUMER="edx_event_bus_kafka.KafkaEventConsumer",
        EVENT_BUS_KAFKA_BOOTSTRAP_SERVERS=args.bootstrap,
        EVENT_BUS_KAFKA_SCHEMA_REGISTRY_URL=args.registry_url,
        EVENT_BUS_TOPIC_PREFIX=args.topic_prefix,
        # No APM agent in this benchmark (the default backend is New Relic, not installed).
        OPENEDX_TELEMETRY=[],
    )
    django.setup()


def make_signal() -> Any:
    from openedx_events.tooling import OpenEdxPublicSignal

    return OpenEdxPublicSignal(
        event_type=EVENT_TYPE,
        data={"work_item": WorkItemData, "user": UserData, "context": str},
    )


def full_topic(args: argparse.Namespace) -> str:
    return f"{args.topic_prefix}-{BASE_TOPIC}"


def ensure_topic(args: argparse.Namespace) -> None:
    """Create the topic (Open edX expects topics to exist; this is deployment, not timed)."""
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    topic = full_topic(args)
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=args.partitions, replication_factor=1)]
    )
    try:
        futures[topic].result(timeout=30)
    except Exception as exc:
        err = exc.args[0] if exc.args else None
        if not (hasattr(err, "code") and err.code() == KafkaError.TOPIC_ALREADY_EXISTS):
            raise


def watermarks(args: argparse.Namespace) -> list[tuple[int, int, int]]:
    """(partition, low, high) of the topic's partitions."""
    from confluent_kafka import Consumer, TopicPartition

    probe = Consumer({"bootstrap.servers": args.bootstrap, "group.id": f"probe-{uuid.uuid4().hex}"})
    try:
        topic = full_topic(args)
        meta = probe.list_topics(topic, timeout=30).topics[topic]
        if meta.error is not None:
            raise RuntimeError(f"topic {topic}: {meta.error}")
        result = []
        for partition in sorted(meta.partitions):
            low, high = probe.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
            result.append((partition, low, high))
        return result
    finally:
        probe.close()


def position_group_at_start(args: argparse.Namespace, group_id: str) -> None:
    """Commit offsets at each partition's start for a fresh group.

    edx-event-bus-kafka sets no auto.offset.reset, so librdkafka's default ("latest") would make a
    new group skip events already in the topic. Committing the start offsets first is the same
    thing the library's own offset-reset mode (offset_time) does; no message is consumed here.
    """
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    partitions = [TopicPartition(full_topic(args), p, low) for p, low, _ in watermarks(args)]
    futures = admin.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group_id, partitions)]
    )
    for future in futures.values():
        future.result(timeout=30)


# --- Timed sections ------------------------------------------------------------------------------


def run_producer(args: argparse.Namespace, signal: Any, errors: ErrorCounter) -> dict[str, Any]:
    from edx_event_bus_kafka import KafkaEventProducer
    from openedx_events.event_bus import get_producer

    producer = get_producer()
    # get_producer() turns any configuration error into a do-nothing producer: refuse that.
    if not isinstance(producer, KafkaEventProducer):
        raise RuntimeError(f"EVENT_BUS_PRODUCER did not load, got {type(producer).__name__}")

    events = build_event_data(args.events)
    before = sum(high for _, _, high in watermarks(args))
    errors_before = errors.count

    def send(event_data: dict[str, Any]) -> None:
        producer.send(
            signal=signal,
            topic=BASE_TOPIC,
            event_key_field=EVENT_KEY_FIELD,
            event_data=event_data,
            # As the openedx-events signal handler does: fresh metadata (id, time) per event.
            event_metadata=signal.generate_signal_metadata(),
        )

    start = time.perf_counter()
    # The first send builds the serializers and registers the key and value schemas (HTTP to
    # the registry); it stays inside the timed section but is reported on its own.
    send(events[0])
    first_sent = time.perf_counter()
    for event_data in events[1:]:
        send(event_data)
    sent = time.perf_counter()
    producer.prepare_for_shutdown()  # flush(-1): every event acknowledged by the broker
    end = time.perf_counter()

    landed = sum(high for _, _, high in watermarks(args)) - before
    elapsed = end - start
    return {
        "ok": landed == args.events and errors.count == errors_before,
        "events_per_s": args.events / elapsed,
        "elapsed_s": elapsed,
        "first_send_s": first_sent - start,
        "send_loop_s": sent - start,
        "flush_s": end - sent,
        "events_in_topic": landed,
        "errors_logged": errors.count - errors_before,
    }


class CountingReceiver:
    """No-op signal receiver that counts events and stops the consumer loop at the Nth."""

    def __init__(self, expected: int, consumer: Any) -> None:
        self.expected = expected
        self.consumer = consumer
        self.count = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.wrong_types = 0

    def __call__(self, sender: Any, **kwargs: Any) -> None:
        now = time.perf_counter()
        if self.count == 0:
            self.first_at = now
        self.count += 1
        if not isinstance(kwargs.get("work_item"), WorkItemData):
            self.wrong_types += 1
        if self.count == self.expected:
            self.last_at = now
            # The library's own loop-exit flag, checked at the top of each loop iteration: this
            # event still completes its full path (receiver results check, offset commit), then
            # the loop exits and closes the consumer by itself.
            self.consumer._shut_down()


class CommitProbe(threading.Thread):
    """Watches the group's committed offsets to find when all N events are committed.

    The Open edX loop commits every message asynchronously, so "received" and "committed" can
    be far apart; this records the latter without touching the consumer. One admin request
    every PROBE_INTERVAL_S on its own connection.
    """

    PROBE_INTERVAL_S = 0.2

    def __init__(self, args: argparse.Namespace, group_id: str, target: int) -> None:
        super().__init__(name="commit-probe", daemon=True)
        from confluent_kafka.admin import AdminClient

        self.admin = AdminClient({"bootstrap.servers": args.bootstrap})
        self.group_id = group_id
        self.target = target
        self.stop = threading.Event()
        self.committed = 0
        self.all_committed_at: float | None = None

    def check(self) -> None:
        from confluent_kafka import ConsumerGroupTopicPartitions

        futures = self.admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(self.group_id)]
        )
        result = futures[self.group_id].result(timeout=10)
        self.committed = sum(max(tp.offset, 0) for tp in result.topic_partitions)
        if self.committed >= self.target and self.all_committed_at is None:
            self.all_committed_at = time.perf_counter()

    def run(self) -> None:
        while self.all_committed_at is None and not self.stop.wait(self.PROBE_INTERVAL_S):
            try:
                self.check()
            except Exception as exc:  # a failed probe must not end the benchmark
                log.warning("commit probe failed: %r", exc)


def run_consumer(
    args: argparse.Namespace, signal: Any, errors: ErrorCounter, deadline: float
) -> dict[str, Any]:
    from edx_event_bus_kafka import KafkaEventConsumer
    from openedx_events.event_bus import make_single_consumer

    available = sum(high - low for _, low, high in watermarks(args))
    if available < args.events:
        raise RuntimeError(
            f"topic {full_topic(args)} holds {available} events, fewer than --events {args.events}"
        )
    group_id = f"{full_topic(args)}-bench-{uuid.uuid4().hex[:8]}"
    position_group_at_start(args, group_id)
    start_offsets = sum(low for _, low, _ in watermarks(args))
    probe = CommitProbe(args, group_id, start_offsets + args.events)

    consumer = make_single_consumer(topic=BASE_TOPIC, group_id=group_id)
    if not isinstance(consumer, KafkaEventConsumer):
        raise RuntimeError(f"EVENT_BUS_CONSUMER did not load, got {type(consumer).__name__}")
    receiver = CountingReceiver(args.events, consumer)
    signal.connect(receiver, weak=False)

    timed_out = threading.Event()

    def stop_on_timeout() -> None:
        if receiver.count < args.events:  # past the Nth event the loop is already closing
            timed_out.set()
            consumer._shut_down()  # the loop notices within one poll timeout (1 s by default)

    watchdog = threading.Timer(max(deadline - time.monotonic(), 1.0), stop_on_timeout)
    watchdog.daemon = True
    errors_before = errors.count
    watchdog.start()
    start = time.perf_counter()
    probe.start()
    try:
        consumer.consume_indefinitely()
    finally:
        watchdog.cancel()
        signal.disconnect(receiver)
    loop_exit = time.perf_counter()
    probe.stop.set()
    probe.join()
    if probe.all_committed_at is None:
        try:
            probe.check()  # the consumer is closed: this is the final committed position
        except Exception as exc:
            log.warning("final commit probe failed: %r", exc)

    result: dict[str, Any] = {
        "ok": receiver.count == args.events
        and probe.committed - start_offsets >= args.events
        and not timed_out.is_set()
        and receiver.wrong_types == 0
        and errors.count == errors_before,
        "received": receiver.count,
        "timed_out": timed_out.is_set(),
        "wrong_types": receiver.wrong_types,
        "errors_logged": errors.count - errors_before,
        "consumer_group": group_id,
        "loop_s": loop_exit - start,
        "committed": probe.committed - start_offsets,
        "events_per_s": None,
    }
    if receiver.last_at is not None:
        # consume_indefinitely() closes the consumer on exit; close waits for in-flight commits.
        result["close_s"] = loop_exit - receiver.last_at
        if probe.all_committed_at is not None:
            result["last_event_to_all_committed_s"] = probe.all_committed_at - receiver.last_at
            if receiver.first_at is not None and probe.all_committed_at > receiver.first_at:
                # Durable rate: 1st event received to all N offsets committed.
                result["committed_events_per_s"] = args.events / (
                    probe.all_committed_at - receiver.first_at
                )
    if receiver.first_at is not None:
        result["startup_to_first_event_s"] = receiver.first_at - start
    if receiver.first_at is not None and receiver.last_at is not None and receiver.count > 1:
        span = receiver.last_at - receiver.first_at
        result["first_to_last_s"] = span
        # N-1 intervals between the 1st and the Nth event.
        result["events_per_s"] = (receiver.count - 1) / span
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Open edX event bus peer benchmark")
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--registry-url", required=True, help="Confluent-compatible registry URL")
    parser.add_argument("--events", type=int, default=20000, help="N events (default 20000)")
    parser.add_argument(
        "--topic-prefix",
        help="EVENT_BUS_TOPIC_PREFIX; default a fresh peer-openedx-<hex> (unique topic/subjects). "
        "Required with --mode consume: the prefix of the run that produced the events.",
    )
    parser.add_argument("--mode", choices=("produce", "consume", "both"), default="both")
    parser.add_argument("--partitions", type=int, default=1, help="partitions of a new topic")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds the whole run may take (default 600)"
    )
    args = parser.parse_args(argv)
    if args.events < 1:
        parser.error("--events must be >= 1")
    if args.topic_prefix is None:
        if args.mode == "consume":
            parser.error("--mode consume needs --topic-prefix of the producing run")
        args.topic_prefix = f"peer-openedx-{uuid.uuid4().hex[:8]}"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    deadline = time.monotonic() + args.timeout
    hard_stop = threading.Timer(args.timeout + HARD_STOP_GRACE_S, lambda: os._exit(3))
    hard_stop.daemon = True
    hard_stop.start()

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    errors = ErrorCounter()
    logging.getLogger().addHandler(errors)

    configure_django(args)
    signal = make_signal()
    ensure_topic(args)

    report: dict[str, Any] = {
        "producer_events_per_s": None,
        "consumer_events_per_s": None,
        "consumer_committed_events_per_s": None,
        "events": args.events,
        "versions": versions(VERSIONED_PACKAGES),
        "mode": args.mode,
        "topic": full_topic(args),
        "partitions": len(watermarks(args)),
        # The machine is shared: a high load average means noisy figures.
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    ok = True
    if args.mode in ("produce", "both"):
        produced = run_producer(args, signal, errors)
        report["producer_events_per_s"] = round(produced.pop("events_per_s"), 1)
        report["producer"] = produced
        ok = ok and produced["ok"]
    if args.mode in ("consume", "both") and ok:
        consumed = run_consumer(args, signal, errors, deadline)
        rate = consumed.pop("events_per_s")
        report["consumer_events_per_s"] = None if rate is None else round(rate, 1)
        committed_rate = consumed.pop("committed_events_per_s", None)
        report["consumer_committed_events_per_s"] = (
            None if committed_rate is None else round(committed_rate, 1)
        )
        report["consumer"] = consumed
        ok = ok and consumed["ok"]
    report["ok"] = ok
    if errors.first:
        report["first_errors"] = errors.first
    print(json.dumps(report, indent=2, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
