"""On-commit mode: an event is produced after the caller's transaction commits.

Delivery contract. At send time the event is checked and encoded (the caller's data
errors raise then, inside the transaction) and held by the transaction. When the
transaction commits, the held events are handed to the producer, in send order; when it
rolls back, they are dropped and nothing reaches Kafka. From then on the producer's own
contract holds (asynchronous: never raises, retries the registry, logs what is lost). **A
crash between the commit and the delivery loses the events**, and so does a producer
whose queue runs out of time or room: only the outbox sink (``outbox``) cannot lose a
committed event.

Transaction hooks say what "the transaction" is:

- :class:`DjangoTransactions`: ``django.db.transaction.on_commit`` on one connection alias.
  Inside ``atomic()``, the event waits for the outermost commit; an event sent inside a
  savepoint that rolls back is dropped. Outside any ``atomic()`` block (autocommit) Django
  runs the callback at once, so the event is produced at once.
- :class:`SQLAlchemyTransactions`: a ``Session``'s transaction (``after_commit`` /
  ``after_rollback``). Events sent inside ``begin_nested()`` join the enclosing transaction
  when the savepoint is released and are dropped when it rolls back. A session with no
  transaction in progress produces at once.
- :class:`DBAPITransactions`: any DB-API connection, through its ``transaction(conn)``
  block, which commits on success and rolls back on an exception. Outside such a block
  events are produced at once.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from flowbus.errors import ConfigurationError, FlowbusError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, SessionTransaction

    from flowbus.metadata import EventMetadata
    from flowbus.signals import WorkflowSignal

    from .event_producer import EventProducer
    from .prepared import PreparedEvent

__all__ = [
    "DBAPITransactions",
    "DjangoTransactions",
    "OnCommitSink",
    "SQLAlchemyTransactions",
    "TransactionHook",
]

log = logging.getLogger(__name__)

Callback = Callable[[], None]
C = TypeVar("C")


class TransactionHook(Protocol):
    """Runs a callback after the caller's current transaction commits, never on rollback."""

    def defer(self, callback: Callback) -> None: ...


class OnCommitSink:
    """The ``on_commit`` sink: prepare now, produce with ``producer`` after the commit."""

    def __init__(self, producer: EventProducer, transactions: TransactionHook) -> None:
        self.producer = producer
        self.transactions = transactions

    def send(
        self,
        signal: WorkflowSignal,
        metadata: EventMetadata,
        data: Mapping[str, Any],
        *,
        topic: str,
        key: str | None = None,
        sender: str | None = None,
        wire: str | None = None,
    ) -> None:
        """Check and encode the event now; produce it once the transaction commits."""
        event = self.producer.prepare(
            signal, metadata, data, topic=topic, key=key, sender=sender, wire=wire
        )
        self.transactions.defer(lambda: self._produce(event))

    def _produce(self, event: PreparedEvent) -> None:
        try:
            self.producer.send_prepared(event)
        except FlowbusError as exc:
            # The transaction has committed: raising would not undo it.
            log.error(
                "event %s (%s) for %s not sent after the commit: %s",
                event.metadata.id,
                event.metadata.event_type,
                event.topic,
                exc,
            )
            if self.producer.synchronous:
                raise


class DjangoTransactions:
    """Django's ``transaction.on_commit`` on the connection ``using`` (default: Django's
    default connection)."""

    def __init__(self, using: str | None = None) -> None:
        try:
            from django.db import transaction
        except ImportError:
            raise ConfigurationError(
                "DjangoTransactions needs Django (pip install django)"
            ) from None
        self._on_commit = transaction.on_commit
        self.using = using

    def defer(self, callback: Callback) -> None:
        self._on_commit(callback, using=self.using)


#: Where a session keeps its held callbacks (``Session.info``).
_HELD = "flowbus.on_commit.held"
_COMMITTED = "flowbus.on_commit.committed"


class SQLAlchemyTransactions:
    """The transaction of a SQLAlchemy ``Session``.

    ``session`` is a ``Session``, or a callable returning the caller's current one (a
    ``scoped_session``, or a function reading a context variable).
    """

    def __init__(self, session: Session | Callable[[], Session]) -> None:
        try:
            from sqlalchemy import event
            from sqlalchemy.orm import Session
        except ImportError:
            raise ConfigurationError(
                "SQLAlchemyTransactions needs SQLAlchemy (pip install sqlalchemy)"
            ) from None
        self._listen = event.listen
        self._session: Callable[[], Session] = (
            (lambda: session) if isinstance(session, Session) else session
        )

    def defer(self, callback: Callback) -> None:
        session = self._session()
        transaction = session.get_nested_transaction() or session.get_transaction()
        if transaction is None:
            callback()  # no transaction in progress: nothing to wait for
            return
        if _HELD not in session.info:
            session.info[_HELD] = {}
            session.info[_COMMITTED] = set()
            self._listen(session, "after_commit", _after_commit)
            self._listen(session, "after_transaction_end", _after_transaction_end)
        session.info[_HELD].setdefault(transaction, []).append(callback)


def _after_commit(session: Session) -> None:
    # Fired for the root transaction and for a released savepoint, before it closes.
    committed = session.get_nested_transaction() or session.get_transaction()
    if committed is not None:
        session.info[_COMMITTED].add(committed)


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    held: list[Callback] = session.info[_HELD].pop(transaction, [])
    committed = transaction in session.info[_COMMITTED]
    session.info[_COMMITTED].discard(transaction)
    if not held or not committed:
        return  # rolled back (or closed without a commit): the events go with it
    parent = transaction.parent
    if parent is not None:
        session.info[_HELD].setdefault(parent, []).extend(held)  # a released savepoint
        return
    for callback in held:
        callback()


class DBAPITransactions:
    """Transactions of plain DB-API connections, run as ``with hook.transaction(conn):``."""

    def __init__(self) -> None:
        self._held: contextvars.ContextVar[list[Callback] | None] = contextvars.ContextVar(
            "flowbus_on_commit_held", default=None
        )

    @contextlib.contextmanager
    def transaction(self, connection: C) -> Iterator[C]:
        """Commit ``connection`` at the end of the block and then produce the events sent
        inside; on an exception roll back and drop them. A block inside another one joins
        it (no savepoint): the outermost block commits or rolls back."""
        if self._held.get() is not None:
            yield connection
            return
        held: list[Callback] = []
        token = self._held.set(held)
        try:
            yield connection
        except BaseException:
            self._held.reset(token)
            connection.rollback()  # type: ignore[attr-defined]
            raise
        self._held.reset(token)
        connection.commit()  # type: ignore[attr-defined]  # if it fails, nothing is produced
        for callback in held:
            callback()

    def defer(self, callback: Callback) -> None:
        held = self._held.get()
        if held is None:
            callback()  # not inside a transaction block: nothing to wait for
        else:
            held.append(callback)
