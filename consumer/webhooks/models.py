"""Webhook subscriptions, deliveries and attempts: the records the store keeps."""

from __future__ import annotations

import random
import re
import secrets as _secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import httpx

from flowbus.backoff import Backoff
from flowbus.errors import InvalidSubscriptionError

from .event import WebhookEvent
from .matching import EventTypePattern, PropertyFilter, matches, parse_filters
from .signing import generate_secret, validate_secret

__all__ = [
    "ALLOWED_METHODS",
    "RESERVED_HEADERS",
    "Attempt",
    "AttemptOutcome",
    "Delivery",
    "DeliveryRetryPolicy",
    "DeliveryStatus",
    "Subscription",
    "new_delivery_id",
    "new_subscription_id",
    "utc_now",
]

ALLOWED_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: Headers a subscription may not set: the transport, the content type and the signature
#: are flowbus's to write.
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "expect",
        "proxy-authorization",
        "proxy-connection",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)
MAX_TIMEOUT = 120.0
MAX_ATTEMPTS = 100
MAX_BACKOFF = 7 * 24 * 3600.0
#: Each retry of a delivery waits twice as long as the one before (up to ``max_backoff``).
BACKOFF_MULTIPLIER = 2.0

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HEADER_VALUE_BAD = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def new_subscription_id() -> str:
    """``sub_`` + 16 random hex digits."""
    return "sub_" + _secrets.token_hex(8)


def new_delivery_id() -> str:
    """``msg_`` + 24 random hex digits; sent as ``webhook-id`` on every attempt."""
    return "msg_" + _secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class DeliveryRetryPolicy:
    """How often and how far apart a delivery is attempted.

    After failed attempt ``n`` the next waits ``schedule.delay(n)``: the project's
    :class:`~flowbus.backoff.Backoff` from ``initial_backoff``, doubling, capped at
    ``max_backoff`` and scaled by a random factor in ``[1 - jitter, 1 + jitter]`` (never
    above ``max_backoff``), so that many failing deliveries do not retry in lockstep.
    """

    max_attempts: int = 10
    initial_backoff: float = 10.0
    max_backoff: float = 3600.0
    jitter: float = 0.2
    schedule: Backoff = field(init=False, repr=False, compare=False)
    """The :class:`~flowbus.backoff.Backoff` the fields above describe."""

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or not 1 <= self.max_attempts <= MAX_ATTEMPTS:
            raise InvalidSubscriptionError("max attempts", f"must be 1..{MAX_ATTEMPTS}")
        if not 0 < self.initial_backoff <= MAX_BACKOFF:
            raise InvalidSubscriptionError(
                "initial backoff", f"must be > 0 and <= {MAX_BACKOFF:g} seconds"
            )
        if not self.initial_backoff <= self.max_backoff <= MAX_BACKOFF:
            raise InvalidSubscriptionError(
                "max backoff", f"must be >= the initial backoff and <= {MAX_BACKOFF:g} seconds"
            )
        if not 0 <= self.jitter <= 1:
            raise InvalidSubscriptionError("jitter", "must be between 0 and 1")
        schedule = Backoff(
            initial=self.initial_backoff,
            maximum=self.max_backoff,
            multiplier=BACKOFF_MULTIPLIER,
            jitter=self.jitter,
        )
        object.__setattr__(self, "schedule", schedule)

    def backoff(self, failed_attempts: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after ``failed_attempts`` (>= 1) failures in a row."""
        return self.schedule.delay(failed_attempts, rng)


@dataclass(frozen=True, slots=True)
class Subscription:
    """A subscriber's URL for the events matching ``event_pattern`` and ``filters``.

    ``secrets``: the signing secrets, current first; more than one while rotating.
    Build new ones with :meth:`create`, which validates every field.
    """

    id: str
    event_pattern: EventTypePattern
    filters: tuple[PropertyFilter, ...]
    url: str
    method: str
    headers: Mapping[str, str]
    secrets: tuple[str, ...] = field(repr=False)
    enabled: bool
    timeout: float
    retry: DeliveryRetryPolicy
    description: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def create(
        cls,
        *,
        event_pattern: str,
        url: str,
        filters: Mapping[str, Any] | None = None,
        method: str = "POST",
        headers: Mapping[str, str] | None = None,
        secret: str | None = None,
        enabled: bool = True,
        timeout: float = 10.0,
        retry: DeliveryRetryPolicy | None = None,
        description: str = "",
        now: datetime | None = None,
    ) -> Subscription:
        """A new subscription with a fresh id (and a fresh secret unless one is given)."""
        created = now or utc_now()
        return cls(
            id=new_subscription_id(),
            event_pattern=EventTypePattern(event_pattern),
            filters=parse_filters(filters),
            url=validate_url_shape(url),
            method=validate_method(method),
            headers=validate_headers(headers or {}),
            secrets=(validate_secret(secret) if secret is not None else generate_secret(),),
            enabled=enabled,
            timeout=validate_timeout(timeout),
            retry=retry or DeliveryRetryPolicy(),
            description=description,
            created_at=created,
            updated_at=created,
        )

    def matches(self, event: WebhookEvent) -> bool:
        """Whether this subscription wants ``event`` (the enabled flag is not considered)."""
        return matches(self.event_pattern, self.filters, event)


class DeliveryStatus(StrEnum):
    """Where a delivery stands. ``failed`` and ``blocked`` can be re-driven."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    BLOCKED = "blocked"


class AttemptOutcome(StrEnum):
    """What one attempt ended with."""

    DELIVERED = "delivered"
    HTTP_ERROR = "http_error"
    TIMEOUT = "timeout"
    NETWORK_ERROR = "network_error"
    DNS_ERROR = "dns_error"
    BLOCKED = "blocked"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event to one subscription; ``id`` is the ``webhook-id`` of every attempt.

    ``attempts`` counts every attempt ever made; ``round_start`` is the count when the
    current round began (0, or the count at the last re-drive), so the retry budget is
    ``max_attempts - (attempts - round_start)``. While pending, ``next_attempt_at`` is when
    the next attempt is due (while an attempt runs: when it is considered abandoned).
    ``claimed_until`` is set while a worker runs an attempt: the end of its lease.
    """

    id: str
    subscription_id: str
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    round_start: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    body: bytes = field(repr=False)
    claimed_until: datetime | None = None

    def in_flight(self, now: datetime) -> bool:
        """Whether a worker is running an attempt (claimed, not recorded, lease not over)."""
        return (
            self.status is DeliveryStatus.PENDING
            and self.claimed_until is not None
            and self.claimed_until > now
        )

    @property
    def attempts_in_round(self) -> int:
        """Attempts since the delivery was created or last re-driven."""
        return self.attempts - self.round_start


@dataclass(frozen=True, slots=True)
class Attempt:
    """The log entry of one delivery attempt (no payload, no secrets, no URL path)."""

    delivery_id: str
    number: int
    started_at: datetime
    latency_ms: float | None
    status_code: int | None
    outcome: AttemptOutcome
    error: str | None


def validate_url_shape(url: str) -> str:
    """Check that ``url`` is an absolute http(s) URL without credentials; return it.

    Where it may point is the SSRF policy's decision at delivery time (and
    ``flowbus webhooks check-url``'s), not this function's.
    """
    if not isinstance(url, str) or not url or any(c.isspace() for c in url):
        raise InvalidSubscriptionError("url", "must be a non-empty URL without whitespace")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise InvalidSubscriptionError("url", f"not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise InvalidSubscriptionError("url", "the scheme must be http or https")
    if not parsed.host:
        raise InvalidSubscriptionError("url", "has no host")
    if parsed.userinfo:
        raise InvalidSubscriptionError("url", "must not contain credentials (user:password@)")
    return url


def validate_method(method: str) -> str:
    """Upper-case ``method`` if it is POST, PUT or PATCH."""
    upper = method.upper() if isinstance(method, str) else ""
    if upper not in ALLOWED_METHODS:
        raise InvalidSubscriptionError(
            "method", f"{method!r} is not one of {', '.join(sorted(ALLOWED_METHODS))}"
        )
    return upper


def validate_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Check extra header names and values; return them as a plain dict."""
    result: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise InvalidSubscriptionError("headers", f"{name!r} is not a valid header name")
        if name.lower() in RESERVED_HEADERS:
            raise InvalidSubscriptionError("headers", f"{name!r} is set by flowbus itself")
        if not isinstance(value, str) or _HEADER_VALUE_BAD.search(value):
            raise InvalidSubscriptionError(
                "headers", f"the value of {name!r} must be a string without control characters"
            )
        if name.lower() in {n.lower() for n in result}:
            raise InvalidSubscriptionError("headers", f"{name!r} is given twice")
        result[name] = value
    return result


def validate_timeout(timeout: float) -> float:
    """A per-attempt timeout in seconds: > 0 and <= 120."""
    if not isinstance(timeout, int | float) or not 0 < timeout <= MAX_TIMEOUT:
        raise InvalidSubscriptionError("timeout", f"must be > 0 and <= {MAX_TIMEOUT:g} seconds")
    return float(timeout)


def validate_secrets(secrets: Sequence[str] | Iterable[str]) -> tuple[str, ...]:
    """At least one well-formed secret, no duplicates."""
    values = tuple(secrets)
    if not values:
        raise InvalidSubscriptionError("secret", "at least one secret is needed")
    for value in values:
        validate_secret(value)
    if len(set(values)) != len(values):
        raise InvalidSubscriptionError("secret", "the same secret is given twice")
    return values
