"""``flowbus reset-offsets`` on the real broker, run by its old name ``flowbus replay``:
plans, commits, dry runs and refusals."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaError, Producer
from confluent_kafka import TopicPartition as TP
from confluent_kafka.admin import AdminClient

from flowbus.cli import main
from flowbus.settings import get_settings

pytestmark = pytest.mark.usefixtures("flowbus_env")

#: Record timestamps: ten minutes ago, one second apart (recent, so retention keeps them).
BASE_MS = (int(time.time()) - 600) * 1000


def bootstrap() -> str:
    servers = get_settings().kafka_bootstrap_servers
    assert servers
    return servers


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["replay", *args])


def produce_timed(topic: str, count: int, partitions: int = 1) -> None:
    """Record i: value b"i", timestamp BASE_MS + i seconds, partition i % partitions."""
    producer = Producer({"bootstrap.servers": bootstrap()})
    for i in range(count):
        producer.produce(
            topic, value=str(i).encode(), partition=i % partitions, timestamp=BASE_MS + i * 1000
        )
    assert producer.flush(30) == 0


def group_consumer(group: str, **extra: object) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap(),
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            **extra,
        }
    )


def consume_to_end(group: str, topic: str, partitions: int) -> list[bytes]:
    """What the group receives from its committed offsets to the end; commits it."""
    consumer = group_consumer(group)
    consumer.subscribe([topic])
    received: list[bytes] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + 60
    try:
        while len(at_end) < partitions:
            assert time.monotonic() < deadline, f"not at the end of {topic} in time"
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                at_end.add(message.partition())
                continue
            received.append(message.value())
        consumer.commit(asynchronous=False)
    except Exception:
        consumer.close()
        raise
    consumer.close()
    return received


def commit(group: str, topic: str, offsets: dict[int, int]) -> None:
    consumer = group_consumer(group)
    try:
        consumer.commit(offsets=[TP(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    finally:
        consumer.close()


def committed(group: str, topic: str, partitions: int) -> dict[int, int]:
    admin = AdminClient({"bootstrap.servers": bootstrap()})
    request = ConsumerGroupTopicPartitions(group, [TP(topic, p) for p in range(partitions)])
    result = admin.list_consumer_group_offsets([request])[group].result(30)
    return {tp.partition: tp.offset for tp in result.topic_partitions}


@contextlib.contextmanager
def active_member(group: str, topic: str) -> Iterator[None]:
    consumer = group_consumer(group)
    consumer.subscribe([topic])
    deadline = time.monotonic() + 60
    try:
        while not consumer.assignment():
            assert time.monotonic() < deadline, "consumer got no assignment in time"
            consumer.poll(0.2)
        yield
    finally:
        consumer.close()


def test_to_time_redelivers_exactly_the_records_from_that_time(unique_topic, unique_group):
    topic = unique_topic(partitions=2)
    produce_timed(topic, 10, partitions=2)
    assert sorted(consume_to_end(unique_group, topic, 2)) == sorted(
        str(i).encode() for i in range(10)
    )

    # Between record 4 (partition 0) and record 5 (partition 1).
    when = BASE_MS + 4500
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when // 1000)) + ".500Z"
    result = run("--group", unique_group, "--topic", topic, "--to-time", iso)

    assert result.exit_code == 0, result.output
    assert "Total: 5 message(s) re-delivered, 0 skipped, 2 of 2 partition(s) change." in (
        result.output
    )
    assert "Committed new offsets for 2 partition(s)." in result.output
    # Partition 0 holds records 0 2 4 6 8, partition 1 records 1 3 5 7 9 (offsets 0..4):
    # record 6 is offset 3 of partition 0, record 5 offset 2 of partition 1.
    assert committed(unique_group, topic, 2) == {0: 3, 1: 2}
    again = consume_to_end(unique_group, topic, 2)
    assert sorted(again) == [b"5", b"6", b"7", b"8", b"9"]


def test_to_time_after_the_last_record_means_the_end(unique_topic, unique_group):
    topic = unique_topic()
    produce_timed(topic, 4)
    commit(unique_group, topic, {0: 1})

    result = run("--group", unique_group, "--topic", topic, "--to-time", "2999-01-01T00:00:00Z")

    assert result.exit_code == 0, result.output
    assert committed(unique_group, topic, 1) == {0: 4}
    assert "skips 3 message(s)" in result.output


def test_dry_run_changes_nothing(unique_topic, unique_group):
    topic = unique_topic(partitions=2)
    produce_timed(topic, 6, partitions=2)
    consume_to_end(unique_group, topic, 2)
    before = committed(unique_group, topic, 2)

    result = run("--group", unique_group, "--topic", topic, "--to-earliest", "--dry-run")

    assert result.exit_code == 0, result.output
    assert "Total: 6 message(s) re-delivered" in result.output
    assert "Dry run: nothing changed." in result.output
    assert committed(unique_group, topic, 2) == before == {0: 3, 1: 3}


def test_refuses_while_the_group_has_an_active_member(unique_topic, unique_group):
    topic = unique_topic()
    produce_timed(topic, 3)
    commit(unique_group, topic, {0: 3})

    with active_member(unique_group, topic):
        result = run("--group", unique_group, "--topic", topic, "--to-earliest")
        dry = run("--group", unique_group, "--topic", topic, "--to-earliest", "--dry-run")

    assert result.exit_code == 3, result.output
    assert f"consumer group '{unique_group}' has 1 active member(s)" in result.output
    assert "stop its consumers" in result.output
    assert dry.exit_code == 0, dry.output
    assert "a real run would be refused" in dry.output
    assert committed(unique_group, topic, 1) == {0: 3}


def test_plans_to_earliest_latest_and_offsets(unique_topic, unique_group):
    topic = unique_topic(partitions=2)
    produce_timed(topic, 12, partitions=2)  # six records per partition
    commit(unique_group, topic, {0: 3, 1: 4})

    earliest = run("--group", unique_group, "--topic", topic, "--to-earliest", "--dry-run")
    latest = run("--group", unique_group, "--topic", topic, "--to-latest", "--dry-run")
    offsets = run(
        "--group", unique_group, "--topic", topic, "--to-offset", "1:6", "--to-offset", "0:1"
    )

    assert earliest.exit_code == latest.exit_code == offsets.exit_code == 0
    assert "Total: 7 message(s) re-delivered, 0 skipped" in earliest.output
    assert "Total: 0 message(s) re-delivered, 5 skipped" in latest.output
    assert "Total: 2 message(s) re-delivered, 2 skipped, 2 of 2 partition(s) change." in (
        offsets.output
    )
    assert committed(unique_group, topic, 2) == {0: 1, 1: 6}
    rows = [line.split() for line in earliest.output.splitlines() if line.startswith("  ")]
    assert rows[0][:4] == ["partition", "committed", "new", "end"]
    assert rows[1][:4] == ["0", "3", "0", "6"] and rows[2][:4] == ["1", "4", "0", "6"]


def test_to_offset_for_one_partition_leaves_the_others(unique_topic, unique_group):
    topic = unique_topic(partitions=2)
    produce_timed(topic, 4, partitions=2)
    commit(unique_group, topic, {0: 2, 1: 2})

    result = run("--group", unique_group, "--topic", topic, "--to-offset", "1:0")

    assert result.exit_code == 0, result.output
    assert committed(unique_group, topic, 2) == {0: 2, 1: 0}


def test_a_group_without_commits_gets_its_first_offsets(unique_topic, unique_group):
    topic = unique_topic()
    produce_timed(topic, 5)

    result = run("--group", unique_group, "--topic", topic, "--to-offset", "0:2")

    assert result.exit_code == 0, result.output
    assert "no committed offset yet; 3 message(s) to consume" in result.output
    assert consume_to_end(unique_group, topic, 1) == [b"2", b"3", b"4"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to-offset", "3:0"], "has no partition 3 (it has 1: 0..0)"),
        (["--to-offset", "0:9"], "offset 9 is outside partition 0's range [0, 2]"),
        (["--to-offset", "zero"], "'zero' is not PARTITION:OFFSET"),
        (["--to-time", "yesterday"], "'yesterday' is not an ISO 8601 time"),
        (["--to-earliest", "--to-latest"], "give exactly one of"),
        ([], "give exactly one of"),
    ],
    ids=["no-partition", "offset-range", "bad-offset", "bad-time", "two-targets", "no-target"],
)
def test_bad_targets_exit_2(unique_topic, unique_group, args, message):
    topic = unique_topic()
    produce_timed(topic, 2)

    result = run("--group", unique_group, "--topic", topic, *args)

    assert result.exit_code == 2, result.output
    assert message in result.output


def test_unknown_topic_exits_2_and_is_not_created(kafka_stack, unique_group):
    topic = f"no-such-topic-{unique_group}"

    result = run("--group", unique_group, "--topic", topic, "--to-earliest")

    assert result.exit_code == 2, result.output
    assert f"topic '{topic}' does not exist" in result.output
    admin = AdminClient({"bootstrap.servers": bootstrap()})
    assert topic not in admin.list_topics(timeout=30).topics


def test_topic_prefix_is_prepended(unique_topic, unique_group, monkeypatch):
    monkeypatch.setenv("FLOWBUS_TOPIC_PREFIX", "staging.")
    get_settings.cache_clear()
    topic = f"prefixed-{unique_group}"
    full = unique_topic(name=f"staging.{topic}")
    produce_timed(full, 3)

    result = run("--group", unique_group, "--topic", topic, "--to-offset", "0:1")

    assert result.exit_code == 0, result.output
    assert f"on topic '{full}'" in result.output
    assert committed(unique_group, full, 1) == {0: 1}


def test_json_gives_the_plan_and_what_was_committed(unique_topic, unique_group):
    topic = unique_topic(partitions=2)
    produce_timed(topic, 6, partitions=2)
    commit(unique_group, topic, {0: 3, 1: 1})

    dry = run("--group", unique_group, "--topic", topic, "--to-earliest", "--dry-run", "--json")
    real = run("--group", unique_group, "--topic", topic, "--to-offset", "1:3", "--json")

    assert dry.exit_code == 0, dry.output
    plan = json.loads(dry.stdout)
    assert plan["dry_run"] is True and plan["committed"] is None
    assert (plan["group"], plan["topic"], plan["redelivered"], plan["skipped"]) == (
        unique_group, topic, 4, 0,
    )  # fmt: skip
    assert [(p["partition"], p["committed"], p["new"], p["end"]) for p in plan["partitions"]] == [
        (0, 3, 0, 3),
        (1, 1, 0, 3),
    ]
    assert real.exit_code == 0, real.output
    moved = json.loads(real.stdout)
    assert (moved["dry_run"], moved["committed"], moved["skipped"]) == (False, 1, 2)
    assert committed(unique_group, topic, 2) == {0: 3, 1: 3}
