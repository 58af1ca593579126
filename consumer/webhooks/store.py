"""Where subscriptions, deliveries and attempts live: SQLite (default) or PostgreSQL.

``WebhookStore.open(url)`` takes ``sqlite:///<path>`` (the file is created with mode
0600, its directory 0700: it holds signing secrets) or ``postgresql://...`` /
``postgres://...`` (needs the ``postgres`` extra, psycopg 3). The same SQL runs on both
(:mod:`.schema` the tables, :mod:`.rows` the row mapping, :mod:`.backends` what differs).

Several workers may share one database: an attempt is claimed with a conditional update
that pushes ``next_attempt_at`` past the attempt's lease (and records the lease's end in
``claimed_until``, which says the attempt is in flight), so exactly one worker runs it, and
a worker that dies mid-attempt leaves the delivery due again once the lease expires.

Opening with ``create=False`` (what read-only commands do) never creates a database: a
missing SQLite file, or a database without the webhook tables, is an error naming it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flowbus.database import Dialect, redact_database_url
from flowbus.errors import (
    DeliveryNotFoundError,
    SubscriptionNotFoundError,
    WebhookError,
    WebhookStoreError,
)

from .backends import Transaction, backend_for
from .models import (
    Attempt,
    Delivery,
    DeliveryStatus,
    Subscription,
    new_delivery_id,
    utc_now,
    validate_secrets,
)
from .rows import (
    ATTEMPT_COLUMNS,
    D_COLUMNS,
    DELIVERY_COLUMNS,
    SUBSCRIPTION_COLUMNS,
    attempt_from_row,
    attempt_row,
    delivery_from_row,
    from_ms_or_none,
    secrets_text,
    subscription_from_row,
    subscription_row,
    to_ms,
)
from .schema import MIGRATIONS, SCHEMA_VERSION, STATEMENTS, VERSION_TABLE

if TYPE_CHECKING:
    from flowbus.settings import FlowbusSettings

__all__ = ["SCHEMA_VERSION", "WebhookStore", "default_database_url", "redact_database_url"]

logger = logging.getLogger(__name__)

_REDRIVABLE = (DeliveryStatus.FAILED.value, DeliveryStatus.BLOCKED.value)


def default_database_url(settings: FlowbusSettings | None = None) -> str:
    """``FLOWBUS_WEBHOOKS_DATABASE_URL``, or the SQLite file under the state directory."""
    if settings is None:
        from flowbus.settings import get_settings

        settings = get_settings()
    if settings.webhooks_database_url:
        return settings.webhooks_database_url
    return f"sqlite:///{settings.state_dir / 'webhooks.sqlite3'}"


class WebhookStore:
    """Subscriptions, deliveries and their attempt log in one database.

    Thread-safe: one connection, one lock; every method is one short transaction.
    """

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = url
        self.display_url = redact_database_url(url)
        self._lock = threading.RLock()
        self._backend = backend_for(url, self.display_url)
        self.dialect: Dialect = self._backend.dialect
        self._backend.open(create=create)
        try:
            self._create_schema()
        except BaseException:
            self.close()
            raise

    @classmethod
    def open(cls, url: str | None = None, *, create: bool = True) -> WebhookStore:
        """Open the store at ``url`` or the configured default.

        ``create``: make the database and its tables if missing; without it (read-only
        tools) a missing database is a :class:`WebhookStoreError` that names it.
        """
        return cls(url or default_database_url(), create=create)

    # -- connection -----------------------------------------------------------------

    @contextlib.contextmanager
    def _tx(self, write: bool = True) -> Iterator[Transaction]:
        with self._lock:
            if self._backend.closed:
                raise WebhookStoreError(f"the webhook store {self.display_url} is closed")
            with self._backend.transaction(write=write) as tx:
                yield tx

    def _create_schema(self) -> None:
        with self._tx() as tx:
            self._backend.lock_schema(tx)
            for statement in STATEMENTS:
                tx.execute(statement)
            versions = tx.rows(f"SELECT version FROM {VERSION_TABLE}")
            if not versions:
                tx.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES (?)", (SCHEMA_VERSION,))
                return
            version = int(versions[0][0])
            if version > SCHEMA_VERSION:
                raise WebhookStoreError(
                    f"{self.display_url} has webhook schema version {version}; this "
                    f"flowbus understands up to {SCHEMA_VERSION}: upgrade flowbus"
                )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[step]:
                    tx.execute(statement)
            if version < SCHEMA_VERSION:
                tx.execute(f"UPDATE {VERSION_TABLE} SET version = ?", (SCHEMA_VERSION,))

    def close(self) -> None:
        """Close the connection; the store is unusable afterwards."""
        with self._lock:
            self._backend.close()

    def __enter__(self) -> WebhookStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- subscriptions --------------------------------------------------------------

    def add_subscription(self, subscription: Subscription) -> Subscription:
        """Store a new subscription (see :meth:`Subscription.create`)."""
        with self._tx() as tx:
            tx.execute(
                f"INSERT INTO webhook_subscriptions ({SUBSCRIPTION_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                subscription_row(subscription),
            )
        logger.info(
            "added webhook subscription %s for %s",
            subscription.id,
            subscription.event_pattern.text,
        )
        return subscription

    def get_subscription(self, subscription_id: str) -> Subscription:
        """The subscription with this id; raises :class:`SubscriptionNotFoundError`."""
        with self._tx(write=False) as tx:
            rows = tx.rows(
                f"SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE id = ?",
                (subscription_id,),
            )
        if not rows:
            raise SubscriptionNotFoundError(subscription_id)
        return subscription_from_row(rows[0])

    def list_subscriptions(self, *, enabled: bool | None = None) -> list[Subscription]:
        """All subscriptions (or only enabled / disabled ones), oldest first."""
        sql = f"SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions"
        params: tuple[Any, ...] = ()
        if enabled is not None:
            sql += " WHERE enabled = ?"
            params = (int(enabled),)
        with self._tx(write=False) as tx:
            rows = tx.rows(sql + " ORDER BY created_at, id", params)
        return [subscription_from_row(row) for row in rows]

    def set_enabled(self, subscription_id: str, enabled: bool) -> Subscription:
        """Enable or disable a subscription. Pending deliveries of a disabled one wait."""
        return self._update_subscription(subscription_id, "enabled = ?", (int(enabled),))

    def set_secrets(self, subscription_id: str, secrets: Sequence[str]) -> Subscription:
        """Replace the signing secrets (current first; more than one while rotating)."""
        values = validate_secrets(secrets)
        return self._update_subscription(subscription_id, "secrets = ?", (secrets_text(values),))

    def _update_subscription(
        self, subscription_id: str, assignment: str, params: tuple[Any, ...]
    ) -> Subscription:
        now = utc_now()
        with self._tx() as tx:
            cursor = tx.execute(
                f"UPDATE webhook_subscriptions SET {assignment}, updated_at = ? WHERE id = ?",
                (*params, to_ms(now), subscription_id),
            )
            if cursor.rowcount == 0:
                raise SubscriptionNotFoundError(subscription_id)
            rows = tx.rows(
                f"SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE id = ?",
                (subscription_id,),
            )
        return subscription_from_row(rows[0])

    def remove_subscription(self, subscription_id: str) -> None:
        """Delete a subscription with its deliveries and attempt log."""
        with self._tx() as tx:
            # Explicit deletes: a database opened without cascading foreign keys still
            # ends up clean.
            tx.execute(
                "DELETE FROM webhook_attempts WHERE delivery_id IN "
                "(SELECT id FROM webhook_deliveries WHERE subscription_id = ?)",
                (subscription_id,),
            )
            tx.execute(
                "DELETE FROM webhook_deliveries WHERE subscription_id = ?", (subscription_id,)
            )
            cursor = tx.execute(
                "DELETE FROM webhook_subscriptions WHERE id = ?", (subscription_id,)
            )
            if cursor.rowcount == 0:
                raise SubscriptionNotFoundError(subscription_id)
        logger.info("removed webhook subscription %s", subscription_id)

    # -- deliveries -----------------------------------------------------------------

    def create_deliveries(
        self,
        *,
        event_id: str,
        event_type: str,
        body: bytes,
        subscription_ids: Iterable[str],
        now: datetime | None = None,
    ) -> list[Delivery]:
        """Record one pending delivery per subscription, due now; returns the new ones.

        Idempotent per (subscription, event id): an event submitted again (a consumer
        re-reading after a crash) creates nothing new.
        """
        created_at = now or utc_now()
        text = body.decode("utf-8")
        created: list[Delivery] = []
        with self._tx() as tx:
            for subscription_id in subscription_ids:
                delivery = Delivery(
                    id=new_delivery_id(),
                    subscription_id=subscription_id,
                    event_id=event_id,
                    event_type=event_type,
                    status=DeliveryStatus.PENDING,
                    attempts=0,
                    round_start=0,
                    next_attempt_at=created_at,
                    last_status_code=None,
                    last_error=None,
                    created_at=created_at,
                    updated_at=created_at,
                    body=body,
                )
                cursor = tx.execute(
                    f"INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, 0, 0, ?, NULL, NULL, ?, ?, ?, NULL) "
                    "ON CONFLICT (subscription_id, event_id) DO NOTHING",
                    (
                        delivery.id,
                        subscription_id,
                        event_id,
                        event_type,
                        DeliveryStatus.PENDING.value,
                        to_ms(created_at),
                        to_ms(created_at),
                        to_ms(created_at),
                        text,
                    ),
                )
                if cursor.rowcount == 1:
                    created.append(delivery)
        return created

    def get_delivery(self, delivery_id: str) -> Delivery:
        """The delivery with this id; raises :class:`DeliveryNotFoundError`."""
        with self._tx(write=False) as tx:
            rows = tx.rows(
                f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?", (delivery_id,)
            )
        if not rows:
            raise DeliveryNotFoundError(delivery_id)
        return delivery_from_row(rows[0])

    def list_deliveries(
        self,
        *,
        subscription_id: str | None = None,
        status: DeliveryStatus | None = None,
        event_id: str | None = None,
        limit: int = 50,
    ) -> list[Delivery]:
        """Deliveries, newest first, optionally of one subscription / status / event."""
        conditions: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("subscription_id", subscription_id),
            ("status", status.value if status is not None else None),
            ("event_id", event_id),
        ):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        with self._tx(write=False) as tx:
            rows = tx.rows(
                f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries{where} "
                "ORDER BY created_at DESC, id LIMIT ?",
                (*params, int(limit)),
            )
        return [delivery_from_row(row) for row in rows]

    def count_deliveries(self, subscription_id: str | None = None) -> dict[DeliveryStatus, int]:
        """How many deliveries are in each status (of one subscription, or all)."""
        sql = "SELECT status, COUNT(*) FROM webhook_deliveries"
        params: tuple[Any, ...] = ()
        if subscription_id is not None:
            sql += " WHERE subscription_id = ?"
            params = (subscription_id,)
        with self._tx(write=False) as tx:
            rows = tx.rows(sql + " GROUP BY status", params)
        counts = dict.fromkeys(DeliveryStatus, 0)
        for status, count in rows:
            counts[DeliveryStatus(status)] = int(count)
        return counts

    def count_pending(self) -> int:
        """How many deliveries are pending, of every subscription (the due index answers)."""
        with self._tx(write=False) as tx:
            rows = tx.rows(
                "SELECT COUNT(*) FROM webhook_deliveries WHERE status = ?",
                (DeliveryStatus.PENDING.value,),
            )
        return int(rows[0][0])

    def list_attempts(self, delivery_id: str) -> list[Attempt]:
        """The attempt log of one delivery, oldest first."""
        with self._tx(write=False) as tx:
            rows = tx.rows(
                f"SELECT {ATTEMPT_COLUMNS} FROM webhook_attempts WHERE delivery_id = ? "
                "ORDER BY number",
                (delivery_id,),
            )
        return [attempt_from_row(row) for row in rows]

    def due_deliveries(
        self,
        *,
        now: datetime | None = None,
        limit: int = 100,
        exclude_subscriptions: Iterable[str] = (),
    ) -> list[Delivery]:
        """Pending deliveries of enabled subscriptions whose next attempt is due, oldest first."""
        excluded = sorted(set(exclude_subscriptions))
        not_in = ""
        if excluded:
            not_in = f" AND d.subscription_id NOT IN ({', '.join('?' * len(excluded))})"
        with self._tx(write=False) as tx:
            rows = tx.rows(
                f"SELECT {D_COLUMNS} FROM webhook_deliveries d "
                "JOIN webhook_subscriptions s ON s.id = d.subscription_id "
                "WHERE d.status = ? AND d.next_attempt_at <= ? AND s.enabled = 1"
                f"{not_in} ORDER BY d.next_attempt_at, d.id LIMIT ?",
                (DeliveryStatus.PENDING.value, to_ms(now or utc_now()), *excluded, int(limit)),
            )
        return [delivery_from_row(row) for row in rows]

    def next_due_at(self) -> datetime | None:
        """When the earliest pending delivery of an enabled subscription is due."""
        with self._tx(write=False) as tx:
            rows = tx.rows(
                "SELECT MIN(d.next_attempt_at) FROM webhook_deliveries d "
                "JOIN webhook_subscriptions s ON s.id = d.subscription_id "
                "WHERE d.status = ? AND s.enabled = 1",
                (DeliveryStatus.PENDING.value,),
            )
        return from_ms_or_none(rows[0][0]) if rows else None

    def claim(self, delivery: Delivery, *, now: datetime, lease_until: datetime) -> bool:
        """Take the next attempt of ``delivery``; ``False`` if another worker has it.

        The claim moves ``next_attempt_at`` to ``lease_until``: if this worker dies, the
        delivery becomes due again then. ``claimed_until`` says the attempt is in flight
        until it is recorded.
        """
        with self._tx() as tx:
            cursor = tx.execute(
                "UPDATE webhook_deliveries SET next_attempt_at = ?, claimed_until = ?,"
                " updated_at = ? "
                "WHERE id = ? AND status = ? AND attempts = ? AND next_attempt_at <= ?",
                (
                    to_ms(lease_until),
                    to_ms(lease_until),
                    to_ms(now),
                    delivery.id,
                    DeliveryStatus.PENDING.value,
                    delivery.attempts,
                    to_ms(now),
                ),
            )
            return cursor.rowcount == 1

    def record_attempt(
        self,
        attempt: Attempt,
        *,
        status: DeliveryStatus,
        next_attempt_at: datetime | None,
    ) -> Delivery | None:
        """Log ``attempt`` and move its delivery to ``status`` in one transaction.

        Returns the updated delivery, or ``None`` when the attempt was already recorded
        (this worker's lease expired and another worker ran the attempt too).
        """
        now = utc_now()
        with self._tx() as tx:
            cursor = tx.execute(
                "UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?,"
                " claimed_until = NULL, last_status_code = ?, last_error = ?, updated_at = ?"
                " WHERE id = ? AND attempts = ?",
                (
                    status.value,
                    attempt.number,
                    None if next_attempt_at is None else to_ms(next_attempt_at),
                    attempt.status_code,
                    attempt.error,
                    to_ms(now),
                    attempt.delivery_id,
                    attempt.number - 1,
                ),
            )
            if cursor.rowcount == 0:
                return None
            tx.execute(
                f"INSERT INTO webhook_attempts ({ATTEMPT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                attempt_row(attempt),
            )
            rows = tx.rows(
                f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?",
                (attempt.delivery_id,),
            )
        return delivery_from_row(rows[0])

    def redrive(self, delivery_id: str, *, now: datetime | None = None) -> Delivery:
        """Make a failed or blocked delivery pending again, due now, with a fresh retry budget."""
        when = now or utc_now()
        with self._tx() as tx:
            cursor = tx.execute(
                "UPDATE webhook_deliveries SET status = ?, round_start = attempts,"
                " next_attempt_at = ?, updated_at = ? WHERE id = ? AND status IN (?, ?)",
                (DeliveryStatus.PENDING.value, to_ms(when), to_ms(when), delivery_id, *_REDRIVABLE),
            )
            rows = tx.rows(
                f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?", (delivery_id,)
            )
        if not rows:
            raise DeliveryNotFoundError(delivery_id)
        delivery = delivery_from_row(rows[0])
        if cursor.rowcount == 0:
            raise WebhookError(
                f"delivery {delivery_id} is {delivery.status.value}; only failed or blocked "
                "deliveries can be re-driven"
            )
        return delivery

    def redrive_all(
        self, *, subscription_id: str | None = None, now: datetime | None = None
    ) -> int:
        """Re-drive every failed or blocked delivery (of one subscription); returns how many."""
        when = now or utc_now()
        sql = (
            "UPDATE webhook_deliveries SET status = ?, round_start = attempts,"
            " next_attempt_at = ?, updated_at = ? WHERE status IN (?, ?)"
        )
        params: list[Any] = [DeliveryStatus.PENDING.value, to_ms(when), to_ms(when), *_REDRIVABLE]
        if subscription_id is not None:
            sql += " AND subscription_id = ?"
            params.append(subscription_id)
        with self._tx() as tx:
            return tx.execute(sql, params).rowcount
