"""The consumer's checks of ``flowbus doctor`` (loaded by name: the core imports no side).

``webhook database``: opened read-only, never created. ``ssrf allowlist``: it parses.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flowbus.doctor import NETWORK_TIMEOUT_S, Check, Status
from flowbus.errors import ConfigurationError
from flowbus.settings import FlowbusSettings

from .webhooks.ssrf import SSRFPolicy
from .webhooks.store import default_database_url

__all__ = ["check_ssrf_allowlist", "check_webhook_database"]


def check_webhook_database(settings: FlowbusSettings, timeout: float) -> Check:
    from flowbus.database import dialect_of, redact_database_url, sqlite_path
    from flowbus.errors import WebhookStoreError

    url = default_database_url(settings)
    shown = redact_database_url(url)
    try:
        if dialect_of(url, WebhookStoreError) == "sqlite":
            path = sqlite_path(url, WebhookStoreError)
            if path != ":memory:" and not Path(path).exists():
                configured = settings.webhooks_database_url is not None
                return Check(
                    "webhook database",
                    Status.WARN if configured else Status.OK,
                    f"{shown} does not exist yet",
                    "`flowbus webhooks add` creates it" if configured else None,
                )
            with contextlib.closing(_sqlite_read_only(path)) as conn:
                found = _webhook_tables(conn.execute)
        else:
            found = _postgres_tables(url, timeout)
    except WebhookStoreError as exc:
        return Check("webhook database", Status.FAIL, str(exc), "fix FLOWBUS_WEBHOOKS_DATABASE_URL")
    except Exception as exc:  # the drivers' errors: sqlite3.Error, psycopg.Error
        return Check(
            "webhook database",
            Status.FAIL,
            f"{shown}: {type(exc).__name__}: {exc}".strip(),
            "check FLOWBUS_WEBHOOKS_DATABASE_URL and that the database runs",
        )
    if found is None:
        return Check(
            "webhook database",
            Status.WARN,
            f"{shown} holds no webhook tables",
            "`flowbus webhooks add` creates them; or point FLOWBUS_WEBHOOKS_DATABASE_URL "
            "at the webhook database",
        )
    version, subscriptions = found
    return Check(
        "webhook database",
        Status.OK,
        f"{shown}: schema version {version}, {subscriptions} subscription(s)",
    )


def _sqlite_read_only(path: str) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=NETWORK_TIMEOUT_S)


def _webhook_tables(execute: Callable[[str], Any]) -> tuple[int, int] | None:
    """(schema version, subscriptions) of a webhook database; None: no webhook tables."""
    try:
        version = execute("SELECT version FROM webhook_schema_version").fetchall()
    except Exception as exc:
        if "webhook_schema_version" in str(exc):  # no such table / relation does not exist
            return None
        raise
    subscriptions = execute("SELECT COUNT(*) FROM webhook_subscriptions").fetchall()
    return (version[0][0] if version else 0), subscriptions[0][0]


def _postgres_tables(url: str, timeout: float) -> tuple[int, int] | None:
    from flowbus.database import connect_postgres
    from flowbus.errors import WebhookStoreError

    conn = connect_postgres(url, WebhookStoreError, autocommit=False, timeout=timeout)
    try:
        conn.read_only = True
        return _webhook_tables(conn.execute)
    finally:
        conn.rollback()
        conn.close()


def check_ssrf_allowlist(settings: FlowbusSettings) -> Check:
    try:
        policy = SSRFPolicy.from_allowlist(
            settings.webhooks_ssrf_allowlist, settings.webhooks_allowed_ports
        )
    except ConfigurationError as exc:
        return Check(
            "ssrf allowlist",
            Status.FAIL,
            str(exc),
            "fix FLOWBUS_WEBHOOKS_SSRF_ALLOWLIST / FLOWBUS_WEBHOOKS_ALLOWED_PORTS",
        )
    ports = ", ".join(str(p) for p in sorted(policy.allowed_ports))
    return Check(
        "ssrf allowlist",
        Status.OK,
        f"{len(policy.allowed_networks)} network(s), {len(policy.allowed_hosts)} host "
        f"pattern(s) allowed; ports {ports}",
    )
