"""Webhooks: deliver events to subscribers over HTTP - signed, retried, logged, SSRF-safe.

A :class:`WebhookForwarder` is a receiver on the signals: for each event the consumer
worker re-sends, it builds a :class:`WebhookEvent` and calls :meth:`DeliveryEngine.submit`
(``flowbus webhooks serve`` wires the three); see ``docs/webhooks.md``.
"""

from .delivery import DeliveryEngine, EngineLimits
from .event import CLOUDEVENTS_JSON, WebhookEvent
from .forwarder import WebhookForwarder
from .http import WebhookHTTPClient
from .matching import EventTypePattern, PropertyFilter, parse_filters
from .models import (
    Attempt,
    AttemptOutcome,
    Delivery,
    DeliveryStatus,
    RetryPolicy,
    Subscription,
)
from .signing import generate_secret, signature_headers, verify
from .ssrf import CheckedURL, SSRFPolicy, check_url
from .store import WebhookStore, default_database_url

__all__ = [
    "CLOUDEVENTS_JSON",
    "Attempt",
    "AttemptOutcome",
    "CheckedURL",
    "Delivery",
    "DeliveryEngine",
    "DeliveryStatus",
    "EngineLimits",
    "EventTypePattern",
    "PropertyFilter",
    "RetryPolicy",
    "SSRFPolicy",
    "Subscription",
    "WebhookEvent",
    "WebhookForwarder",
    "WebhookHTTPClient",
    "WebhookStore",
    "check_url",
    "default_database_url",
    "generate_secret",
    "parse_filters",
    "signature_headers",
    "verify",
]
