"""Database URLs and connections shared by flowbus's stores (webhooks, the outbox).

``sqlite:///<path>`` (SQLAlchemy's spelling: ``sqlite:////abs/path``, ``sqlite:///:memory:``)
or ``postgresql://...`` / ``postgres://...`` (psycopg 3, the ``postgres`` extra, imported
only when used). Each store passes its own error type, so a failure names the store.
Passwords never reach messages or logs: :func:`redact_database_url`.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from flowbus.errors import FlowbusError
from flowbus.extras import requires_extra

__all__ = [
    "Dialect",
    "connect",
    "connect_postgres",
    "connect_sqlite",
    "dialect_of",
    "redact_database_url",
    "sqlite_path",
]

Dialect = Literal["sqlite", "postgresql"]


def redact_database_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable database URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{netloc[2]}").geturl()


def dialect_of(url: str, error: type[FlowbusError]) -> Dialect:
    """``"sqlite"`` or ``"postgresql"``; any other scheme raises ``error``."""
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite":
        return "sqlite"
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    raise error(
        f"unsupported database URL {redact_database_url(url)!r}: "
        "use sqlite:///<path> or postgresql://..."
    )


def sqlite_path(url: str, error: type[FlowbusError]) -> str:
    """The file path of a ``sqlite:///<path>`` URL."""
    rest = url[len("sqlite:") :]
    if not rest.startswith("///"):
        raise error(f"SQLite URL {url!r} must look like sqlite:///<path>")
    path = unquote(rest[3:])
    if not path:
        raise error(f"SQLite URL {url!r} has no file path")
    return path


def connect_sqlite(
    path: str, error: type[FlowbusError], *, private: bool = False
) -> sqlite3.Connection:
    """An autocommit connection (transactions are explicit), WAL, 30 s busy timeout.

    ``private`` creates the file with mode 0600 and its directory 0700 (it holds secrets).
    """
    if path != ":memory:":
        file = Path(path)
        file.parent.mkdir(parents=True, exist_ok=True, mode=0o700 if private else 0o777)
        if private and not file.exists():
            os.close(os.open(file, os.O_CREAT | os.O_WRONLY, 0o600))
    try:
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 30000")
        if path != ":memory:":
            conn.execute("PRAGMA journal_mode = WAL")
    except sqlite3.Error as exc:
        raise error(f"cannot open sqlite:///{path}: {exc}") from exc
    return conn


def connect_postgres(
    url: str, error: type[FlowbusError], *, autocommit: bool = True, timeout: float = 10
) -> Any:
    """A psycopg 3 connection; a refused connection raises ``error`` (``timeout``: seconds
    to connect), a missing ``postgres`` extra :class:`~flowbus.errors.MissingExtraError`."""
    with requires_extra("postgres", "PostgreSQL databases"):
        import psycopg
    url = "postgresql" + url[url.index(":") :]
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=max(1, round(timeout)))
    except psycopg.Error as exc:
        raise error(f"cannot connect to {redact_database_url(url)}: {exc}") from None


def connect(url: str, error: type[FlowbusError]) -> tuple[Dialect, Any]:
    """The dialect of ``url`` and an autocommit connection to it."""
    dialect = dialect_of(url, error)
    if dialect == "sqlite":
        return dialect, connect_sqlite(sqlite_path(url, error), error)
    return dialect, connect_postgres(url, error)
