"""``flowbus dlq list|show|replay`` on the real broker, over fabricated dead-letter records."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sample_events
from broker_helpers import read_to_end
from click.testing import CliRunner, Result
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from flowbus import cloudevents
from flowbus.avro.serializer import EventSerializer
from flowbus.catalog import caluma
from flowbus.cli import main
from flowbus.consumer.dead_letter import PREFIX, DeadLetter, Reason
from flowbus.json_output import to_json_value
from flowbus.settings import get_settings
from flowbus.testing import isolated_receivers

pytestmark = pytest.mark.usefixtures("flowbus_env")

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
TYPE_A_CREATED = "org.flowbus.test.a.created.v1"
TYPE_A_DELETED = "org.flowbus.test.a.deleted.v1"
TYPE_B_CREATED = "org.flowbus.test.b.created.v1"


def bootstrap() -> str:
    servers = get_settings().kafka_bootstrap_servers
    assert servers
    return servers


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["dlq", *args])


def iso(value: datetime) -> str:
    return cloudevents.format_time(value)


def event_headers(event_type: str, event_id: str) -> list[tuple[str, bytes]]:
    return [
        (cloudevents.TYPE, event_type.encode()),
        (cloudevents.ID, event_id.encode()),
        ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    ]


def letter(
    topic: str,
    offset: int,
    event_type: str,
    *,
    reason: Reason = Reason.RECEIVER_FAILED,
    error: BaseException | None = None,
    value: bytes = b"payload",
    headers: list[tuple[str, bytes]] | None = None,
) -> DeadLetter:
    return DeadLetter(
        reason=reason,
        error=error or RuntimeError("receiver exploded"),
        topic=topic,
        partition=0,
        offset=offset,
        key=f"key-{offset}".encode(),
        value=value,
        headers=headers or event_headers(event_type, str(uuid.uuid4())),
        group="workers",
        attempts=3,
        failed_receivers=["app.receivers.on_created"],
    )


def produce_letters(dlq_topic: str, letters: list[tuple[int, DeadLetter, datetime]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap()})
    for partition, dead, when in letters:
        producer.produce(
            dlq_topic,
            key=dead.key,
            value=dead.value,
            headers=dead.record_headers(now=when),
            partition=partition,
        )
    assert producer.flush(30) == 0


def read_topic(topic: str, partitions: int = 1) -> list:
    messages = read_to_end(topic)
    assert {m.partition() for m in messages} <= set(range(partitions))
    return messages


@pytest.fixture
def three_letters(unique_topic):
    """An event topic and its two-partition dead-letter topic holding three records."""
    topic = unique_topic()
    dlq = unique_topic(partitions=2, name=f"{topic}.dlq")
    letters = [
        (0, letter(topic, 5, TYPE_A_CREATED), T0),
        (
            1,
            letter(topic, 6, TYPE_A_DELETED, reason=Reason.UNDECODABLE),
            T0 + timedelta(minutes=10),
        ),
        (0, letter(topic, 7, TYPE_B_CREATED, error=KeyError("k")), T0 + timedelta(minutes=20)),
    ]
    produce_letters(dlq, letters)
    return topic, dlq, [dead for _, dead, _ in letters]


def table(result: Result) -> list[list[str]]:
    return [line.split() for line in result.stdout.splitlines()]


def test_list_prints_one_row_per_record(three_letters):
    topic, dlq, letters = three_letters

    result = run("list", "--source", topic)

    assert result.exit_code == 0, result.output
    rows = table(result)
    assert rows[0] == ["DLQ", "OFFSET", "DEAD-LETTERED", "CE_TYPE", "CE_ID", "REASON", "ERROR",
                       "ORIGIN"]  # fmt: skip
    by_offset = {row[0]: row for row in rows[1:]}
    assert set(by_offset) == {"0:0", "0:1", "1:0"}
    first_id = dict(letters[0].headers)[cloudevents.ID].decode()
    assert by_offset["0:0"] == [
        "0:0", iso(T0), TYPE_A_CREATED, first_id, "receiver-failed", "builtins.RuntimeError",
        f"{topic}[0]@5",
    ]  # fmt: skip
    second_id = dict(letters[1].headers)[cloudevents.ID].decode()
    assert by_offset["1:0"] == [
        "1:0", iso(T0 + timedelta(minutes=10)), TYPE_A_DELETED, second_id, "undecodable",
        "builtins.RuntimeError", f"{topic}[0]@6",
    ]  # fmt: skip
    assert by_offset["0:1"][2] == TYPE_B_CREATED
    assert by_offset["0:1"][5] == "builtins.KeyError"
    assert f"3 of 3 record(s) in '{dlq}' match." in result.stderr


def test_list_filters_by_event_type_glob_and_time(three_letters):
    topic, _, _ = three_letters

    def offsets(*args: str) -> list[str]:
        result = run("list", "--source", topic, *args)
        assert result.exit_code == 0, result.output
        return sorted(row[0] for row in table(result)[1:])

    assert offsets("--event-type", "org.flowbus.test.a.*") == ["0:0", "1:0"]
    assert offsets("--event-type", TYPE_B_CREATED) == ["0:1"]
    assert offsets("--event-type", "nothing.*") == []
    assert offsets("--since", iso(T0 + timedelta(minutes=10))) == ["0:1", "1:0"]
    assert offsets("--until", iso(T0 + timedelta(minutes=10))) == ["0:0"]
    window = ("--since", iso(T0 + timedelta(minutes=5)), "--until", iso(T0 + timedelta(minutes=15)))
    assert offsets(*window) == ["1:0"]
    assert offsets("--event-type", "*.created.*", "--since", iso(T0 + timedelta(minutes=1))) == [
        "0:1"
    ]


def test_list_json_and_explicit_dlq_topic(three_letters):
    topic, dlq, _ = three_letters

    result = run("list", "--topic", dlq, "--json", "--event-type", TYPE_B_CREATED)

    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 1
    assert rows[0]["dlq_offset"] == "0:1"
    assert rows[0]["origin"] == f"{topic}[0]@7"
    assert rows[0]["error_type"] == "builtins.KeyError"
    assert f"1 of 3 record(s) in '{dlq}' match." in result.stderr


def test_reading_commits_nothing_and_joins_no_group(three_letters):
    topic, _, _ = three_letters

    assert run("list", "--source", topic).exit_code == 0

    admin = AdminClient({"bootstrap.servers": bootstrap()})
    groups = admin.list_consumer_groups().result(30).valid
    assert not [g.group_id for g in groups if g.group_id.startswith("flowbus-ops-reader-")]


def test_show_prints_headers_error_and_size_but_not_the_payload(unique_topic):
    topic = unique_topic()
    dlq = unique_topic(name=f"{topic}.dlq")
    secret = b"secret-payload: alice@example.org"
    dead = letter(topic, 3, TYPE_A_CREATED, value=secret, error=ValueError("bad\nsecond line"))
    produce_letters(dlq, [(0, dead, T0)])

    result = run("show", "--source", topic, "0")
    with_data = run("show", "--source", topic, "0:0", "--hex")

    assert result.exit_code == 0, result.output
    out = result.output
    assert f"Record:        {dlq}[0]@0" in out
    assert f"Origin:        {topic}[0]@3" in out
    assert f"Value size:    {len(secret)} bytes" in out
    assert "Key:           'key-3'" in out
    assert "Attempts:      3" in out
    assert "Receivers:     app.receivers.on_created" in out
    for name, value in dead.record_headers(now=T0):
        if name != f"{PREFIX}error-message":
            assert f"  {name}: {value.decode()}" in out
    assert "Error message:\n  bad\n  second line\n" in out
    assert b"alice" not in out.encode() and "secret" not in out
    assert with_data.exit_code == 0, with_data.output
    assert "Value:" in with_data.output
    assert "secret-payload:" in with_data.output  # the ASCII column of the hex dump
    assert "73 65 63 72 65 74" in with_data.output  # "secret"


def test_show_bad_positions_exit_2(three_letters, unique_topic):
    topic, dlq, _ = three_letters

    one_number = run("show", "--source", topic, "1")
    beyond = run("show", "--source", topic, "0:9")
    no_partition = run("show", "--source", topic, "5:0")
    garbage = run("show", "--source", topic, "x:y")

    assert one_number.exit_code == 2
    assert f"'{dlq}' has 2 partitions: give the record as PARTITION:OFFSET" in one_number.output
    assert beyond.exit_code == 2
    assert f"no record at {dlq}[0]@9: the partition holds offsets 0..1" in beyond.output
    assert no_partition.exit_code == 2 and "has no partition 5" in no_partition.output
    assert garbage.exit_code == 2 and "'x:y' is not OFFSET or PARTITION:OFFSET" in garbage.output


def test_unknown_dlq_topic_exits_2_and_is_not_created(kafka_stack):
    topic = f"no-such-topic-{uuid.uuid4().hex[:8]}"

    result = run("list", "--source", topic)

    assert result.exit_code == 2
    assert f"topic '{topic}.dlq' does not exist" in result.output
    admin = AdminClient({"bootstrap.servers": bootstrap()})
    assert f"{topic}.dlq" not in admin.list_topics(timeout=30).topics


def test_replay_republishes_original_records_without_dlq_headers(three_letters):
    topic, _, letters = three_letters

    result = run("replay", "--source", topic, "--event-type", "org.flowbus.test.a.*")

    assert result.exit_code == 0, result.output
    assert "Replayed 2 of 2 record(s)." in result.stdout
    arrived = read_topic(topic)
    assert len(arrived) == 2
    originals = {dead.key: dead for dead in letters[:2]}
    for message in arrived:
        dead = originals[message.key()]
        assert message.value() == dead.value
        assert message.headers() == list(dead.headers)
        assert not [name for name, _ in message.headers() if name.startswith(PREFIX)]
    assert f"-> {topic}[0]@" in result.stdout
    replayed = [line for line in result.stdout.splitlines() if " replayed " in line]
    assert [line.split()[0] for line in replayed] == ["[1/2]", "[2/2]"]  # how far it is


def test_replay_dry_run_writes_nothing(three_letters):
    topic, _, _ = three_letters

    result = run("replay", "--source", topic, "--all", "--dry-run")

    assert result.exit_code == 0, result.output
    assert result.stdout.count(f"-> {topic}") == 3
    assert "Dry run: 3 record(s) would be replayed; nothing changed." in result.stdout
    assert read_topic(topic) == []


def test_replay_json_reports_the_plan_and_each_record(three_letters):
    topic, _, letters = three_letters

    plan = run("replay", "--source", topic, "--all", "--dry-run", "--json")
    assert plan.exit_code == 0, plan.output
    planned = json.loads(plan.stdout)
    assert (planned["dry_run"], planned["selected"], planned["replayed"]) == (True, 3, 0)
    assert [r["outcome"] for r in planned["records"]] == ["would replay"] * 3
    assert {r["destination"] for r in planned["records"]} == {topic}
    assert read_topic(topic) == []

    done = run("replay", "--source", topic, "--record", "0:1", "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert (report["dry_run"], report["selected"], report["replayed"]) == (False, 1, 1)
    [record] = report["records"]
    assert (record["record"], record["outcome"], record["topic"]) == ("0:1", "replayed", topic)
    [message] = read_topic(topic)
    assert message.offset() == record["offset"] and message.key() == letters[2].key


def test_replay_by_record_position(three_letters):
    topic, _, letters = three_letters

    result = run("replay", "--source", topic, "--record", "0:1")

    assert result.exit_code == 0, result.output
    assert [m.key() for m in read_topic(topic)] == [letters[2].key]


def test_replay_needs_a_filter_or_all(three_letters):
    topic, _, _ = three_letters

    result = run("replay", "--source", topic)

    assert result.exit_code == 2
    assert "no filter given" in result.output
    assert read_topic(topic) == []


def test_replay_refuses_records_of_unknown_origin(unique_topic):
    topic = unique_topic()
    dlq = unique_topic(name=f"{topic}.dlq")
    producer = Producer({"bootstrap.servers": bootstrap()})
    producer.produce(dlq, value=b"not a dead letter", headers=[("ce_type", b"x.y.v1")])
    assert producer.flush(30) == 0

    listed = run("list", "--source", topic)
    result = run("replay", "--source", topic, "--all")

    assert listed.exit_code == 0
    assert table(listed)[1] == ["0:0", "?", "x.y.v1", "?", "?", "?", "?[?]@?"]
    assert result.exit_code == 1
    assert "record(s) 0:0 have no flowbus-dlq-original-topic header" in result.output


def test_replay_to_a_deleted_original_topic_fails_without_creating_it(unique_topic):
    topic = f"gone-{uuid.uuid4().hex[:8]}"
    dlq = unique_topic(name=f"{topic}.dlq")
    produce_letters(dlq, [(0, letter(topic, 0, TYPE_A_CREATED), T0)])

    result = run("replay", "--source", topic, "--all")

    assert result.exit_code == 1
    assert f"original topic '{topic}' does not exist" in result.output
    admin = AdminClient({"bootstrap.servers": bootstrap()})
    assert topic not in admin.list_topics(timeout=30).topics


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.received: list = []

    def __call__(self, sender, signal, metadata, from_event_bus, **data):
        self.received.append((metadata, data))
        if self.fail:
            raise RuntimeError("still broken")


def real_event(topic: str, offset: int = 0) -> tuple:
    """A real Caluma event (encoded as the producer would) and its dead letter as if from
    ``topic`` at ``offset``: (metadata, data, dead letter)."""
    signal = caluma.WORK_ITEM_POST_COMPLETE
    data = signal.validate_data(**sample_events.work_item_event())
    metadata = signal.generate_signal_metadata()
    serialized = EventSerializer.from_settings(get_settings()).serialize(signal, data, topic)
    headers = cloudevents.to_headers(metadata, dataschema=serialized.dataschema)
    dead = DeadLetter(
        reason=Reason.RECEIVER_FAILED,
        error=RuntimeError("receiver exploded"),
        topic=topic,
        partition=0,
        offset=offset,
        key=b"k",
        value=serialized.value,
        headers=headers,
        group="workers",
    )
    return metadata, data, dead


def real_dead_letter(topic: str, dlq: str) -> tuple:
    """A real Caluma event dead-lettered from ``topic``: (metadata, data)."""
    metadata, data, dead = real_event(topic)
    produce_letters(dlq, [(0, dead, T0)])
    return metadata, data


def test_replay_local_handles_records_in_process(unique_topic):
    topic = unique_topic()
    dlq = unique_topic(name=f"{topic}.dlq")
    metadata, data = real_dead_letter(topic, dlq)
    recorder = Recorder()

    with isolated_receivers():
        caluma.WORK_ITEM_POST_COMPLETE.connect(recorder)
        dry = run("replay", "--source", topic, "--all", "--local", "--dry-run")
        result = run("replay", "--source", topic, "--all", "--local")

    assert dry.exit_code == 0 and "-> here" in dry.stdout
    assert result.exit_code == 0, result.output
    assert f"handled 0:0 ({metadata.event_type} {metadata.id}) (1 attempt(s))" in result.stdout
    assert len(recorder.received) == 1
    received_metadata, received_data = recorder.received[0]
    assert received_metadata == metadata
    assert received_data == data
    assert read_topic(topic) == []  # handled here, nothing re-published


def test_replay_local_reports_records_failing_again(unique_topic):
    topic = unique_topic()
    dlq = unique_topic(name=f"{topic}.dlq")
    metadata, _ = real_dead_letter(topic, dlq)

    with isolated_receivers():
        caluma.WORK_ITEM_POST_COMPLETE.connect(Recorder(fail=True))
        result = run("replay", "--source", topic, "--all", "--local", "--group", "ops")

    assert result.exit_code == 1, result.output  # a failure (the exit-code table)
    assert (
        f"FAILED 0:0 ({metadata.event_type} {metadata.id}): receiver-failed: "
        "RuntimeError: still broken"
    ) in result.stdout
    assert "Replayed 0 of 1 record(s)." in result.stdout


# --- pointer records (the original was too large for the dead-letter topic) -----------------

#: Large and not text: the bytes must arrive exactly.
BIG_VALUE = bytes(range(256)) * 800


def produce_original(
    topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
) -> int:
    """Write ``value`` to ``topic`` (after a filler record, so its offset is not 0)."""
    producer = Producer({"bootstrap.servers": bootstrap(), "message.max.bytes": 2_000_000})
    offsets: list[int] = []
    producer.produce(topic, key=b"filler", value=b"filler")
    producer.produce(
        topic,
        key=key,
        value=value,
        headers=headers,
        on_delivery=lambda error, message: offsets.append(message.offset()),
    )
    assert producer.flush(30) == 0
    return offsets[0]


def produce_pointer(dlq_topic: str, dead: DeadLetter, *, keep_original: bool = True) -> None:
    key, value, headers = dead.pointer(keep_original=keep_original)
    assert value is None
    producer = Producer({"bootstrap.servers": bootstrap()})
    producer.produce(dlq_topic, key=key, value=value, headers=headers)
    assert producer.flush(30) == 0


@pytest.fixture
def pointed_at(unique_topic):
    """An event topic holding a large original, and an empty dead-letter topic for it."""
    topic = unique_topic()
    dlq = unique_topic(name=f"{topic}.dlq")
    headers = event_headers(TYPE_A_CREATED, str(uuid.uuid4()))
    offset = produce_original(topic, b"case-7", BIG_VALUE, headers)
    dead = letter(topic, offset, TYPE_A_CREATED, value=BIG_VALUE, headers=headers)
    dead = dataclasses.replace(dead, key=b"case-7")
    return topic, dlq, dead


def test_list_and_show_mark_a_pointer_record(pointed_at):
    topic, dlq, dead = pointed_at
    produce_pointer(dlq, dead)

    listed = run("list", "--source", topic)
    as_json = run("list", "--source", topic, "--json")
    shown = run("show", "--source", topic, "0", "--data")

    assert listed.exit_code == 0, listed.output
    assert table(listed)[1][-2:] == [f"{topic}[0]@{dead.offset}", "(pointer)"]
    assert json.loads(as_json.stdout.splitlines()[0])["pointer"] is True
    assert shown.exit_code == 0, shown.output
    out = shown.output
    assert "Value size:    null" in out
    assert f"Pointer:       yes: no value here; the original is at {topic}[0]@{dead.offset}" in out
    assert f"Original size: {len(BIG_VALUE)} bytes" in out
    assert f"SHA-256:       {hashlib.sha256(BIG_VALUE).hexdigest()}" in out
    assert f"  {PREFIX}pointer: true" in out
    assert "Event:\n  null (a pointer record" in out


def test_list_does_not_mark_ordinary_records(three_letters):
    topic, _, _ = three_letters

    result = run("list", "--source", topic, "--json")

    assert [json.loads(line)["pointer"] for line in result.stdout.splitlines()] == [False] * 3
    assert "(pointer)" not in run("list", "--source", topic).stdout


@pytest.mark.parametrize("keep_original", [True, False])
def test_replay_of_a_pointer_republishes_the_original_read_back(pointed_at, keep_original):
    topic, dlq, dead = pointed_at
    produce_pointer(dlq, dead, keep_original=keep_original)

    dry = run("replay", "--source", topic, "--all", "--dry-run")
    result = run("replay", "--source", topic, "--all")

    assert dry.exit_code == 0, dry.output
    assert f"(pointer: original read from {topic}[0]@{dead.offset}) -> {topic}" in dry.stdout
    assert result.exit_code == 0, result.output
    event_id = dict(dead.headers)[cloudevents.ID].decode()
    assert (
        f"replayed 0:0 ({TYPE_A_CREATED} {event_id}) (pointer: original read from "
        f"{topic}[0]@{dead.offset}) -> {topic}[0]@{dead.offset + 1}"
    ) in result.stdout
    assert "Replayed 1 of 1 record(s)." in result.stdout
    arrived = read_topic(topic)
    assert len(arrived) == 3  # filler, original, the replayed original
    replayed = arrived[-1]
    assert replayed.value() == BIG_VALUE
    assert replayed.key() == b"case-7"
    assert replayed.headers() == list(dead.headers)


def test_replay_of_a_pointer_whose_original_is_gone_fails_naming_it(pointed_at):
    topic, dlq, dead = pointed_at
    produce_pointer(dlq, dataclasses.replace(dead, offset=dead.offset + 5))

    result = run("replay", "--source", topic, "--all")

    assert result.exit_code == 1, result.output
    assert (
        f"Error: pointer record {dlq}[0]@0: its original {topic}[0]@{dead.offset + 5} is not "
        "on the broker any more"
    ) in result.output
    assert "not replayed" in result.output
    assert len(read_topic(topic)) == 2  # nothing written


def test_replay_of_a_pointer_whose_original_retention_removed_fails(pointed_at):
    topic, dlq, dead = pointed_at
    produce_pointer(dlq, dead)
    admin = AdminClient({"bootstrap.servers": bootstrap()})
    # As retention would: the log now starts after the original.
    deleted = admin.delete_records([TopicPartition(topic, 0, dead.offset + 1)])
    for future in deleted.values():
        future.result(30)

    result = run("replay", "--source", topic, "--all")

    assert result.exit_code == 1, result.output
    assert f"its original {topic}[0]@{dead.offset} is not on the broker any more" in result.output
    assert read_topic(topic) == []


def test_replay_of_a_pointer_to_another_record_fails_and_stops(pointed_at):
    topic, dlq, dead = pointed_at
    produce_letters(dlq, [(0, letter(topic, 0, TYPE_B_CREATED), T0)])
    produce_pointer(dlq, dataclasses.replace(dead, value=BIG_VALUE[:-1] + b"\x00"))

    result = run("replay", "--source", topic, "--all")

    assert result.exit_code == 1, result.output
    assert "replayed 0:0" in result.stdout  # the ordinary record before it
    assert (
        f"Error: pointer record {dlq}[0]@1: the record at {topic}[0]@{dead.offset} is not its "
        f"original: {len(BIG_VALUE)} bytes with SHA-256 {hashlib.sha256(BIG_VALUE).hexdigest()}"
    ) in result.output
    arrived = read_topic(topic)
    assert [m.key() for m in arrived] == [b"filler", b"case-7", b"key-0"]  # no empty value


def test_replay_local_of_a_pointer_handles_the_original(unique_topic):
    topic = unique_topic()
    dlq = unique_topic(name=f"{topic}.dlq")
    metadata, data, dead = real_event(topic, offset=1)  # produce_original writes a filler first
    assert produce_original(topic, dead.key, dead.value, list(dead.headers)) == dead.offset
    produce_pointer(dlq, dead, keep_original=False)
    recorder = Recorder()

    with isolated_receivers():
        caluma.WORK_ITEM_POST_COMPLETE.connect(recorder)
        result = run("replay", "--source", topic, "--all", "--local")

    assert result.exit_code == 0, result.output
    assert f"handled 0:0 ({metadata.event_type} {metadata.id}) (pointer:" in result.stdout
    assert len(recorder.received) == 1
    assert recorder.received[0] == (metadata, data)


def test_show_data_decodes_the_event_as_the_worker_does(unique_topic):
    topic = unique_topic()
    dlq = unique_topic(name=f"{topic}.dlq")
    metadata, data = real_dead_letter(topic, dlq)

    text = run("show", "--source", topic, "0", "--data")
    as_json = run("show", "--source", topic, "0", "--data", "--json")
    no_payload = run("show", "--source", topic, "0", "--json")

    assert text.exit_code == 0, text.output
    event = text.output.split("Event:\n", 1)[1]
    assert f"{topic}[0]@0" in event and str(metadata.id) in event  # the original's place
    assert '"task_slug": "review"' in event and "POISON" not in event
    assert "Value:" not in text.output  # no hex dump without --hex
    shown = json.loads(as_json.stdout)
    assert (shown["topic"], shown["reason"], shown["attempts"]) == (dlq, "receiver-failed", 1)
    assert shown["event"]["id"] == str(metadata.id)
    assert shown["event"]["failure"] is None
    assert shown["event"]["data"] == to_json_value(data)  # what was sent, as JSON
    assert shown["event"]["data"]["user"]["username"] == "alice"
    assert shown["value"] is None  # bytes only with --hex
    quiet = json.loads(no_payload.stdout)
    assert quiet["event"] is None and quiet["value"] is None and quiet["value_size"] > 0


def test_show_data_names_why_a_poison_record_does_not_decode(unique_topic):
    topic = unique_topic()
    dlq = unique_topic(name=f"{topic}.dlq")
    _, _, dead = real_event(topic)
    poison = dataclasses.replace(dead, reason=Reason.UNDECODABLE, value=b"\x00\x01garbage")
    produce_letters(dlq, [(0, poison, T0)])

    text = run("show", "--source", topic, "0", "--data", "--hex")
    as_json = run("show", "--source", topic, "0", "--data", "--hex", "--json")

    assert text.exit_code == 0, text.output
    assert "POISON undecodable (data failure): " in text.output
    assert "00 01 67 61 72 62 61 67 65" in text.output  # the hex dump, asked for
    shown = json.loads(as_json.stdout)
    assert shown["event"]["data"] is None
    assert shown["event"]["failure"]["reason"] == "undecodable"
    assert shown["value"] == "AAFnYXJiYWdl"  # URL-safe base64 of the value
