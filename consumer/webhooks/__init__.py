"""Webhooks: deliver events to subscribers over HTTP - signed, retried, logged, SSRF-safe.

A :class:`WebhookForwarder` is a receiver on the signals: for each event the consumer
worker re-sends, it builds a :class:`WebhookEvent` and calls :meth:`DeliveryEngine.submit`
(``flowbus webhooks serve`` wires the three); see ``docs/webhooks.md``.
"""

from typing import TYPE_CHECKING

from flowbus.lazy_exports import lazy_exports

from .delivery import DeliveryEngine, EngineLimits
from .event import CLOUDEVENTS_JSON, WebhookEvent
from .forwarder import WebhookForwarder
from .http import HTTPResult, WebhookHTTPClient
from .matching import EventTypePattern, PropertyFilter, parse_filters
from .models import (
    Attempt,
    AttemptOutcome,
    Delivery,
    DeliveryRetryPolicy,
    DeliveryStatus,
    Subscription,
)
from .signing import generate_secret, signature_headers, verify
from .ssrf import CheckedURL, SSRFPolicy, check_url
from .store import WebhookStore, default_database_url

if TYPE_CHECKING:
    from .metrics import DeliveryMetrics

# Imported on first use: it needs the 'metrics' extra.
__getattr__, __dir__ = lazy_exports(__name__, {"DeliveryMetrics": ".metrics"})

__all__ = [
    "CLOUDEVENTS_JSON",
    "Attempt",
    "AttemptOutcome",
    "CheckedURL",
    "Delivery",
    "DeliveryEngine",
    "DeliveryMetrics",
    "DeliveryRetryPolicy",
    "DeliveryStatus",
    "EngineLimits",
    "EventTypePattern",
    "HTTPResult",
    "PropertyFilter",
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
