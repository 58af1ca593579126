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

from typing import TYPE_CHECKING

from flowbus.lazy_exports import lazy_exports

from .relay import OutboxRelay
from .sink import OutboxSink, bind, bind_by_default, bound
from .store import SCHEMA_VERSION, OutboxStatus, RejectedRow, RelayStore

if TYPE_CHECKING:
    from .metrics import OutboxMetrics

# Imported on first use: the sink runs without the 'metrics' extra.
__getattr__, __dir__ = lazy_exports(__name__, {"OutboxMetrics": ".metrics"})

__all__ = [
    "SCHEMA_VERSION",
    "OutboxMetrics",
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


def migrate(database_url: str) -> int:
    """Create or upgrade the outbox tables at ``database_url``; returns the version."""
    store = RelayStore(database_url)
    try:
        return store.migrate()
    finally:
        store.close()


def status(database_url: str) -> OutboxStatus:
    """The backlog of the outbox at ``database_url`` (migrating it first if needed)."""
    store = RelayStore(database_url)
    try:
        store.migrate()
        return store.status()
    finally:
        store.close()


def rejected(database_url: str, limit: int | None = None) -> list[RejectedRow]:
    """The rows the broker rejected for good, oldest first (migrating first if needed)."""
    store = RelayStore(database_url)
    try:
        store.migrate()
        return store.rejected(limit)
    finally:
        store.close()


def retry(database_url: str, ids: list[str] | None) -> list[str]:
    """Re-queue rejected rows (the events ``ids``, or all when ``None``) in their old place;
    returns the ids re-queued."""
    store = RelayStore(database_url)
    try:
        store.migrate()
        return store.requeue(ids)
    finally:
        store.close()
