"""The transactional outbox on the real broker and registry, with real SQLite and PostgreSQL:
rollback and commit, SIGKILL after the commit, broker and registry outages, two relays."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sample_events
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from tcp_proxy import TcpProxy

from flowbus import cloudevents
from flowbus.avro.serializer import EventDeserializer, EventSerializer
from flowbus.backoff import Backoff
from flowbus.catalog import caluma
from flowbus.exit_codes import ExitCode
from flowbus.metadata import EventMetadata
from flowbus.producer import outbox
from flowbus.producer.event_producer import EventProducer
from flowbus.producer.forwarding import start_forwarding
from flowbus.producer.outbox import OutboxRelay, OutboxSink
from flowbus.settings import get_settings

pytestmark = pytest.mark.usefixtures("flowbus_env")
SIGNAL = caluma.WORK_ITEM_POST_COMPLETE
REPO = Path(__file__).resolve().parents[2]


# --- helpers -----------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'service.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))


def connect(url: str) -> Any:
    """A service's own connection, in the driver's default transaction mode."""
    if url.startswith("sqlite"):
        return sqlite3.connect(url[len("sqlite:///") :])
    import psycopg

    return psycopg.connect(url)


def create_business_table(url: str) -> None:
    conn = connect(url)
    with conn:
        conn.execute("CREATE TABLE work_items (id TEXT PRIMARY KEY, status TEXT)")
    conn.close()


def new_event(case_id: uuid.UUID) -> tuple[EventMetadata, dict[str, Any]]:
    data = SIGNAL.validate_data(**sample_events.work_item_event(case_id))
    return SIGNAL.generate_signal_metadata(), data


def write_events(
    url: str, topic: str, keys: list[uuid.UUID], *, sink: OutboxSink | None = None
) -> list[tuple[str, str]]:
    """One committed transaction sending one event per key; returns (event id, key)."""
    sink = sink or OutboxSink()
    conn = connect(url)
    written = []
    try:
        with conn, outbox.bind(conn):
            for case_id in keys:
                metadata, data = new_event(case_id)
                sink.send(SIGNAL, metadata, data, topic=topic, key=str(case_id))
                written.append((str(metadata.id), str(case_id)))
    finally:
        conn.close()
    return written


@contextlib.contextmanager
def relay(url: str, **options: Any) -> Iterator[OutboxRelay]:
    running = OutboxRelay(url, poll_interval=0.2, **options).start()
    try:
        yield running
    finally:
        running.stop(timeout=60)


def collect(
    topic: str, count: int, timeout: float, settle: float = 2.0, bootstrap: str | None = None
) -> list[Any]:
    """Records of ``topic`` until ``count`` arrived (then ``settle`` s more, to see extras);
    ``bootstrap``: another broker than the session's."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap or get_settings().kafka_bootstrap_servers,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout
    settle_until = None
    try:
        while time.monotonic() < (settle_until or deadline):
            for message in consumer.consume(1000, 0.2):
                assert message.error() is None, message.error()
                messages.append(message)
            if settle_until is None and len(messages) >= count:
                settle_until = time.monotonic() + settle
    finally:
        consumer.close()
    return messages


def event_ids(messages: list[Any]) -> list[str]:
    return [cloudevents.from_headers(m.headers()).metadata.id.hex for m in messages]


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def per_key(messages: list[Any]) -> dict[str, list[str]]:
    order: dict[str, list[str]] = defaultdict(list)
    for message in messages:
        order[message.key().decode()].append(str(cloudevents.from_headers(message.headers())
                                                 .metadata.id))  # fmt: skip
    return order


def assert_each_once_in_key_order(messages: list[Any], written: list[tuple[str, str]]) -> None:
    """Every written (event id, key) on the topic exactly once, each key's in write order."""
    ids = event_ids(messages)
    assert len(ids) == len(set(ids)) == len(written)  # all of them, no duplicates
    assert set(ids) == {uuid.UUID(event_id).hex for event_id, _ in written}
    expected: dict[str, list[str]] = defaultdict(list)
    for event_id, key in written:
        expected[key].append(event_id)
    assert per_key(messages) == expected


# --- rollback and commit -----------------------------------------------------------------


def test_rollback_publishes_nothing_and_commit_publishes_in_order(database_url, unique_topic):
    topic = unique_topic()
    create_business_table(database_url)
    outbox.migrate(database_url)
    sink = OutboxSink()
    case_id = uuid.uuid4()
    conn = connect(database_url)
    sent: dict[str, list[tuple[EventMetadata, dict[str, Any]]]] = {}
    for outcome in ("rollback", "commit"):
        sent[outcome] = [new_event(case_id) for _ in range(3)]
        with outbox.bind(conn):
            conn.execute("INSERT INTO work_items VALUES ('wi-' || ?, 'completed')"
                         .replace("?", "%s" if database_url.startswith("postgres") else "?"),
                         (outcome,))  # fmt: skip
            for metadata, data in sent[outcome]:
                sink.send(SIGNAL, metadata, data, topic=topic, key=str(case_id), sender="svc")
        conn.rollback() if outcome == "rollback" else conn.commit()
    conn.close()
    assert outbox.status(database_url).pending == 3

    with relay(database_url):
        messages = collect(topic, 3, timeout=60)
    assert len(messages) == 3  # the rolled-back three never arrive
    deserializer = EventDeserializer.from_settings(get_settings())
    for message, (metadata, data) in zip(messages, sent["commit"], strict=True):
        envelope = cloudevents.from_headers(message.headers())
        assert envelope.metadata == metadata  # the same id, time, source... in order
        assert envelope.sender == "svc" and envelope.partitionkey == str(case_id)
        assert message.key() == str(case_id).encode() and message.value()[:1] == b"\x00"
        assert deserializer.deserialize(SIGNAL, message.value(), topic) == data
    status = outbox.status(database_url)
    assert (status.pending, status.sent_kept, status.oldest_age_seconds) == (0, 3, None)


def test_forwarding_with_the_outbox_sink_publishes_through_the_relay(
    database_url, unique_topic, monkeypatch
):
    """``FLOWBUS_PRODUCER_SINK=outbox``: ``send_event`` inside ``bind`` writes the row; the
    direct producer sends nothing; the relay publishes what committed."""
    topic = unique_topic()
    monkeypatch.setenv("FLOWBUS_PRODUCER_SINK", "outbox")
    get_settings.cache_clear()
    outbox.migrate(database_url)
    producer = EventProducer(install_exit_handlers=False)
    forwarder = start_forwarding(producer, {SIGNAL.event_type: [{"topic": topic}]})
    conn = connect(database_url)
    committed = []
    try:
        for outcome in ("rollback", "commit"):
            with outbox.bind(conn):
                for _ in range(2):
                    event = sample_events.work_item_event(uuid.uuid4())
                    SIGNAL.send_event(send_robust=False, sender="svc", **event)
                    if outcome == "commit":
                        committed.append(event["work_item"].case_id)
            conn.rollback() if outcome == "rollback" else conn.commit()
    finally:
        forwarder.stop()
        conn.close()
    assert producer.stats.sent == 0
    producer.close()
    assert outbox.status(database_url).pending == 2
    with relay(database_url):
        messages = collect(topic, 2, timeout=60)
    assert [m.key().decode() for m in messages] == [str(case_id) for case_id in committed]
    assert {cloudevents.from_headers(m.headers()).sender for m in messages} == {"svc"}


def test_a_failed_outbox_write_fails_the_transaction_and_direct_keeps_send_robust(
    database_url, unique_topic
):
    """``send_event`` with its default ``send_robust=True``. The outbox table is missing:
    the write's error reaches the caller, the business row rolls back, and the signal's
    direct route (called after the outbox route) puts nothing on the real broker. A direct
    route that fails (its producer closed) is logged and returned, as before."""
    direct_topic, outbox_topic = unique_topic(), unique_topic()
    create_business_table(database_url)
    producer = EventProducer(install_exit_handlers=False)
    routes = [{"topic": direct_topic}, {"topic": outbox_topic, "sink": "outbox"}]
    forwarder = start_forwarding(producer, {SIGNAL.event_type: routes})
    conn = connect(database_url)
    try:
        with (
            pytest.raises(Exception, match="flowbus_outbox") as caught,
            conn,
            outbox.bind(conn),
        ):
            conn.execute("INSERT INTO work_items VALUES ('wi-1', 'completed')")
            SIGNAL.send_event(**sample_events.work_item_event(uuid.uuid4()))
        assert type(caught.value).__module__.split(".")[0] in ("sqlite3", "psycopg")
    finally:
        forwarder.stop()
        conn.close()
    check = connect(database_url)
    assert check.execute("SELECT count(*) FROM work_items").fetchone() == (0,)
    check.close()
    assert producer.flush(30) == 0 and producer.stats.sent == 0
    assert collect(direct_topic, 1, timeout=3, settle=0) == []

    producer.close()  # a direct route whose producer refuses: send_robust still decides
    forwarder = start_forwarding(producer, {SIGNAL.event_type: [{"topic": direct_topic}]})
    try:
        results = dict(SIGNAL.send_event(**sample_events.work_item_event(uuid.uuid4())))
    finally:
        forwarder.stop()
    assert type(results[forwarder.forward]).__name__ == "ProducerClosedError"


# --- SIGKILL right after the commit ------------------------------------------------------

SERVICE = textwrap.dedent(
    """
    import sys, uuid, time, sample_events
    from flowbus.catalog import caluma
    from flowbus.producer import outbox
    from test_outbox import connect
    url, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sink = outbox.OutboxSink()
    conn = connect(url)
    with conn, outbox.bind(conn):
        for i in range(n):
            data = caluma.WORK_ITEM_POST_COMPLETE.validate_data(
                **sample_events.work_item_event(uuid.UUID(int=i % 7)))
            sink.send(caluma.WORK_ITEM_POST_COMPLETE,
                      caluma.WORK_ITEM_POST_COMPLETE.generate_signal_metadata(), data,
                      topic=topic, key=str(uuid.UUID(int=i % 7)))
    print("committed", flush=True)
    time.sleep(600)
    """
)


def test_sigkill_after_commit_loses_nothing(database_url, unique_topic, kafka_stack):
    topic, n = unique_topic(partitions=3), 500
    outbox.migrate(database_url)
    env = {**kafka_stack.env, "PYTHONPATH": f"{Path(__file__).parent}{os.pathsep}"
           f"{kafka_stack.env['PYTHONPATH']}"}  # fmt: skip
    service = subprocess.Popen(
        [sys.executable, "-c", SERVICE, database_url, topic, str(n)],
        env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert service.stdout is not None
    assert service.stdout.readline().strip() == "committed"
    service.send_signal(signal.SIGKILL)
    assert service.wait(10) == -signal.SIGKILL
    assert outbox.status(database_url).pending == n

    cli = subprocess.Popen(
        [sys.executable, "-m", "flowbus", "outbox", "relay", "--database", database_url,
         "--poll-interval", "0.2"],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        messages = collect(topic, n, timeout=90)
    finally:
        cli.send_signal(signal.SIGTERM)
        _, stderr = cli.communicate(timeout=60)
    assert cli.returncode == 0, stderr
    assert len(messages) == len(set(event_ids(messages))) == n
    assert outbox.status(database_url).pending == 0


def test_relay_catching_up_shows_its_progress(tmp_path, unique_topic, kafka_stack):
    """`outbox relay --drain` on a backlog of 50: a line per tenth published, then done."""
    database_url = f"sqlite:///{tmp_path / 'backlog.sqlite3'}"
    topic = unique_topic()
    outbox.migrate(database_url)
    write_events(database_url, topic, [uuid.uuid4() for _ in range(50)])
    cli = subprocess.run(
        [sys.executable, "-m", "flowbus", "outbox", "relay", "--database", database_url,
         "--drain", "--batch-size", "10", "--name", "catch-up"],
        env=kafka_stack.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    lines = cli.stderr.splitlines()
    assert "outbox relay catch-up running; catching up with 50 pending event(s)" in lines
    published = [line for line in lines if line.startswith("outbox relay catch-up: published")]
    assert published == [
        f"outbox relay catch-up: published {n}/50 ({2 * n}%)" for n in (10, 20, 30, 40, 50)
    ]
    assert lines[-1] == "outbox relay catch-up: drained"
    assert outbox.status(database_url).pending == 0


# --- the broker stopped for longer than message.timeout.ms ------------------------------


def test_broker_stopped_longer_than_the_message_timeout_loses_and_duplicates_nothing(
    database_url, dedicated_broker
):
    """The relay publishes the first 100 events (its connections are established), then the
    broker stops (SIGTERM) and stays down for several ``message.timeout.ms`` while the
    service commits 900 more; each of them times out in the relay at least once. After the
    restart on the same port and data: 1,000 of 1,000 on the topic, no duplicate ce_id, and
    each key's events in commit order."""
    info = dedicated_broker.info()
    assert info is not None
    bootstrap, timeout_ms = info.bootstrap_servers, 2000
    topic = f"outbox-outage-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=3)])[topic].result(timeout=30)
    outbox.migrate(database_url)
    keys = [uuid.uuid4() for _ in range(20)]
    options = {"kafka_config": {"bootstrap.servers": bootstrap, "message.timeout.ms": timeout_ms},
               "lease_ttl": 6.0, "backoff": Backoff(initial=0.2, maximum=1.0)}  # fmt: skip
    with relay(database_url, **options) as running:
        written = write_events(database_url, topic, [keys[i % 20] for i in range(100)])
        wait_for(lambda: running.metrics.published_total._value.get() >= 100, 30,
                 "the first 100 events published")  # fmt: skip
        dedicated_broker.stop_kafka()
        stopped = time.monotonic()
        for batch in range(1, 10):
            written += write_events(database_url, topic, [keys[(batch * 100 + i) % 20]
                                                          for i in range(100)])  # fmt: skip
        wait_for(lambda: running.metrics.failed_total._value.get() >= 900, 30,
                 "each of the 900 events timed out at least once")  # fmt: skip
        time.sleep(timeout_ms / 1000)  # and longer than message.timeout.ms again
        assert outbox.status(database_url).pending == 900
        outage = time.monotonic() - stopped
        dedicated_broker.start_kafka()
        messages = collect(topic, 1000, timeout=60, bootstrap=bootstrap)
    assert outage > 2 * timeout_ms / 1000
    assert_each_once_in_key_order(messages, written)
    assert outbox.status(database_url).pending == 0


# --- the broker unreachable at the relay's first contact ---------------------------------


def test_broker_unreachable_from_the_start_for_longer_than_the_message_timeout(
    database_url, unique_topic, kafka_stack
):
    """The relay's only way to the broker is a proxy that is cut from the relay's start,
    while 1,000 events are committed and for several message timeouts after (the broker
    advertises its own address, so the cut covers only the relay's first contact; the test
    above stops a broker the relay is connected to)."""
    topic = unique_topic(partitions=3)
    broker = urlsplit(f"//{kafka_stack.bootstrap_servers.split(',')[0]}")
    proxy = TcpProxy(str(broker.hostname), int(broker.port or 9092))  # not started: "down"
    outbox.migrate(database_url)
    keys = [uuid.uuid4() for _ in range(20)]
    options = {"kafka_config": {"bootstrap.servers": f"127.0.0.1:{proxy.port}",
                                "message.timeout.ms": 1500}, "lease_ttl": 6.0}  # fmt: skip
    try:
        with relay(database_url, **options) as running:
            written = []
            for batch in range(10):
                written += write_events(database_url, topic, [keys[(batch * 100 + i) % 20]
                                                              for i in range(100)])  # fmt: skip
            wait_for(lambda: running.metrics.failed_total._value.get() >= 1000, 30,
                     "every event timed out at least once")  # fmt: skip
            time.sleep(2)  # longer than message.timeout.ms again
            assert outbox.status(database_url).pending == 1000
            proxy.start()
            messages = collect(topic, 1000, timeout=120)
    finally:
        proxy.stop()
    assert_each_once_in_key_order(messages, written)
    assert outbox.status(database_url).pending == 0


# --- the registry unreachable ------------------------------------------------------------


def test_registry_outage_fails_no_transaction(database_url, unique_topic, kafka_stack, monkeypatch):
    topic = unique_topic()  # new: its subject is not registered, the relay needs the registry
    registry = urlsplit(kafka_stack.schema_registry_url)
    proxy = TcpProxy(str(registry.hostname), int(registry.port or 80))  # not started
    proxied = kafka_stack.schema_registry_url.replace(
        f"{registry.hostname}:{registry.port}", f"127.0.0.1:{proxy.port}"
    )
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", proxied)
    get_settings.cache_clear()
    outbox.migrate(database_url)
    sink = OutboxSink(serializer=EventSerializer.from_settings(get_settings()))
    try:
        with relay(database_url, backoff=None) as running:
            started = time.monotonic()
            written = write_events(database_url, topic, [uuid.uuid4() for _ in range(50)],
                                   sink=sink)  # fmt: skip
            assert time.monotonic() - started < 5  # no registry timeout inside the transaction
            time.sleep(3)  # the relay tries and fails to frame them
            assert outbox.status(database_url).pending == 50
            assert collect(topic, 1, timeout=1, settle=0) == []
            assert running.metrics.published_total._value.get() == 0
            proxy.start()  # the registry is back
            messages = collect(topic, 50, timeout=90)
    finally:
        proxy.stop()
    assert event_ids(messages) == [uuid.UUID(event_id).hex for event_id, _ in written]
    assert all(m.value()[:1] == b"\x00" for m in messages)  # Confluent framing, settled late


# --- two relays on one PostgreSQL outbox -------------------------------------------------


def test_two_relays_keep_per_key_order(postgres_url, unique_topic):
    topic, total = unique_topic(partitions=4), 10_000
    outbox.migrate(postgres_url)
    keys = [uuid.uuid4() for _ in range(100)]
    options = {"lease_ttl": 6.0, "kafka_config": {"message.timeout.ms": 2000}}
    with relay(postgres_url, **options) as first, relay(postgres_url, **options) as second:
        wait_for(lambda: len(first.buckets) == len(second.buckets) == 32, 30,
                 "the buckets shared between the relays")  # fmt: skip
        assert not set(first.buckets) & set(second.buckets)
        written: list[tuple[str, str]] = []
        for batch in range(total // 100):
            written += write_events(postgres_url, topic, [keys[(batch * 7 + i) % 100]
                                                          for i in range(100)])  # fmt: skip
        messages = collect(topic, total, timeout=180, settle=3)
        counts = [r.metrics.published_total._value.get() for r in (first, second)]
    ids = event_ids(messages)
    duplicates = sum(n - 1 for n in Counter(ids).values())
    assert duplicates == 0
    assert len(ids) == total and set(ids) == {uuid.UUID(e).hex for e, _ in written}
    expected: dict[str, list[str]] = defaultdict(list)
    for event_id, key in written:
        expected[key].append(event_id)
    assert per_key(messages) == expected
    assert all(count > 0 for count in counts), counts  # both relays did publish
    assert sum(counts) == total


# --- a row the broker rejects for good ---------------------------------------------------


def set_topic_limit(topic: str, max_message_bytes: int) -> None:
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    admin = AdminClient({"bootstrap.servers": get_settings().kafka_bootstrap_servers})
    entry = ConfigEntry("max.message.bytes", str(max_message_bytes),
                        incremental_operation=AlterConfigOpType.SET)  # fmt: skip
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)

    # The broker applies a topic's new configuration after the call returns: wait until it
    # reports the new limit, or a produce right after may still meet the old one.
    def applied() -> bool:
        described = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
        [configs] = [future.result(timeout=30) for future in described.values()]
        return configs["max.message.bytes"].value == str(max_message_bytes)

    wait_for(applied, 30, f"max.message.bytes {max_message_bytes} on {topic}")


def test_a_row_too_large_for_its_topic_is_rejected_kept_and_retried(
    database_url, unique_topic, caplog
):
    from click.testing import CliRunner

    from flowbus.producer.outbox.cli import outbox as outbox_cli

    topic = unique_topic()
    set_topic_limit(topic, 8_000)
    outbox.migrate(database_url)
    first, second = uuid.uuid4(), uuid.uuid4()
    large = base64.b64encode(os.urandom(30_000)).decode()  # lz4 cannot shrink it below 8 kB
    sink, conn, written = OutboxSink(), connect(database_url), []
    with conn, outbox.bind(conn):
        for case_id, meta in ((first, {}), (first, {"blob": large}), (first, {}), (second, {})):
            metadata = SIGNAL.generate_signal_metadata()
            data = SIGNAL.validate_data(**sample_events.work_item_event(case_id, meta=meta))
            sink.send(SIGNAL, metadata, data, topic=topic, key=str(case_id))
            written.append(str(metadata.id))
    conn.close()
    too_large = written[1]
    cli = CliRunner()

    with relay(database_url) as running:
        messages = collect(topic, 3, timeout=60)
        # The relay went on: the other rows, of the same key too, are published in order.
        assert event_ids(messages) == [uuid.UUID(e).hex for e in written if e != too_large]
        wait_for(lambda: outbox.status(database_url).rejected == 1, 30, "the row rejected")
        status = outbox.status(database_url)
        assert (status.pending, status.rejected) == (0, 1)
        [row] = outbox.rejected(database_url)
        assert (row.id, row.topic, row.key) == (too_large, topic, str(first))
        assert row.code == "MSG_SIZE_TOO_LARGE" and "too large" in row.reason
        assert row.payload_bytes > 8_000
        assert running.metrics.rejected_total._value.get() == 1
        logged = [r.getMessage() for r in caplog.records if "rejected by" in r.getMessage()]
        assert len(logged) == 1 and too_large in logged[0] and SIGNAL.event_type in logged[0]
        assert large[:100] not in logged[0]
        shown = cli.invoke(outbox_cli, ["status", "--database", database_url])
        assert shown.exit_code == 0 and "rejected 1" in shown.output, shown.output
        listed = cli.invoke(outbox_cli, ["rejected", "--database", database_url, "--json"])
        assert listed.exit_code == 0 and too_large in listed.output, listed.output
        unknown = cli.invoke(outbox_cli, ["retry", "--database", database_url, written[0]])
        assert unknown.exit_code == ExitCode.BAD_INPUT and "not rejected rows" in unknown.output

        set_topic_limit(topic, 1_000_000)
        retried = cli.invoke(outbox_cli, ["retry", "--database", database_url, too_large])
        assert retried.exit_code == 0 and "1 row(s) re-queued" in retried.output, retried.output
        messages = collect(topic, 4, timeout=60)
        wait_for(lambda: outbox.status(database_url).pending == 0, 30, "the retry marked sent")
    assert event_ids(messages)[3] == uuid.UUID(too_large).hex  # after its key's later rows
    assert len(messages) == 4
    status = outbox.status(database_url)
    assert (status.pending, status.rejected, status.sent_kept) == (0, 0, 4)


# --- a SQLAlchemy Session ----------------------------------------------------------------


def test_sqlalchemy_session_carries_the_events(database_url, unique_topic):
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session

    topic = unique_topic()
    create_business_table(database_url)
    outbox.migrate(database_url)
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    sink = OutboxSink()
    committed = []
    with Session(engine) as session:
        for outcome in ("rollback", "commit"):
            with outbox.bind(session):
                session.execute(text("INSERT INTO work_items VALUES (:id, 'done')"),
                                {"id": outcome})  # fmt: skip
                for _ in range(2):
                    metadata, data = new_event(uuid.uuid4())
                    sink.send(SIGNAL, metadata, data, topic=topic)
                    if outcome == "commit":
                        committed.append(metadata.id.hex)
            session.rollback() if outcome == "rollback" else session.commit()
        rows = session.execute(text("SELECT id FROM work_items")).all()
    engine.dispose()
    assert [row[0] for row in rows] == ["commit"]
    with relay(database_url):
        messages = collect(topic, 2, timeout=60)
    assert event_ids(messages) == committed
