"""Subscriptions, deliveries and attempts as the webhook store's rows, and back.

Each ``*_COLUMNS`` string lists a table's columns in the order its row tuples use.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from .matching import EventTypePattern, filters_to_json, parse_filters
from .models import (
    Attempt,
    AttemptOutcome,
    Delivery,
    DeliveryRetryPolicy,
    DeliveryStatus,
    Subscription,
)

__all__ = [
    "ATTEMPT_COLUMNS",
    "DELIVERY_COLUMNS",
    "D_COLUMNS",
    "SUBSCRIPTION_COLUMNS",
    "attempt_from_row",
    "attempt_row",
    "delivery_from_row",
    "from_ms",
    "from_ms_or_none",
    "secrets_text",
    "subscription_from_row",
    "subscription_row",
    "to_ms",
]

SUBSCRIPTION_COLUMNS = (
    "id, description, event_pattern, filters, url, method, headers, secrets, enabled,"
    " timeout_seconds, max_attempts, initial_backoff_seconds, max_backoff_seconds,"
    " created_at, updated_at"
)
DELIVERY_COLUMNS = (
    "id, subscription_id, event_id, event_type, status, attempts, round_start,"
    " next_attempt_at, last_status_code, last_error, created_at, updated_at, body,"
    " claimed_until"
)
#: :data:`DELIVERY_COLUMNS` of the table aliased ``d``.
D_COLUMNS = ", ".join("d." + c.strip() for c in DELIVERY_COLUMNS.split(","))
ATTEMPT_COLUMNS = "delivery_id, number, started_at, latency_ms, status_code, outcome, error"


def to_ms(value: datetime) -> int:
    """A time as the store keeps it: unix milliseconds."""
    return int(value.timestamp() * 1000)


def from_ms(value: int) -> datetime:
    """A time the store kept (unix milliseconds), in UTC."""
    return datetime.fromtimestamp(value / 1000, UTC)


def from_ms_or_none(value: int | None) -> datetime | None:
    """:func:`from_ms` of a time that may be missing."""
    return None if value is None else from_ms(value)


def secrets_text(secrets: Sequence[str]) -> str:
    """The ``secrets`` column's text."""
    return json.dumps(list(secrets))


def subscription_row(sub: Subscription) -> tuple[Any, ...]:
    """The values of :data:`SUBSCRIPTION_COLUMNS`."""
    return (
        sub.id,
        sub.description,
        sub.event_pattern.text,
        json.dumps(filters_to_json(sub.filters), sort_keys=True),
        sub.url,
        sub.method,
        json.dumps(dict(sub.headers), sort_keys=True),
        secrets_text(sub.secrets),
        int(sub.enabled),
        sub.timeout,
        sub.retry.max_attempts,
        sub.retry.initial_backoff,
        sub.retry.max_backoff,
        to_ms(sub.created_at),
        to_ms(sub.updated_at),
    )


def subscription_from_row(row: Sequence[Any]) -> Subscription:
    """A row of :data:`SUBSCRIPTION_COLUMNS`."""
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
        created_at=from_ms(row[13]),
        updated_at=from_ms(row[14]),
    )


def delivery_from_row(row: Sequence[Any]) -> Delivery:
    """A row of :data:`DELIVERY_COLUMNS`."""
    return Delivery(
        id=row[0],
        subscription_id=row[1],
        event_id=row[2],
        event_type=row[3],
        status=DeliveryStatus(row[4]),
        attempts=int(row[5]),
        round_start=int(row[6]),
        next_attempt_at=from_ms_or_none(row[7]),
        last_status_code=row[8],
        last_error=row[9],
        created_at=from_ms(row[10]),
        updated_at=from_ms(row[11]),
        body=str(row[12]).encode("utf-8"),
        claimed_until=from_ms_or_none(row[13]),
    )


def attempt_row(attempt: Attempt) -> tuple[Any, ...]:
    """The values of :data:`ATTEMPT_COLUMNS`."""
    return (
        attempt.delivery_id,
        attempt.number,
        to_ms(attempt.started_at),
        attempt.latency_ms,
        attempt.status_code,
        attempt.outcome.value,
        attempt.error,
    )


def attempt_from_row(row: Sequence[Any]) -> Attempt:
    """A row of :data:`ATTEMPT_COLUMNS`."""
    return Attempt(
        delivery_id=row[0],
        number=int(row[1]),
        started_at=from_ms(row[2]),
        latency_ms=None if row[3] is None else float(row[3]),
        status_code=row[4],
        outcome=AttemptOutcome(row[5]),
        error=row[6],
    )
