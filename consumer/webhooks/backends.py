"""What differs between the webhook store's two databases, behind one interface.

A :class:`Backend` (:class:`SQLiteBackend`, :class:`PostgresBackend`) holds the store's
connection: it opens it (never creating a database when asked not to), runs one
transaction at a time, turns its driver's errors into :class:`WebhookStoreError` and
serialises schema creation. The store's SQL itself is the same on both databases, written
with ``?`` placeholders (:class:`Transaction` swaps in the driver's).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from flowbus.database import Dialect, connect_postgres, connect_sqlite, dialect_of, sqlite_path
from flowbus.errors import WebhookError, WebhookStoreError

from .schema import VERSION_TABLE

__all__ = ["Backend", "PostgresBackend", "SQLiteBackend", "Transaction", "backend_for"]

logger = logging.getLogger(__name__)

_PG_SCHEMA_LOCK = 0x666C6F77  # "flow": serialises concurrent schema creation


class _Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchall(self) -> list[Any]: ...


class Transaction:
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


class Backend(Protocol):
    """One kind of database under the webhook store, and the store's connection to it."""

    dialect: Dialect

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (or :meth:`open` never succeeded)."""

    def open(self, *, create: bool) -> None:
        """Connect; without ``create``, a missing database or one without the tables is a
        :class:`WebhookStoreError` and nothing is created."""

    def transaction(self, *, write: bool) -> contextlib.AbstractContextManager[Transaction]:
        """One transaction; any driver error in it becomes a :class:`WebhookStoreError`."""

    def lock_schema(self, tx: Transaction) -> None:
        """Keep concurrent openers from creating the tables at the same time."""

    def close(self) -> None:
        """Close the connection."""


def no_tables_error(display_url: str) -> WebhookStoreError:
    """The error for a database that exists but holds no webhook tables."""
    return WebhookStoreError(
        f"{display_url} holds no webhook tables; nothing was created "
        "(`flowbus webhooks add` creates them)"
    )


@contextlib.contextmanager
def _store_errors(errors: tuple[type[Exception], ...], display_url: str) -> Iterator[None]:
    try:
        yield
    except WebhookError:
        raise
    except errors as exc:
        raise WebhookStoreError(f"webhook store {display_url}: {exc}") from exc


class SQLiteBackend:
    """A SQLite file (mode 0600, directory 0700: it holds signing secrets), or ``:memory:``."""

    dialect: Dialect = "sqlite"

    def __init__(self, url: str, display_url: str) -> None:
        self.path = sqlite_path(url, WebhookStoreError)
        self.display_url = display_url
        self._conn: sqlite3.Connection | None = None

    @property
    def closed(self) -> bool:
        return self._conn is None

    def open(self, *, create: bool) -> None:
        if not create and self.path != ":memory:":
            self._require_tables()
        self._conn = connect_sqlite(self.path, WebhookStoreError, private=True)

    def _require_tables(self) -> None:
        """Refuse a missing file, or one without the tables, leaving it untouched."""
        if not Path(self.path).is_file():
            raise WebhookStoreError(
                f"no webhook database at {self.path}; nothing was created (`flowbus "
                "webhooks add` creates it; --database or FLOWBUS_WEBHOOKS_DATABASE_URL "
                "chooses another)"
            )
        try:
            with contextlib.closing(
                sqlite3.connect(f"{Path(self.path).resolve().as_uri()}?mode=ro", uri=True)
            ) as conn:
                found = conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                    (VERSION_TABLE,),
                ).fetchall()
        except sqlite3.Error as exc:
            raise WebhookStoreError(f"cannot open {self.display_url}: {exc}") from exc
        if not found:
            raise no_tables_error(self.display_url)

    @contextlib.contextmanager
    def transaction(self, *, write: bool) -> Iterator[Transaction]:
        conn = self._conn
        assert conn is not None, "the store checks that it is open"
        with _store_errors((sqlite3.Error,), self.display_url):
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield Transaction(conn, "?")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def lock_schema(self, tx: Transaction) -> None:
        """Nothing to take: the write transaction holds SQLite's only (database) lock."""

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class PostgresBackend:
    """A PostgreSQL database (psycopg 3, the ``postgres`` extra); reconnects when broken."""

    dialect: Dialect = "postgresql"

    def __init__(self, url: str, display_url: str) -> None:
        self.url = url
        self.display_url = display_url
        self._conn: Any = None
        self._errors: tuple[type[Exception], ...] = ()

    @property
    def closed(self) -> bool:
        return self._conn is None

    def open(self, *, create: bool) -> None:
        self._connect()
        if create:
            return
        try:
            with self.transaction(write=False) as tx:
                found = tx.rows(
                    "SELECT 1 FROM information_schema.tables WHERE table_name = ?",
                    (VERSION_TABLE,),
                )
            if not found:
                raise no_tables_error(self.display_url)
        except BaseException:
            self.close()
            raise

    def _connect(self) -> None:
        self._conn = connect_postgres(self.url, WebhookStoreError)
        import psycopg  # imported by the connect above (or it raised: the extra is missing)

        self._errors = (psycopg.Error,)

    @contextlib.contextmanager
    def transaction(self, *, write: bool) -> Iterator[Transaction]:
        with _store_errors(self._errors, self.display_url):
            if self._conn.closed or self._conn.broken:
                logger.warning("reconnecting to %s", self.display_url)
                self._connect()
            with self._conn.transaction():
                yield Transaction(self._conn, "%s")

    def lock_schema(self, tx: Transaction) -> None:
        tx.execute("SELECT pg_advisory_xact_lock(?)", (_PG_SCHEMA_LOCK,))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def backend_for(url: str, display_url: str) -> Backend:
    """The backend of a ``sqlite:///...`` or ``postgresql://...`` URL (not yet open)."""
    if dialect_of(url, WebhookStoreError) == "sqlite":
        return SQLiteBackend(url, display_url)
    return PostgresBackend(url, display_url)
