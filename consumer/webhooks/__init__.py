"""Webhooks: deliver events to subscribers over HTTP - signed, retried, logged, SSRF-safe.

A :class:`WebhookForwarder` is a receiver on the signals: for each event the consumer
worker re-sends, it builds a :class:`WebhookEvent` and calls :meth:`DeliveryEngine.submit`
(``flowbus webhooks serve`` wires the three); see ``docs/webhooks.md``.
"""

from typing import TYPE_CHECKING

from flowbus.lazy_exports import lazy_exports_by_module

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

if TYPE_CHECKING:  # type checkers do not run __getattr__
    from .metrics import DeliveryMetrics as DeliveryMetrics

# Imported on first use: it needs the 'metrics' extra.
_lazy, __getattr__, __dir__ = lazy_exports_by_module(__name__, {".metrics": ["DeliveryMetrics"]})

__all__ = [
    *_lazy,
    "CLOUDEVENTS_JSON",
    "Attempt",
    "AttemptOutcome",
    "CheckedURL",
    "Delivery",
    "DeliveryEngine",
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
