"""The outbox table and every statement on it, for SQLite and PostgreSQL.

Two sides use it. The *writer* (:func:`insert_event`) runs one INSERT on the caller's own
connection, inside the caller's transaction, and never commits. The *relay*
(:class:`RelayStore`) owns a connection of its own and runs short transactions: claim
bucket leases, read pending rows in ``seq`` order, mark them sent, clean up.

Times are unix milliseconds from the database's clock, so relays on several hosts agree
on lease expiry. The DDL is versioned (:data:`MIGRATIONS`), applied by :func:`migrate`
under a lock, and documented in the README ("Transactional outbox").
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import sqlite3
import zlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from flowbus.database import Dialect, connect, redact_database_url
from flowbus.errors import OutboxError, OutboxStoreError

__all__ = [
    "BUCKETS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "OutboxRow",
    "OutboxStatus",
    "PendingRow",
    "RejectedRow",
    "Rejection",
    "RelayStore",
    "bucket_of",
    "dialect_of_connection",
    "insert_event",
    "migrate",
    "migrate_in_transaction",
]

log = logging.getLogger(__name__)

#: Keys are hashed into this many buckets; a relay publishes only the buckets it leases.
BUCKETS = 64
#: The PostgreSQL channel the insert trigger notifies (once per transaction).
CHANNEL = "flowbus_outbox"
_PG_MIGRATION_LOCK = 0x666C6F77  # "flow", as the webhook store: serialises schema changes
_PG_KEY_LOCK_SPACE = 0x666C6F78  # "flox": advisory locks per key hash, see insert_event

_NOW = {
    "sqlite": "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
    "postgresql": "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
}

_V1_COMMON = (
    "CREATE INDEX flowbus_outbox_pending ON flowbus_outbox (bucket, seq) WHERE sent_at IS NULL",
    "CREATE INDEX flowbus_outbox_sent ON flowbus_outbox (sent_at) WHERE sent_at IS NOT NULL",
    """CREATE TABLE flowbus_outbox_leases (
        bucket INTEGER PRIMARY KEY,
        owner TEXT,
        expires_at BIGINT NOT NULL
    )""",
    """CREATE TABLE flowbus_outbox_relays (
        name TEXT PRIMARY KEY,
        heartbeat_at BIGINT NOT NULL
    )""",
    "INSERT INTO flowbus_outbox_leases (bucket, owner, expires_at) VALUES "
    + ", ".join(f"({bucket}, NULL, 0)" for bucket in range(BUCKETS)),
)
_V1_TABLE = """CREATE TABLE flowbus_outbox (
    seq {seq},
    id TEXT NOT NULL UNIQUE,
    aggregatetype TEXT NOT NULL,
    aggregateid TEXT,
    type TEXT NOT NULL,
    payload {blob} NOT NULL,
    headers TEXT NOT NULL,
    schema_fingerprint TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    created_at BIGINT NOT NULL,
    sent_at BIGINT,
    attempts INTEGER NOT NULL DEFAULT 0
)"""

#: Version 2: rows the broker rejects for good (see relay.py) are kept, set aside with the
#: reason, and no longer pending.
_V2 = (
    "ALTER TABLE flowbus_outbox ADD COLUMN rejected_at BIGINT",
    "ALTER TABLE flowbus_outbox ADD COLUMN rejected_code TEXT",
    "ALTER TABLE flowbus_outbox ADD COLUMN rejected_reason TEXT",
    "DROP INDEX flowbus_outbox_pending",
    "CREATE INDEX flowbus_outbox_pending ON flowbus_outbox (bucket, seq) "
    "WHERE sent_at IS NULL AND rejected_at IS NULL",
    "CREATE INDEX flowbus_outbox_rejected ON flowbus_outbox (seq) WHERE rejected_at IS NOT NULL",
)

#: version -> statements per dialect. Append; never edit a released version.
MIGRATIONS: dict[int, dict[Dialect, tuple[str, ...]]] = {
    1: {
        "sqlite": (
            _V1_TABLE.format(seq="INTEGER PRIMARY KEY AUTOINCREMENT", blob="BLOB"),
            *_V1_COMMON,
        ),
        "postgresql": (
            _V1_TABLE.format(seq="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", blob="BYTEA"),
            *_V1_COMMON,
            f"""CREATE FUNCTION flowbus_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS
                $$ BEGIN PERFORM pg_notify('{CHANNEL}', ''); RETURN NULL; END $$""",
            """CREATE TRIGGER flowbus_outbox_notify AFTER INSERT ON flowbus_outbox
                FOR EACH STATEMENT EXECUTE FUNCTION flowbus_outbox_notify()""",
        ),
    },
    2: {"sqlite": _V2, "postgresql": _V2},
}
SCHEMA_VERSION = max(MIGRATIONS)


def bucket_of(key: str | None, event_id: str) -> int:
    """The bucket of a key (CRC-32, stable across processes); keyless events by their id."""
    return zlib.crc32((key if key is not None else event_id).encode()) % BUCKETS


def _signed32(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value


def dialect_of_connection(conn: Any) -> Dialect:
    """``sqlite`` for a ``sqlite3`` connection, ``postgresql`` for a psycopg 3 one."""
    if isinstance(conn, sqlite3.Connection):
        return "sqlite"
    if type(conn).__module__.split(".")[0] == "psycopg":
        return "postgresql"
    raise OutboxError(
        f"unsupported connection type {type(conn).__name__}: the outbox takes a sqlite3 or "
        "psycopg 3 connection, a SQLAlchemy Session or Connection on either"
    )


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxRow:
    """One event as the writer stores it."""

    id: str
    topic: str
    key: str | None
    event_type: str
    payload: bytes
    headers: str  # JSON list of [name, value]
    schema_fingerprint: str  # hex


_COLUMNS = "id, aggregatetype, aggregateid, type, payload, headers, schema_fingerprint, bucket"


def _insert_sql(dialect: Dialect, keyed: bool) -> str:
    mark = "?" if dialect == "sqlite" else "%s"
    values = ", ".join([mark] * 8 + [_NOW[dialect]])
    head = f"INSERT INTO flowbus_outbox ({_COLUMNS}, created_at) "
    if dialect == "postgresql" and keyed:
        # Held to commit: a second transaction writing this key waits here, so one key's
        # seq order is its commit order (see relay.py for why that matters).
        lock = f"pg_advisory_xact_lock({_PG_KEY_LOCK_SPACE}, CAST(%s AS INTEGER))"
        return f"{head}SELECT {values} FROM (SELECT {lock}) AS key_lock"
    return f"{head}VALUES ({values})"


_INSERT = {(d, k): _insert_sql(d, k) for d in ("sqlite", "postgresql") for k in (True, False)}


def insert_event(conn: Any, dialect: Dialect, row: OutboxRow) -> None:
    """INSERT ``row`` on ``conn`` in its current transaction (never commits)."""
    params: list[Any] = [
        row.id,
        row.topic,
        row.key,
        row.event_type,
        row.payload,
        row.headers,
        row.schema_fingerprint,
        bucket_of(row.key, row.id),
    ]
    keyed = row.key is not None
    if dialect == "postgresql" and keyed:
        params.append(_signed32(zlib.crc32(row.key.encode())))  # type: ignore[union-attr]
    conn.execute(_INSERT[(dialect, keyed)], params)


@dataclasses.dataclass(frozen=True, slots=True)
class PendingRow:
    """A row the relay is about to publish."""

    seq: int
    id: str
    topic: str
    key: str | None
    event_type: str
    payload: bytes
    headers: str
    schema_fingerprint: str


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxStatus:
    """The backlog: rows not yet sent, and how old the oldest one is; rows the broker
    rejected for good (kept, not pending)."""

    pending: int
    oldest_age_seconds: float | None
    sent_kept: int
    rejected: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Rejection:
    """Why the broker refused a row for good: its error code name and message."""

    code: str
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class RejectedRow:
    """A row set aside as rejected (no payload: what an operator lists)."""

    seq: int
    id: str
    topic: str
    key: str | None
    event_type: str
    payload_bytes: int
    created_at: int
    rejected_at: int
    code: str
    reason: str
    attempts: int


class _Tx:
    def __init__(self, conn: Any, dialect: Dialect) -> None:
        self._conn = conn
        self.dialect = dialect
        self.now = _NOW[dialect]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self.dialect == "postgresql":
            sql = sql.replace("?", "%s")
        return self._conn.execute(sql, tuple(params))

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(self.execute(sql, params).fetchall())


def _marks(count: int) -> str:
    return ", ".join("?" * count)


class RelayStore:
    """The relay's own connection to the outbox database; each method one transaction."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.display_url = redact_database_url(url)
        self.dialect, self._conn = connect(url, OutboxStoreError)

    @property
    def connection(self) -> Any:
        return self._conn

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[_Tx]:
        """One transaction (``BEGIN IMMEDIATE`` on SQLite); driver errors are typed."""
        errors: tuple[type[Exception], ...] = (sqlite3.Error,)
        if self.dialect == "postgresql":
            import psycopg

            errors = (psycopg.Error,)
        try:
            if self.dialect == "sqlite":
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield _Tx(self._conn, self.dialect)
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            else:
                with self._conn.transaction():
                    yield _Tx(self._conn, self.dialect)
        except errors as exc:
            raise OutboxStoreError(f"outbox database {self.display_url}: {exc}") from exc

    def migrate(self) -> int:
        """Create or upgrade the tables; returns the schema version now in place."""
        return migrate(self)

    # -- leases ------------------------------------------------------------------------

    def maintain_leases(self, owner: str, ttl_ms: int) -> list[int]:
        """Heartbeat, renew, then release or take buckets towards a fair share; returns the
        buckets ``owner`` holds for ``ttl_ms`` from now (by the database's clock)."""
        with self.transaction() as tx:
            now = tx.now
            tx.execute(
                f"INSERT INTO flowbus_outbox_relays (name, heartbeat_at) VALUES (?, {now}) "
                "ON CONFLICT (name) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                (owner,),
            )
            [(live,)] = tx.rows(
                f"SELECT count(*) FROM flowbus_outbox_relays WHERE heartbeat_at > {now} - ?",
                (ttl_ms,),
            )
            share = math.ceil(BUCKETS / max(int(live), 1))
            held = sorted(
                bucket
                for (bucket,) in tx.rows(
                    f"UPDATE flowbus_outbox_leases SET expires_at = {now} + ? "
                    f"WHERE owner = ? AND expires_at > {now} RETURNING bucket",
                    (ttl_ms, owner),
                )
            )
            if len(held) > share:
                extra = held[share:]
                tx.execute(
                    "UPDATE flowbus_outbox_leases SET owner = NULL, expires_at = 0 "
                    f"WHERE owner = ? AND bucket IN ({_marks(len(extra))})",
                    (owner, *extra),
                )
                held = held[:share]
            elif len(held) < share:
                skip = " FOR UPDATE SKIP LOCKED" if self.dialect == "postgresql" else ""
                taken = tx.rows(
                    f"UPDATE flowbus_outbox_leases SET owner = ?, expires_at = {now} + ? "
                    "WHERE bucket IN (SELECT bucket FROM flowbus_outbox_leases "
                    f"WHERE expires_at <= {now} ORDER BY bucket LIMIT ?{skip}) RETURNING bucket",
                    (owner, ttl_ms, share - len(held)),
                )
                held = sorted(held + [bucket for (bucket,) in taken])
            return held

    def release(self, owner: str) -> None:
        """Give up every lease and the heartbeat (a clean stop: others take over at once)."""
        with self.transaction() as tx:
            tx.execute(
                "UPDATE flowbus_outbox_leases SET owner = NULL, expires_at = 0 WHERE owner = ?",
                (owner,),
            )
            tx.execute("DELETE FROM flowbus_outbox_relays WHERE name = ?", (owner,))

    # -- rows --------------------------------------------------------------------------

    def pending(self, buckets: Sequence[int], limit: int) -> list[PendingRow]:
        """The oldest unsent rows of ``buckets``, in ``seq`` order."""
        if not buckets:
            return []
        with self.transaction() as tx:
            rows = tx.rows(
                "SELECT seq, id, aggregatetype, aggregateid, type, payload, headers, "
                "schema_fingerprint FROM flowbus_outbox WHERE sent_at IS NULL "
                f"AND rejected_at IS NULL AND bucket IN ({_marks(len(buckets))}) "
                "ORDER BY seq LIMIT ?",
                (*buckets, limit),
            )
        return [PendingRow(r[0], r[1], r[2], r[3], r[4], bytes(r[5]), r[6], r[7]) for r in rows]

    def mark_sent(self, seqs: Sequence[int]) -> None:
        """Mark rows the broker acknowledged."""
        self._update(f"sent_at = {_NOW[self.dialect]}", seqs)

    def mark_failed(self, seqs: Sequence[int]) -> None:
        """Count a failed attempt on rows that stay pending."""
        self._update("attempts = attempts + 1", seqs)

    def mark_rejected(self, rejected: Mapping[int, Rejection]) -> None:
        """Set rows aside that the broker refused for good: kept with the reason, no longer
        pending, never deleted by the clean-up."""
        if not rejected:
            return
        with self.transaction() as tx:
            for seq, why in rejected.items():
                tx.execute(
                    f"UPDATE flowbus_outbox SET rejected_at = {tx.now}, rejected_code = ?, "
                    "rejected_reason = ?, attempts = attempts + 1 WHERE seq = ?",
                    (why.code, why.message, seq),
                )

    def rejected(self, limit: int | None = None) -> list[RejectedRow]:
        """The rejected rows, oldest first (at most ``limit``)."""
        with self.transaction() as tx:
            rows = tx.rows(
                "SELECT seq, id, aggregatetype, aggregateid, type, length(payload), created_at, "
                "rejected_at, rejected_code, rejected_reason, attempts FROM flowbus_outbox "
                "WHERE rejected_at IS NOT NULL ORDER BY seq"
                + ("" if limit is None else " LIMIT ?"),
                () if limit is None else (limit,),
            )
        return [RejectedRow(*row) for row in rows]

    def requeue(self, ids: Sequence[str] | None) -> list[str]:
        """Make rejected rows pending again, keeping their place (``seq``): the events
        ``ids``, or every rejected row when ``None``. Returns the ids re-queued (an id that
        is not a rejected row is not among them)."""
        clear = "rejected_at = NULL, rejected_code = NULL, rejected_reason = NULL"
        with self.transaction() as tx:
            if ids is None:
                found = tx.rows(
                    f"UPDATE flowbus_outbox SET {clear} WHERE rejected_at IS NOT NULL RETURNING id"
                )
            else:
                found = []
                for start in range(0, len(ids), 500):
                    chunk = list(ids[start : start + 500])
                    found += tx.rows(
                        f"UPDATE flowbus_outbox SET {clear} WHERE rejected_at IS NOT NULL "
                        f"AND id IN ({_marks(len(chunk))}) RETURNING id",
                        chunk,
                    )
            if found and self.dialect == "postgresql":
                tx.execute(f"SELECT pg_notify('{CHANNEL}', '')")  # wake the relays now
        return sorted(str(event_id) for (event_id,) in found)

    def _update(self, assignment: str, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        with self.transaction() as tx:
            for start in range(0, len(seqs), 500):
                chunk = seqs[start : start + 500]
                tx.execute(
                    f"UPDATE flowbus_outbox SET {assignment} WHERE seq IN ({_marks(len(chunk))})",
                    chunk,
                )

    def clean_up(self, retention_ms: int) -> int:
        """Delete rows sent more than ``retention_ms`` ago; returns how many."""
        with self.transaction() as tx:
            cursor = tx.execute(
                f"DELETE FROM flowbus_outbox WHERE sent_at IS NOT NULL AND sent_at < {tx.now} - ?",
                (retention_ms,),
            )
            return int(cursor.rowcount)

    def status(self) -> OutboxStatus:
        """Backlog and oldest age (by the database's clock), sent rows still kept, and
        rejected rows."""
        with self.transaction() as tx:
            [(pending, oldest, now)] = tx.rows(
                f"SELECT count(*), min(created_at), {tx.now} FROM flowbus_outbox "
                "WHERE sent_at IS NULL AND rejected_at IS NULL"
            )
            [(kept,)] = tx.rows("SELECT count(*) FROM flowbus_outbox WHERE sent_at IS NOT NULL")
            [(rejected,)] = tx.rows(
                "SELECT count(*) FROM flowbus_outbox WHERE rejected_at IS NOT NULL"
            )
        age = None if oldest is None else max(0.0, (int(now) - int(oldest)) / 1000)
        return OutboxStatus(int(pending), age, int(kept), int(rejected))


def migrate(store: RelayStore) -> int:
    """Apply the migrations ``store``'s database lacks, under a lock; returns the version."""
    with store.transaction() as tx:
        return _migrate(tx, store.display_url)


def migrate_in_transaction(conn: Any, where: str) -> int:
    """:func:`migrate` on ``conn`` (sqlite3 or psycopg 3), inside its current transaction,
    which the caller commits: for frameworks that run their own migrations (the Django
    app's). ``where`` names the database in messages."""
    return _migrate(_Tx(conn, dialect_of_connection(conn)), where)


def _migrate(tx: _Tx, where: str) -> int:
    if tx.dialect == "postgresql":
        tx.execute("SELECT pg_advisory_xact_lock(?)", (_PG_MIGRATION_LOCK,))
    tx.execute("CREATE TABLE IF NOT EXISTS flowbus_outbox_schema_version (version INTEGER)")
    found = tx.rows("SELECT max(version) FROM flowbus_outbox_schema_version")
    current = int(found[0][0] or 0)
    if current > SCHEMA_VERSION:
        raise OutboxStoreError(
            f"{where} has outbox schema version {current}; this flowbus "
            f"understands up to {SCHEMA_VERSION}: upgrade flowbus"
        )
    for version in sorted(v for v in MIGRATIONS if v > current):
        for statement in MIGRATIONS[version][tx.dialect]:
            tx.execute(statement)
        tx.execute("INSERT INTO flowbus_outbox_schema_version (version) VALUES (?)", (version,))
        log.info("outbox %s migrated to version %d", where, version)
    return max(current, SCHEMA_VERSION)
