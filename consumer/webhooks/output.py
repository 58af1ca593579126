"""How the webhook commands print subscriptions, deliveries and attempts: JSON and text."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from flowbus.json_output import echo_json

from .matching import filters_to_json
from .models import Attempt, Delivery, DeliveryStatus, Subscription, utc_now

__all__ = [
    "added_lines",
    "attempt_dict",
    "delivery_dict",
    "delivery_lines",
    "delivery_list_line",
    "display_time",
    "print_json",
    "status_text",
    "subscription_dict",
    "subscription_list_line",
    "subscription_show_lines",
]


def display_time(value: datetime | None) -> str:
    """A time as the webhook commands show it: to the second, ``-`` when there is none."""
    return "-" if value is None else value.isoformat(timespec="seconds")


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON."""
    echo_json(value, indent=2)


def subscription_dict(sub: Subscription, *, show_secret: bool = False) -> dict[str, Any]:
    """A subscription as JSON; secrets only when asked for."""
    data: dict[str, Any] = {
        "id": sub.id,
        "description": sub.description,
        "event_pattern": sub.event_pattern.text,
        "filters": filters_to_json(sub.filters),
        "url": sub.url,
        "method": sub.method,
        "headers": dict(sub.headers),
        "enabled": sub.enabled,
        "timeout": sub.timeout,
        "retry": {
            "max_attempts": sub.retry.max_attempts,
            "initial_backoff": sub.retry.initial_backoff,
            "max_backoff": sub.retry.max_backoff,
        },
        "created_at": display_time(sub.created_at),
        "updated_at": display_time(sub.updated_at),
    }
    if show_secret:
        data["secrets"] = list(sub.secrets)
    else:
        data["secrets"] = f"<{len(sub.secrets)} hidden; --show-secret prints them>"
    return data


def delivery_dict(delivery: Delivery, now: datetime | None = None) -> dict[str, Any]:
    """A delivery as JSON (without its body).

    While an attempt runs, ``in_flight`` names it (number, start, lease end) and
    ``next_attempt_at`` is null: the lease end is not a scheduled attempt.
    """
    in_flight = delivery.in_flight(now or utc_now())
    return {
        "id": delivery.id,
        "subscription_id": delivery.subscription_id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "in_flight": {
            "attempt": delivery.attempts + 1,
            "since": display_time(delivery.updated_at),
            "lease_until": display_time(delivery.claimed_until),
        }
        if in_flight
        else None,
        "next_attempt_at": display_time(delivery.next_attempt_at)
        if delivery.status is DeliveryStatus.PENDING and not in_flight
        else None,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "created_at": display_time(delivery.created_at),
        "updated_at": display_time(delivery.updated_at),
    }


def attempt_dict(attempt: Attempt) -> dict[str, Any]:
    """One attempt log entry as JSON."""
    return {
        "number": attempt.number,
        "started_at": display_time(attempt.started_at),
        "outcome": attempt.outcome.value,
        "status_code": attempt.status_code,
        "latency_ms": None if attempt.latency_ms is None else round(attempt.latency_ms, 1),
        "error": attempt.error,
    }


def added_lines(subscriptions: Sequence[Subscription]) -> Iterator[str]:
    """What ``add`` prints: each new subscription, then the secret they share."""
    for sub in subscriptions:
        state = "enabled" if sub.enabled else "disabled"
        yield f"{sub.id}  {sub.event_pattern.text}  -> {sub.method} {sub.url} ({state})"
    yield f"secret: {subscriptions[0].secrets[0]}"
    yield "  (verify the webhook-signature header with it; `show --show-secret` repeats it)"


def subscription_list_line(sub: Subscription) -> str:
    """One subscription as ``list`` prints it."""
    state = "enabled " if sub.enabled else "disabled"
    filters = f" {json.dumps(filters_to_json(sub.filters))}" if sub.filters else ""
    return f"{sub.id}  {state}  {sub.event_pattern.text}{filters}  -> {sub.method} {sub.url}"


def subscription_show_lines(data: dict[str, Any]) -> Iterator[str]:
    """``show``'s text: the subscription's JSON fields one per line."""
    for key, value in data.items():
        shown = value if isinstance(value, str) else json.dumps(value)
        yield f"{key + ':':<15} {shown}"


def status_text(delivery: Delivery, now: datetime) -> str:
    """The status, or ``in flight`` while an attempt runs."""
    return "in flight" if delivery.in_flight(now) else delivery.status.value


def _schedule_text(delivery: Delivery, now: datetime) -> str:
    """When the next attempt comes, or since when the current one runs."""
    if delivery.in_flight(now):
        return (
            f"  attempt {delivery.attempts + 1} since {display_time(delivery.updated_at)} "
            f"(lease until {display_time(delivery.claimed_until)})"
        )
    if delivery.status is DeliveryStatus.PENDING:
        return f"  next {display_time(delivery.next_attempt_at)}"
    return ""


def delivery_list_line(d: Delivery, now: datetime) -> str:
    """One delivery as ``deliveries list`` prints it."""
    failed = d.last_error and d.status is not DeliveryStatus.DELIVERED
    error = f"  {d.last_error}" if failed else ""
    return (
        f"{d.id}  {status_text(d, now):<9}  attempts {d.attempts}  {d.subscription_id}  "
        f"{d.event_type} {d.event_id}{_schedule_text(d, now)}{error}"
    )


def delivery_lines(data: dict[str, Any], attempts: Sequence[Attempt]) -> Iterator[str]:
    """``deliveries show``'s text (without the body): the fields, then the attempt log."""
    for key, value in data.items():
        if key in ("attempt_log", "body"):
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in value.items())
        yield f"{key + ':':<18} {'-' if value is None else value}"
    for a in attempts:
        code = f" HTTP {a.status_code}" if a.status_code is not None else ""
        latency = f" {a.latency_ms:.0f} ms" if a.latency_ms is not None else ""
        error = f"  {a.error}" if a.error else ""
        yield f"  #{a.number} {display_time(a.started_at)} {a.outcome.value}{code}{latency}{error}"
