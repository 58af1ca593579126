"""On-commit mode: what each transaction hook holds, produces and drops, on real databases.

SQLAlchemy runs on SQLite and on a real PostgreSQL (``postgres_url``); the DB-API hook on
``sqlite3``. The producer is a real :class:`EventProducer` (no broker needed: librdkafka
needed) whose ``produce`` calls are recorded (``tests/support/recording_kafka.py``).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from recording_kafka import produced_ids, recording_producer
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from flowbus.errors import EncodeError
from flowbus.producer.event_producer import EventProducer
from flowbus.producer.on_commit import DBAPITransactions, OnCommitSink, SQLAlchemyTransactions
from flowbus.settings import FlowbusSettings
from flowbus.signals import WorkflowSignal

SIGNAL = WorkflowSignal(
    "org.flowbus.test.permit.submitted.v1", {"permit_id": str, "n": int}, key_path="permit_id"
)


class Base(DeclarativeBase):
    pass


class Permit(Base):
    __tablename__ = "permit"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


@pytest.fixture
def producer() -> Iterator[EventProducer]:
    """A producer without registry (whatever the shell says) whose records are recorded,
    not delivered."""
    settings = FlowbusSettings(kafka_bootstrap_servers="127.0.0.1:1", schema_registry_url=None)
    with recording_producer(settings) as producer:
        yield producer


def ids(producer: EventProducer) -> list[str]:
    return produced_ids(producer)


def send(sink: OnCommitSink, n: int, permit_id: str = "p-1") -> str:
    metadata = SIGNAL.generate_signal_metadata()
    data = SIGNAL.validate_data(permit_id=permit_id, n=n)
    sink.send(SIGNAL, metadata, data, topic="permits", key=permit_id)
    return str(metadata.id)


# --- SQLAlchemy -----------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    else:
        url = str(request.getfixturevalue("postgres_url")).replace(
            "postgresql://", "postgresql+psycopg://", 1
        )
    engine = sa.create_engine(url)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


def names(engine: sa.Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.scalars(sa.select(Permit.name).order_by(Permit.id)))


def test_sqlalchemy_commit_produces_in_order_after_the_commit(
    engine: sa.Engine, producer: EventProducer
) -> None:
    with Session(engine) as session:
        sink = OnCommitSink(producer, SQLAlchemyTransactions(session))
        with session.begin():
            session.add(Permit(name="shed"))
            sent = [send(sink, n) for n in range(3)]
            assert ids(producer) == []
        assert ids(producer) == sent
    assert names(engine) == ["shed"]


def test_sqlalchemy_rollback_produces_nothing(engine: sa.Engine, producer: EventProducer) -> None:
    with Session(engine) as session:
        sink = OnCommitSink(producer, SQLAlchemyTransactions(session))
        with pytest.raises(RuntimeError), session.begin():
            session.add(Permit(name="shed"))
            session.flush()
            send(sink, 1)
            raise RuntimeError("the view failed")
        # The session goes on: its next transaction is a new one, with nothing held.
        with session.begin():
            session.add(Permit(name="barn"))
            kept = send(sink, 2)
    assert ids(producer) == [kept]
    assert names(engine) == ["barn"]


def test_sqlalchemy_savepoints_keep_released_events_and_drop_rolled_back_ones(
    engine: sa.Engine, producer: EventProducer
) -> None:
    with Session(engine) as session:
        sink = OnCommitSink(producer, SQLAlchemyTransactions(session))
        with session.begin():
            before = send(sink, 1)
            with session.begin_nested():  # released: its event joins the transaction
                session.add(Permit(name="kept"))
                released = send(sink, 2)
            savepoint = session.begin_nested()
            session.add(Permit(name="undone"))
            send(sink, 3)
            with session.begin_nested():  # inside the savepoint that rolls back
                send(sink, 4)
            savepoint.rollback()
            after = send(sink, 5)
            assert ids(producer) == []
        assert ids(producer) == [before, released, after]
    assert names(engine) == ["kept"]


def test_sqlalchemy_without_a_transaction_produces_at_once(
    engine: sa.Engine, producer: EventProducer
) -> None:
    with Session(engine) as session:
        sink = OnCommitSink(producer, SQLAlchemyTransactions(lambda: session))
        assert session.get_transaction() is None
        sent = send(sink, 1)
        assert ids(producer) == [sent]


def test_sqlalchemy_caller_data_errors_raise_inside_the_transaction(
    engine: sa.Engine, producer: EventProducer
) -> None:
    with Session(engine) as session:
        sink = OnCommitSink(producer, SQLAlchemyTransactions(session))
        with pytest.raises(EncodeError), session.begin():
            session.add(Permit(name="shed"))
            send(sink, 2**70)  # valid for pydantic, beyond Avro's long
    assert names(engine) == []
    assert ids(producer) == []


# --- plain DB-API ---------------------------------------------------------------------------


def test_dbapi_commit_produces_and_rollback_drops(tmp_path: Path, producer: EventProducer) -> None:
    transactions = DBAPITransactions()
    sink = OnCommitSink(producer, transactions)
    connection = sqlite3.connect(tmp_path / "app.sqlite3")
    connection.execute("CREATE TABLE permit (name TEXT)")
    connection.commit()
    with pytest.raises(RuntimeError), transactions.transaction(connection) as conn:
        conn.execute("INSERT INTO permit VALUES ('undone')")
        send(sink, 1)
        raise RuntimeError("the request failed")
    assert ids(producer) == []
    with transactions.transaction(connection) as conn:
        conn.execute("INSERT INTO permit VALUES ('kept')")
        first = send(sink, 2)
        with transactions.transaction(conn):  # joins the outer block
            second = send(sink, 3)
        assert ids(producer) == []
    assert ids(producer) == [first, second]
    outside = send(sink, 4)  # no block: at once
    assert ids(producer) == [first, second, outside]
    rows = [
        row[0]
        for row in sqlite3.connect(tmp_path / "app.sqlite3").execute("SELECT name FROM permit")
    ]
    assert rows == ["kept"]


def test_dbapi_failed_commit_produces_nothing(producer: EventProducer) -> None:
    class RefusingConnection:
        def commit(self) -> None:
            raise sqlite3.OperationalError("database is locked")

        def rollback(self) -> None:
            pass

    transactions = DBAPITransactions()
    sink = OnCommitSink(producer, transactions)
    with pytest.raises(sqlite3.OperationalError), transactions.transaction(RefusingConnection()):
        send(sink, 1)
    assert ids(producer) == []


def test_dbapi_blocks_in_concurrent_contexts_hold_their_own_events(
    producer: EventProducer,
) -> None:
    import contextvars

    transactions = DBAPITransactions()
    sink = OnCommitSink(producer, transactions)
    connection = sqlite3.connect(":memory:")
    with transactions.transaction(connection):
        inside = send(sink, 1)
        # Another context (another request's task or thread) is not inside this block.
        other = contextvars.Context().run(send, sink, 2, str(uuid.uuid4()))
        assert ids(producer) == [other]
    assert ids(producer) == [other, inside]
