"""Where subscriptions, deliveries and attempts live: SQLite (default) or PostgreSQL.

``WebhookStore.open(url)`` takes ``sqlite:///<path>`` (the file is created with mode
0600, its directory 0700: it holds signing secrets) or ``postgresql://...`` /
``postgres://...`` (needs the ``postgres`` extra, psycopg 3). The same SQL runs on both;
times are unix milliseconds, JSON fields are text.

Several workers may share one database: an attempt is claimed with a conditional update
that pushes ``next_attempt_at`` past the attempt's lease (and records the lease's end in
``claimed_until``, which says the attempt is in flight), so exactly one worker runs it, and
a worker that dies mid-attempt leaves the delivery due again once the lease expires.

Opening with ``create=False`` (what read-only commands do) never creates a database: a
missing SQLite file, or a database without the webhook tables, is an error naming it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from flowbus.database import (
    connect_postgres,
    connect_sqlite,
    dialect_of,
    redact_database_url,
    sqlite_path,
)
from flowbus.errors import (
    DeliveryNotFoundError,
    SubscriptionNotFoundError,
    WebhookError,
    WebhookStoreError,
)

from .matching import EventTypePattern, filters_to_json, parse_filters
from .models import (
    Attempt,
    AttemptOutcome,
    Delivery,
    DeliveryRetryPolicy,
    DeliveryStatus,
    Subscription,
    new_delivery_id,
    utc_now,
    validate_secrets,
)

if TYPE_CHECKING:
    from flowbus.settings import FlowbusSettings

__all__ = ["SCHEMA_VERSION", "WebhookStore", "default_database_url", "redact_database_url"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS webhook_subscriptions (
        id TEXT PRIMARY KEY,
        description TEXT NOT NULL,
        event_pattern TEXT NOT NULL,
        filters TEXT NOT NULL,
        url TEXT NOT NULL,
        method TEXT NOT NULL,
        headers TEXT NOT NULL,
        secrets TEXT NOT NULL,
        enabled INTEGER NOT NULL,
        timeout_seconds DOUBLE PRECISION NOT NULL,
        max_attempts INTEGER NOT NULL,
        initial_backoff_seconds DOUBLE PRECISION NOT NULL,
        max_backoff_seconds DOUBLE PRECISION NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS webhook_deliveries (
        id TEXT PRIMARY KEY,
        subscription_id TEXT NOT NULL
            REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
        event_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        body TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        round_start INTEGER NOT NULL,
        next_attempt_at BIGINT,
        claimed_until BIGINT,
        last_status_code INTEGER,
        last_error TEXT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        UNIQUE (subscription_id, event_id)
    )""",
    """CREATE INDEX IF NOT EXISTS webhook_deliveries_due
        ON webhook_deliveries (status, next_attempt_at)""",
    """CREATE INDEX IF NOT EXISTS webhook_deliveries_by_subscription
        ON webhook_deliveries (subscription_id, created_at)""",
    """CREATE TABLE IF NOT EXISTS webhook_attempts (
        delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
        number INTEGER NOT NULL,
        started_at BIGINT NOT NULL,
        latency_ms DOUBLE PRECISION,
        status_code INTEGER,
        outcome TEXT NOT NULL,
        error TEXT,
        PRIMARY KEY (delivery_id, number)
    )""",
    "CREATE TABLE IF NOT EXISTS webhook_schema_version (version INTEGER NOT NULL)",
)
#: Schema version n-1 -> n.
_MIGRATIONS = {2: ("ALTER TABLE webhook_deliveries ADD COLUMN claimed_until BIGINT",)}

_SUB_COLUMNS = (
    "id, description, event_pattern, filters, url, method, headers, secrets, enabled,"
    " timeout_seconds, max_attempts, initial_backoff_seconds, max_backoff_seconds,"
    " created_at, updated_at"
)
_DELIVERY_COLUMNS = (
    "id, subscription_id, event_id, event_type, status, attempts, round_start,"
    " next_attempt_at, last_status_code, last_error, created_at, updated_at, body,"
    " claimed_until"
)
_D_COLUMNS = ", ".join("d." + c.strip() for c in _DELIVERY_COLUMNS.split(","))
_ATTEMPT_COLUMNS = "delivery_id, number, started_at, latency_ms, status_code, outcome, error"
_REDRIVABLE = (DeliveryStatus.FAILED.value, DeliveryStatus.BLOCKED.value)
_PG_SCHEMA_LOCK = 0x666C6F77  # "flow": serialises concurrent schema creation


def default_database_url(settings: FlowbusSettings | None = None) -> str:
    """``FLOWBUS_WEBHOOKS_DATABASE_URL``, or the SQLite file under the state directory."""
    if settings is None:
        from flowbus.settings import get_settings

        settings = get_settings()
    if settings.webhooks_database_url:
        return settings.webhooks_database_url
    return f"sqlite:///{settings.state_dir / 'webhooks.sqlite3'}"


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _dt(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)


def _dt_required(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


class _Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchall(self) -> list[Any]: ...


class _Tx:
    """One transaction: ``execute`` with ``?`` placeholders on either database."""

    def __init__(self, conn: Any, placeholder: str) -> None:
        self._conn = conn
        self._placeholder = placeholder

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Cursor:
        if self._placeholder != "?":
            sql = sql.replace("?", self._placeholder)
        cursor: _Cursor = self._conn.execute(sql, tuple(params))
        return cursor

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self.execute(sql, params).fetchall()


class WebhookStore:
    """Subscriptions, deliveries and their attempt log in one database.

    Thread-safe: one connection, one lock; every method is one short transaction.
    """

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = url
        self.display_url = redact_database_url(url)
        self._lock = threading.RLock()
        self.dialect = dialect_of(url, WebhookStoreError)
        if self.dialect == "sqlite":
            self._path = sqlite_path(url, WebhookStoreError)
        self._conn: Any = None
        if not create and self.dialect == "sqlite" and self._path != ":memory:":
            self._require_sqlite_tables()
        self._connect()
        try:
            if not create and self.dialect == "postgresql" and not self._has_tables():
                raise WebhookStoreError(
                    f"{self.display_url} holds no webhook tables; nothing was created "
                    "(`flowbus webhooks add` creates them)"
                )
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

    def _connect(self) -> None:
        if self.dialect == "sqlite":
            self._conn = self._connect_sqlite()
        else:
            self._conn = self._connect_postgres()

    def _connect_sqlite(self) -> sqlite3.Connection:
        return connect_sqlite(self._path, WebhookStoreError, private=True)

    def _connect_postgres(self) -> Any:
        return connect_postgres(self.url, WebhookStoreError)

    def _driver_errors(self) -> tuple[type[Exception], ...]:
        if self.dialect == "sqlite":
            return (sqlite3.Error,)
        import psycopg

        return (psycopg.Error,)

    @contextlib.contextmanager
    def _tx(self, write: bool = True) -> Iterator[_Tx]:
        errors = self._driver_errors()
        with self._lock:
            if self._conn is None:
                raise WebhookStoreError(f"the webhook store {self.display_url} is closed")
            try:
                if self.dialect == "sqlite":
                    yield from self._sqlite_tx(write)
                else:
                    if self._conn.closed or self._conn.broken:
                        logger.warning("reconnecting to %s", self.display_url)
                        self._connect()
                    with self._conn.transaction():
                        yield _Tx(self._conn, "%s")
            except WebhookError:
                raise
            except errors as exc:
                raise WebhookStoreError(f"webhook store {self.display_url}: {exc}") from exc

    def _sqlite_tx(self, write: bool) -> Iterator[_Tx]:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield _Tx(conn, "?")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _require_sqlite_tables(self) -> None:
        """Refuse a missing file, or one without the tables, leaving it untouched."""
        if not Path(self._path).is_file():
            raise WebhookStoreError(
                f"no webhook database at {self._path}; nothing was created (`flowbus "
                "webhooks add` creates it; --database or FLOWBUS_WEBHOOKS_DATABASE_URL "
                "chooses another)"
            )
        try:
            with contextlib.closing(
                sqlite3.connect(f"{Path(self._path).resolve().as_uri()}?mode=ro", uri=True)
            ) as conn:
                found = conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                    ("webhook_schema_version",),
                ).fetchall()
        except sqlite3.Error as exc:
            raise WebhookStoreError(f"cannot open {self.display_url}: {exc}") from exc
        if not found:
            raise WebhookStoreError(
                f"{self.display_url} holds no webhook tables; nothing was created "
                "(`flowbus webhooks add` creates them)"
            )

    def _has_tables(self) -> bool:
        with self._tx(write=False) as tx:
            return bool(
                tx.rows(
                    "SELECT 1 FROM information_schema.tables WHERE table_name = ?",
                    ("webhook_schema_version",),
                )
            )

    def _create_schema(self) -> None:
        with self._tx() as tx:
            if self.dialect == "postgresql":
                tx.execute("SELECT pg_advisory_xact_lock(?)", (_PG_SCHEMA_LOCK,))
            for statement in _SCHEMA:
                tx.execute(statement)
            versions = tx.rows("SELECT version FROM webhook_schema_version")
            if not versions:
                tx.execute(
                    "INSERT INTO webhook_schema_version (version) VALUES (?)", (SCHEMA_VERSION,)
                )
                return
            version = int(versions[0][0])
            if version > SCHEMA_VERSION:
                raise WebhookStoreError(
                    f"{self.display_url} has webhook schema version {version}; this "
                    f"flowbus understands up to {SCHEMA_VERSION}: upgrade flowbus"
                )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[step]:
                    tx.execute(statement)
            if version < SCHEMA_VERSION:
                tx.execute("UPDATE webhook_schema_version SET version = ?", (SCHEMA_VERSION,))

    def close(self) -> None:
        """Close the connection; the store is unusable afterwards."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> WebhookStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- subscriptions --------------------------------------------------------------

    def add_subscription(self, subscription: Subscription) -> Subscription:
        """Store a new subscription (see :meth:`Subscription.create`)."""
        with self._tx() as tx:
            tx.execute(
                f"INSERT INTO webhook_subscriptions ({_SUB_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _subscription_row(subscription),
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
                f"SELECT {_SUB_COLUMNS} FROM webhook_subscriptions WHERE id = ?",
                (subscription_id,),
            )
        if not rows:
            raise SubscriptionNotFoundError(subscription_id)
        return _subscription_from_row(rows[0])

    def list_subscriptions(self, *, enabled: bool | None = None) -> list[Subscription]:
        """All subscriptions (or only enabled / disabled ones), oldest first."""
        sql = f"SELECT {_SUB_COLUMNS} FROM webhook_subscriptions"
        params: tuple[Any, ...] = ()
        if enabled is not None:
            sql += " WHERE enabled = ?"
            params = (int(enabled),)
        with self._tx(write=False) as tx:
            rows = tx.rows(sql + " ORDER BY created_at, id", params)
        return [_subscription_from_row(row) for row in rows]

    def set_enabled(self, subscription_id: str, enabled: bool) -> Subscription:
        """Enable or disable a subscription. Pending deliveries of a disabled one wait."""
        return self._update_subscription(subscription_id, "enabled = ?", (int(enabled),))

    def set_secrets(self, subscription_id: str, secrets: Sequence[str]) -> Subscription:
        """Replace the signing secrets (current first; more than one while rotating)."""
        values = validate_secrets(secrets)
        return self._update_subscription(
            subscription_id, "secrets = ?", (json.dumps(list(values)),)
        )

    def _update_subscription(
        self, subscription_id: str, assignment: str, params: tuple[Any, ...]
    ) -> Subscription:
        now = utc_now()
        with self._tx() as tx:
            cursor = tx.execute(
                f"UPDATE webhook_subscriptions SET {assignment}, updated_at = ? WHERE id = ?",
                (*params, _ms(now), subscription_id),
            )
            if cursor.rowcount == 0:
                raise SubscriptionNotFoundError(subscription_id)
            rows = tx.rows(
                f"SELECT {_SUB_COLUMNS} FROM webhook_subscriptions WHERE id = ?",
                (subscription_id,),
            )
        return _subscription_from_row(rows[0])

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
                    f"INSERT INTO webhook_deliveries ({_DELIVERY_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, 0, 0, ?, NULL, NULL, ?, ?, ?, NULL) "
                    "ON CONFLICT (subscription_id, event_id) DO NOTHING",
                    (
                        delivery.id,
                        subscription_id,
                        event_id,
                        event_type,
                        DeliveryStatus.PENDING.value,
                        _ms(created_at),
                        _ms(created_at),
                        _ms(created_at),
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
                f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?", (delivery_id,)
            )
        if not rows:
            raise DeliveryNotFoundError(delivery_id)
        return _delivery_from_row(rows[0])

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
                f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries{where} "
                "ORDER BY created_at DESC, id LIMIT ?",
                (*params, int(limit)),
            )
        return [_delivery_from_row(row) for row in rows]

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
                f"SELECT {_ATTEMPT_COLUMNS} FROM webhook_attempts WHERE delivery_id = ? "
                "ORDER BY number",
                (delivery_id,),
            )
        return [
            Attempt(
                delivery_id=row[0],
                number=int(row[1]),
                started_at=_dt_required(row[2]),
                latency_ms=None if row[3] is None else float(row[3]),
                status_code=row[4],
                outcome=AttemptOutcome(row[5]),
                error=row[6],
            )
            for row in rows
        ]

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
                f"SELECT {_D_COLUMNS} FROM webhook_deliveries d "
                "JOIN webhook_subscriptions s ON s.id = d.subscription_id "
                "WHERE d.status = ? AND d.next_attempt_at <= ? AND s.enabled = 1"
                f"{not_in} ORDER BY d.next_attempt_at, d.id LIMIT ?",
                (DeliveryStatus.PENDING.value, _ms(now or utc_now()), *excluded, int(limit)),
            )
        return [_delivery_from_row(row) for row in rows]

    def next_due_at(self) -> datetime | None:
        """When the earliest pending delivery of an enabled subscription is due."""
        with self._tx(write=False) as tx:
            rows = tx.rows(
                "SELECT MIN(d.next_attempt_at) FROM webhook_deliveries d "
                "JOIN webhook_subscriptions s ON s.id = d.subscription_id "
                "WHERE d.status = ? AND s.enabled = 1",
                (DeliveryStatus.PENDING.value,),
            )
        return _dt(rows[0][0]) if rows else None

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
                    _ms(lease_until),
                    _ms(lease_until),
                    _ms(now),
                    delivery.id,
                    DeliveryStatus.PENDING.value,
                    delivery.attempts,
                    _ms(now),
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
                    None if next_attempt_at is None else _ms(next_attempt_at),
                    attempt.status_code,
                    attempt.error,
                    _ms(now),
                    attempt.delivery_id,
                    attempt.number - 1,
                ),
            )
            if cursor.rowcount == 0:
                return None
            tx.execute(
                f"INSERT INTO webhook_attempts ({_ATTEMPT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    attempt.delivery_id,
                    attempt.number,
                    _ms(attempt.started_at),
                    attempt.latency_ms,
                    attempt.status_code,
                    attempt.outcome.value,
                    attempt.error,
                ),
            )
            rows = tx.rows(
                f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?",
                (attempt.delivery_id,),
            )
        return _delivery_from_row(rows[0])

    def redrive(self, delivery_id: str, *, now: datetime | None = None) -> Delivery:
        """Make a failed or blocked delivery pending again, due now, with a fresh retry budget."""
        when = now or utc_now()
        with self._tx() as tx:
            cursor = tx.execute(
                "UPDATE webhook_deliveries SET status = ?, round_start = attempts,"
                " next_attempt_at = ?, updated_at = ? WHERE id = ? AND status IN (?, ?)",
                (DeliveryStatus.PENDING.value, _ms(when), _ms(when), delivery_id, *_REDRIVABLE),
            )
            rows = tx.rows(
                f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?", (delivery_id,)
            )
        if not rows:
            raise DeliveryNotFoundError(delivery_id)
        delivery = _delivery_from_row(rows[0])
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
        params: list[Any] = [DeliveryStatus.PENDING.value, _ms(when), _ms(when), *_REDRIVABLE]
        if subscription_id is not None:
            sql += " AND subscription_id = ?"
            params.append(subscription_id)
        with self._tx() as tx:
            return tx.execute(sql, params).rowcount


def _subscription_row(sub: Subscription) -> tuple[Any, ...]:
    return (
        sub.id,
        sub.description,
        sub.event_pattern.text,
        json.dumps(filters_to_json(sub.filters), sort_keys=True),
        sub.url,
        sub.method,
        json.dumps(dict(sub.headers), sort_keys=True),
        json.dumps(list(sub.secrets)),
        int(sub.enabled),
        sub.timeout,
        sub.retry.max_attempts,
        sub.retry.initial_backoff,
        sub.retry.max_backoff,
        _ms(sub.created_at),
        _ms(sub.updated_at),
    )


def _subscription_from_row(row: Sequence[Any]) -> Subscription:
    return Subscription(
        id=row[0],
        description=row[1],
        event_pattern=EventTypePattern(row[2]),
        filters=parse_filters(json.loads(row[3])),
        url=row[4],
        method=row[5],
        headers=json.loads(row[6]),
        secrets=tuple(json.loads(row[7])),
        enabled=bool(row[8]),
        timeout=float(row[9]),
        retry=DeliveryRetryPolicy(
            max_attempts=int(row[10]),
            initial_backoff=float(row[11]),
            max_backoff=float(row[12]),
        ),
        created_at=_dt_required(row[13]),
        updated_at=_dt_required(row[14]),
    )


def _delivery_from_row(row: Sequence[Any]) -> Delivery:
    return Delivery(
        id=row[0],
        subscription_id=row[1],
        event_id=row[2],
        event_type=row[3],
        status=DeliveryStatus(row[4]),
        attempts=int(row[5]),
        round_start=int(row[6]),
        next_attempt_at=_dt(row[7]),
        last_status_code=row[8],
        last_error=row[9],
        created_at=_dt_required(row[10]),
        updated_at=_dt_required(row[11]),
        body=str(row[12]).encode("utf-8"),
        claimed_until=_dt(row[13]),
    )
