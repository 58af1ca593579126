"""Section 8, the transactional outbox: what an event costs in the caller's transaction, and
how fast the relay empties a backlog, each against direct produce in the same run.

* direct (the ceiling): ``EventProducer.send`` of validated data with fresh metadata, one
  key per event, until ``flush()`` returns (every event acknowledged).
* outbox write: ``OutboxSink.send`` of the same events inside transactions of 100 events
  (business row INSERT not included), ``COMMIT`` included, on a SQLite file (WAL) and, with
  ``--postgres URL`` (or ``FLOWBUS_BENCH_POSTGRES_URL``), on PostgreSQL.
* relay: ``count`` committed rows, then one :class:`OutboxRelay` started; timed until it
  has published every row (broker-acknowledged and marked sent).

Rounds alternate direct and outbox. Section ``outbox`` of ``run.py``::

    .venv/bin/python benchmarks/run.py --sections outbox [--quick] [--postgres URL]
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_common import Target, best_and_median, create_topic, loadavg, messages_in, rate
from workload import SIGNAL, build_events

from flowbus.producer import outbox
from flowbus.producer.event_producer import EventProducer
from flowbus.producer.outbox import OutboxRelay, OutboxSink

TRANSACTION_EVENTS = 100


def prepared(count: int) -> list[tuple[Any, dict[str, Any], str]]:
    events = []
    for data in build_events(count):
        validated = SIGNAL.validate_data(**data)
        events.append(
            (SIGNAL.generate_signal_metadata(), validated, str(data["work_item"].case_id))
        )
    return events


def run_direct(target: Target, events: list[tuple[Any, dict[str, Any], str]]) -> float:
    topic = create_topic(target, "outbox-direct")
    with EventProducer(settings=target.settings(), install_exit_handlers=False) as producer:
        metadata, data, key = events[0]
        producer.send(SIGNAL, metadata, data, topic=topic, key=key)  # warm-up, untimed
        producer.flush(30)
        start = time.perf_counter()
        for metadata, data, key in events:
            producer.send(SIGNAL, metadata, data, topic=topic, key=key)
        left = producer.flush(120)
        seconds = time.perf_counter() - start
    if left:
        raise RuntimeError(f"direct produce left {left} undelivered")
    return rate(len(events), seconds)


def connect(url: str) -> Any:
    if url.startswith("sqlite"):
        return sqlite3.connect(url[len("sqlite:///") :])
    import psycopg

    return psycopg.connect(url)


def run_write(url: str, topic: str, events: list[tuple[Any, dict[str, Any], str]]) -> float:
    sink = OutboxSink(settings=None)
    conn = connect(url)
    try:
        start = time.perf_counter()
        for first in range(0, len(events), TRANSACTION_EVENTS):
            with outbox.bind(conn):  # psycopg's `with conn` would close it: commit by hand
                for metadata, data, key in events[first : first + TRANSACTION_EVENTS]:
                    sink.send(SIGNAL, metadata, data, topic=topic, key=key)
            conn.commit()
        seconds = time.perf_counter() - start
    finally:
        conn.close()
    return rate(len(events), seconds)


def run_relay(target: Target, url: str, topic: str, count: int) -> float:
    relay = OutboxRelay(url, settings=target.settings(), poll_interval=0.05)
    start = time.perf_counter()
    relay.start()
    try:
        while relay.metrics.published_total._value.get() < count:
            time.sleep(0.01)
        seconds = time.perf_counter() - start
    finally:
        relay.stop(timeout=60)
    if messages_in(target, topic) != count:
        raise RuntimeError(f"{topic} does not hold {count} records")
    return rate(count, seconds)


def fresh_database(kind: str, postgres: str | None, workdir: Path, n: int) -> str:
    if kind == "sqlite":
        return f"sqlite:///{workdir / f'outbox-{n}.sqlite3'}"
    assert postgres is not None
    import psycopg

    name = f"flowbus_bench_{os.getpid()}_{n}"
    with psycopg.connect(postgres, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    return f"{postgres.rpartition('/')[0]}/{name}"


def run(target: Target, count: int, rounds: int, postgres: str | None) -> dict[str, Any]:
    """The section: per store (SQLite, and PostgreSQL at ``postgres`` when given), the write
    cost and the relay rate, each against direct produce in the same rounds."""
    events = prepared(count)
    kinds = ["sqlite", *(["postgresql"] if postgres else [])]
    direct_rounds: list[float] = []
    write_rounds: dict[str, list[float]] = {kind: [] for kind in kinds}
    relay_rounds: dict[str, list[float]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory(prefix="flowbus-bench-outbox-") as tmp:
        n = 0
        for _ in range(rounds):
            direct_rounds.append(run_direct(target, events))
            for kind in kinds:
                n += 1
                url = fresh_database(kind, postgres, Path(tmp), n)
                outbox.migrate(url)
                topic = create_topic(target, "outbox-relay")
                write_rounds[kind].append(run_write(url, topic, events))
                relay_rounds[kind].append(run_relay(target, url, topic, count))
    direct = best_and_median(direct_rounds)
    result: dict[str, Any] = {"events": count, "rounds": rounds, "direct_events_per_s": direct}
    for kind in kinds:
        write = best_and_median(write_rounds[kind])
        relay = best_and_median(relay_rounds[kind])
        result[kind] = {
            "write_events_per_s": write,
            "write_us_per_event": round(1e6 / write["median"], 1),
            "direct_us_per_event": round(1e6 / direct["median"], 1),
            "write_cost_vs_direct": round(direct["median"] / write["median"], 3),
            "relay_events_per_s": relay,
            "relay_vs_direct": round(relay["median"] / direct["median"], 3),
            "relay_target_5000_met": relay["median"] >= 5000,
        }
    result["stores"] = kinds
    result["loadavg_after"] = loadavg()
    return result
