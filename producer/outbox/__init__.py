"""Transactional outbox: events leave with the commit of the transaction that caused them.

**Delivery contract.** :class:`OutboxSink` writes each event, fully prepared, into the
table ``flowbus_outbox`` through the caller's own connection, inside the caller's
transaction (:func:`bind`). A rollback takes the events with it; nothing reaches Kafka
unless the transaction commits. :class:`OutboxRelay` (``flowbus outbox relay``) publishes
every committed row, in commit order per key, and marks it sent only after the broker
acknowledged it: whatever crash or broker or registry outage follows the commit, the
event is published once the relay runs again (at least once: a relay crash between the
acknowledgement and the mark publishes a row twice; deduplicate by ``ce_id``).

::

    sink = OutboxSink()
    with conn:                    # the caller's transaction (sqlite3, psycopg, ...)
        with outbox.bind(conn):   # or a SQLAlchemy Session / Connection
            conn.execute("UPDATE invoices SET paid = true WHERE id = ?", (7,))
            sink.send(INVOICE_PAID, metadata, data, topic="billing", key="case-1")

    OutboxRelay("sqlite:///app.db").start()   # in the service, or `flowbus outbox relay`

:func:`migrate` (``flowbus outbox migrate``) creates the tables; the relay does too.
Rows the broker rejects for good are set aside (:func:`rejected`, ``flowbus outbox
rejected``) until re-queued (:func:`retry`, ``flowbus outbox retry``); see ``relay.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from flowbus.lazy_exports import lazy_exports_by_module

from .relay import OutboxRelay
from .sink import OutboxSink, bind, bind_by_default, bound
from .store import SCHEMA_VERSION, OutboxStatus, RejectedRow, RelayStore

if TYPE_CHECKING:  # type checkers do not run __getattr__
    from .metrics import OutboxMetrics as OutboxMetrics

# Imported on first use: the sink runs without the 'metrics' extra.
_lazy, __getattr__, __dir__ = lazy_exports_by_module(__name__, {".metrics": ["OutboxMetrics"]})

__all__ = [
    *_lazy,
    "SCHEMA_VERSION",
    "OutboxRelay",
    "OutboxSink",
    "OutboxStatus",
    "RejectedRow",
    "bind",
    "bind_by_default",
    "bound",
    "migrate",
    "rejected",
    "retry",
    "status",
]


@contextmanager
def _opened(database_url: str, *, migrated: bool = True) -> Iterator[RelayStore]:
    """The relay store at ``database_url`` (migrated first unless told not to), then closed."""
    store = RelayStore(database_url)
    try:
        if migrated:
            store.migrate()
        yield store
    finally:
        store.close()


def migrate(database_url: str) -> int:
    """Create or upgrade the outbox tables at ``database_url``; returns the version."""
    with _opened(database_url, migrated=False) as store:
        return store.migrate()


def status(database_url: str) -> OutboxStatus:
    """The backlog of the outbox at ``database_url`` (migrating it first if needed)."""
    with _opened(database_url) as store:
        return store.status()


def rejected(database_url: str, limit: int | None = None) -> list[RejectedRow]:
    """The rows the broker rejected for good, oldest first (migrating first if needed)."""
    with _opened(database_url) as store:
        return store.rejected(limit)


def retry(database_url: str, ids: list[str] | None) -> list[str]:
    """Re-queue rejected rows (the events ``ids``, or all when ``None``) in their old place;
    returns the ids re-queued."""
    with _opened(database_url) as store:
        return store.requeue(ids)
