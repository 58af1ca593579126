"""The outbox's pure logic and its SQLite store: buckets, migrations, the sink's rows,
bucket leases between relays, relay settings, ``flowbus outbox status``."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
import sample_events
from click.testing import CliRunner
from confluent_kafka import KafkaError

from flowbus import cloudevents
from flowbus.avro.serializer import EventSerializer, codec_for
from flowbus.catalog import caluma
from flowbus.cli import main
from flowbus.errors import ConfigurationError, OutboxError, OutboxNotBoundError, OutboxStoreError
from flowbus.exit_codes import ExitCode
from flowbus.producer import outbox
from flowbus.producer.outbox import OutboxRelay, OutboxSink, RelayStore
from flowbus.producer.outbox.store import (
    BUCKETS,
    MIGRATIONS,
    SCHEMA_VERSION,
    Rejection,
    bucket_of,
    dialect_of_connection,
    migrate_in_transaction,
)
from flowbus.settings import FlowbusSettings

SIGNAL = caluma.WORK_ITEM_POST_COMPLETE


@pytest.fixture
def url(tmp_path: Path) -> str:
    found = f"sqlite:///{tmp_path / 'outbox.sqlite3'}"
    outbox.migrate(found)
    return found


def send(sink: OutboxSink, key: str | None = "case-1", topic: str = "events") -> str:
    data = SIGNAL.validate_data(**sample_events.work_item_event())
    metadata = SIGNAL.generate_signal_metadata()
    sink.send(SIGNAL, metadata, data, topic=topic, key=key, sender="svc")
    return str(metadata.id)


def test_a_key_always_lands_in_the_same_bucket() -> None:
    assert (
        bucket_of("case-1", "a") == bucket_of("case-1", "b") == zlib.crc32(b"case-1") % BUCKETS
    )  # stable everywhere
    assert bucket_of(None, "case-1") == bucket_of("case-1", "x")  # keyless: by event id
    assert len({bucket_of(str(i), "") for i in range(1000)}) == BUCKETS


def test_migration_is_idempotent_and_refuses_a_newer_schema(url: str) -> None:
    assert outbox.migrate(url) == SCHEMA_VERSION
    conn = sqlite3.connect(url[len("sqlite:///") :])
    with conn:
        conn.execute("INSERT INTO flowbus_outbox_schema_version VALUES (?)", (SCHEMA_VERSION + 1,))
    conn.close()
    with pytest.raises(OutboxStoreError, match="upgrade flowbus"):
        outbox.migrate(url)


def test_unsupported_url_and_connection_are_typed_errors() -> None:
    with pytest.raises(OutboxStoreError, match="unsupported database URL"):
        outbox.migrate("mysql://u:secret@db/x")
    with pytest.raises(OutboxError, match="unsupported connection type"):
        dialect_of_connection(object())


def test_send_outside_a_bound_transaction_raises() -> None:
    with pytest.raises(OutboxNotBoundError, match="no database transaction bound"):
        send(OutboxSink())


def test_the_row_holds_the_prepared_event_and_goes_with_the_transaction(url: str) -> None:
    conn = sqlite3.connect(url[len("sqlite:///") :])
    sink = OutboxSink()
    with outbox.bind(conn):
        send(sink)
    conn.rollback()
    with conn, outbox.bind(conn):
        event_id = send(sink, key=None)
    [row] = conn.execute(
        "SELECT id, aggregatetype, aggregateid, type, payload, headers, schema_fingerprint "
        "FROM flowbus_outbox"
    ).fetchall()
    conn.close()
    assert row[:4] == (event_id, "events", None, SIGNAL.event_type)
    assert row[6] == codec_for(SIGNAL).schema.fingerprint.hex()
    headers = [(name, value.encode()) for name, value in json.loads(row[5])]
    envelope = cloudevents.from_headers(headers)
    assert str(envelope.metadata.id) == event_id and envelope.sender == "svc"
    assert envelope.dataschema is None  # settled by the relay, with the framing
    framed = EventSerializer().frame(SIGNAL.event_type, codec_for(SIGNAL).schema, "events", row[4])
    assert framed.value[:2] == b"\xc3\x01"
    assert outbox.status(url).pending == 1


def test_leases_are_shared_fairly_and_never_overlap(url: str) -> None:
    first, second = RelayStore(url), RelayStore(url)
    ttl = 60_000
    try:
        assert len(first.maintain_leases("a", ttl)) == BUCKETS  # alone: every bucket
        assert second.maintain_leases("b", ttl) == []  # all taken and alive
        held_a = first.maintain_leases("a", ttl)  # sees b: gives up its surplus
        held_b = second.maintain_leases("b", ttl)
        assert len(held_a) == len(held_b) == BUCKETS // 2
        assert not set(held_a) & set(held_b)
        second.release("b")  # a clean stop: the buckets are free at once
        assert len(first.maintain_leases("a", ttl)) == BUCKETS
    finally:
        first.close()
        second.close()


def test_an_expired_lease_is_taken_over(url: str) -> None:
    store = RelayStore(url)
    try:
        store.maintain_leases("dead", 1)  # expires 1 ms later
        [(live,)] = store.connection.execute(
            "SELECT count(*) FROM flowbus_outbox_leases WHERE owner = 'dead'"
        ).fetchall()
        assert live == BUCKETS

        time.sleep(0.01)
        # Its leases are expired, its heartbeat still counts: a fair share is taken now...
        assert len(store.maintain_leases("alive", 60_000)) == BUCKETS // 2
        with store.transaction() as tx:  # ... and the rest once the heartbeat is old
            tx.execute("UPDATE flowbus_outbox_relays SET heartbeat_at = 0 WHERE name = 'dead'")
        assert len(store.maintain_leases("alive", 60_000)) == BUCKETS
    finally:
        store.close()


def test_relay_settings_that_could_outlive_a_lease_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="lease_ttl"):
        OutboxRelay(url, lease_ttl=5, kafka_config={"bootstrap.servers": "127.0.0.1:1"})


def test_status_command(url: str) -> None:
    conn = sqlite3.connect(url[len("sqlite:///") :])
    with conn, outbox.bind(conn):
        send(OutboxSink())
    conn.close()
    result = CliRunner().invoke(main, ["outbox", "status", "--database", url, "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["pending"] == 1 and figures["oldest_age_seconds"] >= 0
    text = CliRunner().invoke(main, ["outbox", "status", "--database", url]).output
    assert text.startswith("pending 1  oldest ")


def test_migrating_inside_a_callers_transaction_goes_with_it(tmp_path: Path) -> None:
    # What the Django app's migration does: flowbus's DDL, in the migrating transaction.
    path = tmp_path / "app.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    tables = "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'flowbus_%'"
    conn.execute("BEGIN")
    assert migrate_in_transaction(conn, "the app database") == SCHEMA_VERSION
    conn.execute("ROLLBACK")
    assert conn.execute(tables).fetchall() == []
    conn.execute("BEGIN")
    migrate_in_transaction(conn, "the app database")
    conn.execute("COMMIT")
    assert outbox.migrate(f"sqlite:///{path}") == SCHEMA_VERSION  # nothing left to apply
    assert conn.execute("SELECT version FROM flowbus_outbox_schema_version").fetchall() == [
        (version,) for version in sorted(MIGRATIONS)
    ]  # each version once
    assert {name for (name,) in conn.execute(tables)} == {
        "flowbus_outbox", "flowbus_outbox_leases", "flowbus_outbox_relays",
        "flowbus_outbox_schema_version",
    }  # fmt: skip


def test_a_draining_relay_returns_once_nothing_is_pending(url: str) -> None:
    relay = OutboxRelay(url, kafka_config={"bootstrap.servers": "127.0.0.1:1"})
    runner = threading.Thread(target=relay.run, kwargs={"drain": True})
    runner.start()
    runner.join(5)  # nothing pending: no producer needed, it returns at once
    if runner.is_alive():
        relay.stop(timeout=10)
        pytest.fail("a draining relay kept running with nothing pending")
    store = RelayStore(url)
    try:
        # A clean stop: the leases it took are given back at once.
        [(owned,)] = store.connection.execute(
            "SELECT count(*) FROM flowbus_outbox_leases WHERE owner IS NOT NULL"
        ).fetchall()
        assert owned == 0
    finally:
        store.close()


def test_a_version_1_outbox_is_upgraded_and_rejected_rows_are_kept_and_requeued(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v1.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in (*MIGRATIONS[1]["sqlite"],
                      "CREATE TABLE flowbus_outbox_schema_version (version INTEGER)",
                      "INSERT INTO flowbus_outbox_schema_version VALUES (1)"):  # fmt: skip
        conn.execute(statement)
    conn.close()
    url = f"sqlite:///{path}"
    conn = sqlite3.connect(path)
    with conn, outbox.bind(conn):  # a writer of the old flowbus: the v1 columns only
        ids = [send(OutboxSink(), key="case-1") for _ in range(3)]
    conn.close()
    assert outbox.migrate(url) == SCHEMA_VERSION == 2
    store = RelayStore(url)
    try:
        [first, second, third] = store.pending(list(range(BUCKETS)), 10)
        store.mark_rejected({second.seq: Rejection("MSG_SIZE_TOO_LARGE", "too large")})
        store.mark_sent([first.seq])
        assert [row.id for row in store.pending(list(range(BUCKETS)), 10)] == [third.id]
        status = store.status()
        assert (status.pending, status.rejected, status.sent_kept) == (1, 1, 1)
        store.clean_up(0)  # rejected rows are never cleaned up
        [row] = store.rejected()
        assert (row.id, row.code, row.reason, row.attempts) == (ids[1], "MSG_SIZE_TOO_LARGE",
                                                                "too large", 1)  # fmt: skip
        assert store.requeue(["not-an-event", ids[2]]) == []  # neither is a rejected row
        assert store.requeue(None) == [ids[1]]
        # Back in its old place, before the later row of its key.
        assert [r.id for r in store.pending(list(range(BUCKETS)), 10)] == [ids[1], ids[2]]
        assert store.status().rejected == 0 and store.rejected() == []
    finally:
        store.close()


def test_retry_command_needs_ids_or_all(url: str) -> None:
    result = CliRunner().invoke(main, ["outbox", "retry", "--database", url])
    assert result.exit_code == ExitCode.BAD_INPUT and "--all" in result.output
    result = CliRunner().invoke(main, ["outbox", "retry", "--database", url, "--all"])
    assert result.exit_code == 0 and "0 row(s) re-queued" in result.output
    result = CliRunner().invoke(main, ["outbox", "rejected", "--database", url])
    assert result.exit_code == 0 and "0 rejected row(s)" in result.output


class ScriptedProducer:
    """Stands in for confluent-kafka's producer: each message produced with a key settles,
    on the next flush, with that key's next scripted delivery error (``None``: acked)."""

    def __init__(self, errors: dict[str | None, list[KafkaError | None]]) -> None:
        self.errors = errors
        self.keys: list[str | None] = []
        self._waiting: list[tuple[Any, KafkaError | None]] = []

    def produce(self, topic: str, *, value: bytes, key: str | None, headers: Any,
                on_delivery: Any) -> None:  # fmt: skip
        self.keys.append(key)
        self._waiting.append((on_delivery, self.errors[key].pop(0)))

    def flush(self, timeout: float | None = None) -> int:
        waiting, self._waiting = self._waiting, []
        for on_delivery, error in waiting:
            on_delivery(error, None)
        return 0

    poll = flush


def test_a_refused_row_is_not_produced_again_ahead_of_an_earlier_row_of_its_key(url: str) -> None:
    # In one batch: a row of case-1 times out (a broker outage), the next row of case-1
    # gets a refusal that may be its own (too large). Producing that one again alone now
    # would put it on the topic before the earlier row: both wait for the next batch.
    conn = sqlite3.connect(url[len("sqlite:///") :])
    with conn, outbox.bind(conn):
        first, second = send(OutboxSink()), send(OutboxSink())
        other = send(OutboxSink(), key="case-2")
    conn.close()
    # No registry, whatever SCHEMA_REGISTRY_URL says: the scripted producer is all there is.
    relay = OutboxRelay(
        url,
        settings=FlowbusSettings(schema_registry_url=None),
        kafka_config={"bootstrap.servers": "127.0.0.1:1"},
    )
    timed_out = KafkaError(KafkaError._MSG_TIMED_OUT)
    too_large = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
    script = {"case-1": [timed_out, too_large], "case-2": [too_large, None]}
    relay._producer = ScriptedProducer(script)  # type: ignore[assignment]
    store = RelayStore(url)
    try:
        rows = store.pending(list(range(BUCKETS)), 10)
        assert [r.id for r in rows if r.key == "case-1"] == [first, second]
        relay._publish(store, rows)
        # case-2's refused row was produced again on its own (and acknowledged then).
        assert relay._producer.keys.count("case-2") == 2  # type: ignore[attr-defined]
        assert relay._producer.keys.count("case-1") == 2  # type: ignore[attr-defined]
        assert [r.id for r in store.pending(list(range(BUCKETS)), 10)] == [first, second]
        assert store.status().rejected == 0
        assert other not in [r.id for r in store.pending(list(range(BUCKETS)), 10)]
    finally:
        store.close()
