"""The webhook store's tables (the same DDL on SQLite and PostgreSQL) and their migrations.

Times are unix milliseconds, JSON fields are text.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "STATEMENTS", "VERSION_TABLE"]

SCHEMA_VERSION = 2

#: The table holding the schema version: its presence says the webhook tables exist.
VERSION_TABLE = "webhook_schema_version"

#: Creates every table and index (each statement is a no-op where it already exists).
STATEMENTS = (
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
    f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version INTEGER NOT NULL)",
)

#: Schema version n-1 -> n.
MIGRATIONS = {2: ("ALTER TABLE webhook_deliveries ADD COLUMN claimed_until BIGINT",)}
