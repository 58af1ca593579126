"""The webhook delivery engine: events in, signed HTTP requests out, every attempt logged.

The :class:`~.forwarder.WebhookForwarder` calls :meth:`DeliveryEngine.submit` for each
event the consumer worker re-sends to it. ``submit`` matches the event against the enabled
subscriptions and records one pending delivery per match in the store; once it returns,
the deliveries are durable and the worker may commit the Kafka offset. Everything after
that runs in the engine's own threads:

* a dispatcher claims due deliveries from the store (so several workers can share one
  database) and hands them to a bounded thread pool - at most ``max_concurrency`` attempts
  at once, and at most ``max_per_subscription`` for any one subscription, so a slow or dead
  subscriber occupies a few slots and never holds up the others;
* an attempt checks the URL against the SSRF policy, signs the CloudEvent body (Standard
  Webhooks), posts it over the pinned, pooled client and records the outcome;
* failures retry with exponential backoff and jitter (``Retry-After`` is a minimum wait,
  counted up to the subscription's maximum backoff) until the retry budget is spent; the
  schedule lives in the store, so a restarted engine picks up pending retries where the
  last one stopped.

Retried: 5xx, 408, 425, 429, timeouts, connection errors and DNS failures. Not retried:
other statuses outside 2xx (redirects are never followed), and SSRF-blocked targets
(status ``blocked``). ``failed`` and ``blocked`` deliveries can be re-driven.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import httpx

from flowbus.backoff import Backoff
from flowbus.errors import (
    BlockedURLError,
    DeliveryEngineClosedError,
    SubscriptionNotFoundError,
    URLResolutionError,
    WebhookError,
)

from .event import CLOUDEVENTS_JSON, WebhookEvent
from .http import WebhookHTTPClient
from .models import (
    Attempt,
    AttemptOutcome,
    Delivery,
    DeliveryStatus,
    Subscription,
    utc_now,
)
from .signing import signature_headers
from .ssrf import Resolver, SSRFPolicy, check_url

if TYPE_CHECKING:
    from flowbus.settings import FlowbusSettings

    from .metrics import DeliveryMetrics
    from .store import WebhookStore

__all__ = ["RETRYABLE_STATUSES", "AttemptInFlight", "DeliveryEngine", "EngineLimits"]

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({408, 425, 429})
#: The dispatcher's wait after errors in a row: 1 s, 2 s, 4 s, ... up to 30 s.
DISPATCHER_ERROR_BACKOFF = Backoff(initial=1.0, maximum=30.0)
_MAX_ERROR_LENGTH = 500


@dataclass(frozen=True, slots=True)
class EngineLimits:
    """Concurrency and timing knobs of a :class:`DeliveryEngine`.

    ``lease_grace``: seconds added to four times the subscription timeout to form the claim
    lease; a delivery whose worker died is attempted again after that.
    ``subscription_refresh``: how long :meth:`DeliveryEngine.submit` may use its cached
    subscription list before re-reading it (changes from the CLI show up within this).
    ``error_backoff``: how long the dispatcher waits after its n-th error in a row (the
    store unreachable, say) before it looks for due deliveries again.
    """

    max_concurrency: int = 16
    max_per_subscription: int = 4
    poll_interval: float = 1.0
    subscription_refresh: float = 2.0
    lease_grace: float = 30.0
    error_backoff: Backoff = DISPATCHER_ERROR_BACKOFF

    def __post_init__(self) -> None:
        if self.max_concurrency < 1 or self.max_per_subscription < 1:
            raise WebhookError("webhook engine concurrency limits must be >= 1")
        if self.poll_interval <= 0 or self.subscription_refresh < 0 or self.lease_grace < 0:
            raise WebhookError("webhook engine intervals must be positive")

    @classmethod
    def from_settings(cls, settings: FlowbusSettings | None = None) -> EngineLimits:
        """Limits from ``FLOWBUS_WEBHOOKS_MAX_CONCURRENCY`` / ``..._MAX_PER_SUBSCRIPTION``."""
        if settings is None:
            from flowbus.settings import get_settings

            settings = get_settings()
        return cls(
            max_concurrency=settings.webhooks_max_concurrency,
            max_per_subscription=settings.webhooks_max_per_subscription,
        )


@dataclass(frozen=True, slots=True)
class AttemptInFlight:
    """An attempt the engine is running: what, since when, until when at the latest.

    ``times_out_at``: when the subscription's timeout ends it; ``lease_until``: when another
    worker may attempt the delivery again if this one is abandoned.
    """

    delivery_id: str
    event_id: str
    subscription_id: str
    started_at: datetime
    times_out_at: datetime
    lease_until: datetime


@dataclass(frozen=True, slots=True)
class _Outcome:
    outcome: AttemptOutcome
    status_code: int | None
    error: str | None
    retryable: bool
    latency_ms: float | None
    retry_after: float | None = None


class DeliveryEngine:
    """Matches events to subscriptions and delivers them; see the module docstring.

    Use as a context manager or call :meth:`start` / :meth:`stop`. :meth:`submit` works
    before :meth:`start` too (the deliveries wait in the store). ``metrics``: where to
    count attempts and deliveries (:class:`~.metrics.DeliveryMetrics`), if anywhere.
    """

    def __init__(
        self,
        store: WebhookStore,
        *,
        policy: SSRFPolicy | None = None,
        client: WebhookHTTPClient | None = None,
        limits: EngineLimits | None = None,
        resolver: Resolver | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] = utc_now,
        metrics: DeliveryMetrics | None = None,
    ) -> None:
        self._store = store
        self._policy = policy or SSRFPolicy()
        self._owns_client = client is None
        self._owns_store = False
        self._client = client or WebhookHTTPClient()
        self._limits = limits or EngineLimits()
        self._resolver = resolver
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._clock = clock
        self._cond = threading.Condition()
        self._woken = False
        self._stopping = False  # no new attempts
        self._stopped = False  # stop() ran
        self._started = False
        self._in_flight: dict[str, AttemptInFlight] = {}  # by delivery id
        self._per_subscription: dict[str, int] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._dispatcher: threading.Thread | None = None
        self._subscriptions: list[Subscription] = []
        self._subscriptions_loaded = float("-inf")
        self._subscriptions_lock = threading.Lock()
        self._metrics = metrics
        if metrics is not None:
            metrics.watch(in_flight=lambda: self.in_flight, pending=store.count_pending)

    @classmethod
    def from_settings(
        cls,
        store: WebhookStore | None = None,
        settings: FlowbusSettings | None = None,
        *,
        metrics: DeliveryMetrics | None = None,
    ) -> DeliveryEngine:
        """An engine configured from the ``FLOWBUS_WEBHOOKS_*`` settings (store included)."""
        if settings is None:
            from flowbus.settings import get_settings

            settings = get_settings()
        owns_store = store is None
        if store is None:
            from .store import WebhookStore, default_database_url

            store = WebhookStore.open(default_database_url(settings))
        engine = cls(
            store,
            policy=SSRFPolicy.from_settings(settings),
            client=WebhookHTTPClient(extra_ca_bundle=settings.webhooks_ca_bundle),
            limits=EngineLimits.from_settings(settings),
            metrics=metrics,
        )
        engine._owns_client = True
        engine._owns_store = owns_store
        return engine

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> DeliveryEngine:
        """Start the dispatcher; pending deliveries in the store (retries too) resume."""
        with self._cond:
            if self._stopping:
                raise DeliveryEngineClosedError("the webhook delivery engine was stopped")
            if self._started:
                return self
            self._started = True
        self._executor = ThreadPoolExecutor(
            max_workers=self._limits.max_concurrency, thread_name_prefix="flowbus-webhook"
        )
        self._dispatcher = threading.Thread(
            target=self._run, name="flowbus-webhook-dispatcher", daemon=True
        )
        self._dispatcher.start()
        logger.info(
            "webhook delivery engine started (store %s, concurrency %d, per subscription %d)",
            self._store.display_url,
            self._limits.max_concurrency,
            self._limits.max_per_subscription,
        )
        return self

    def stop(self, wait: bool = True) -> None:
        """Stop dispatching; with ``wait``, let attempts in flight finish first.

        Pending deliveries stay in the store for the next engine.
        """
        with self._cond:
            if self._stopped:
                return
            self._stopped = True
        self.stop_dispatching()
        if self._executor is not None:
            self._executor.shutdown(wait=wait)
        if self._owns_client and wait:
            self._client.close()
        if self._owns_store and wait:
            self._store.close()
        logger.info("webhook delivery engine stopped")

    def stop_dispatching(self) -> list[AttemptInFlight]:
        """Start no new attempt; returns the attempts still running (see :meth:`stop`)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._dispatcher is not None:
            self._dispatcher.join()
        return self.attempts_in_flight()

    def attempts_in_flight(self) -> list[AttemptInFlight]:
        """The attempts running right now, oldest first."""
        with self._cond:
            return sorted(self._in_flight.values(), key=lambda a: a.started_at)

    def wait_for_attempts(self, timeout: float | None = None) -> bool:
        """Wait until no attempt runs (or ``timeout`` seconds); whether none runs."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._in_flight, timeout)

    def __enter__(self) -> DeliveryEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def in_flight(self) -> int:
        """Attempts running right now."""
        with self._cond:
            return len(self._in_flight)

    def wake(self) -> None:
        """Make the dispatcher look for due deliveries now (e.g. after a re-drive)."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    # -- input ----------------------------------------------------------------------

    def submit(self, event: WebhookEvent) -> list[Delivery]:
        """Record a delivery of ``event`` for every matching enabled subscription.

        Returns the deliveries created (none for an event already submitted). Durable on
        return; attempts follow asynchronously.
        """
        if self._stopping:
            raise DeliveryEngineClosedError("the webhook delivery engine was stopped")
        matching = [s for s in self._enabled_subscriptions() if s.matches(event)]
        if not matching:
            logger.debug("event %s (%s) matches no webhook subscription", event.id, event.type)
            return []
        created = self._store.create_deliveries(
            event_id=event.id,
            event_type=event.type,
            body=event.to_json_bytes(),
            subscription_ids=[s.id for s in matching],
            now=self._clock(),
        )
        logger.info(
            "event %s (%s): %d webhook deliveries queued (%d matching subscriptions)",
            event.id,
            event.type,
            len(created),
            len(matching),
        )
        if created:
            if self._metrics is not None:
                self._metrics.queued(len(created))
            self.wake()
        return created

    def redrive(self, delivery_id: str) -> Delivery:
        """Re-drive one failed or blocked delivery now."""
        delivery = self._store.redrive(delivery_id, now=self._clock())
        self.wake()
        return delivery

    def redrive_all(self, subscription_id: str | None = None) -> int:
        """Re-drive every failed or blocked delivery (of one subscription)."""
        count = self._store.redrive_all(subscription_id=subscription_id, now=self._clock())
        self.wake()
        return count

    def _enabled_subscriptions(self) -> list[Subscription]:
        with self._subscriptions_lock:
            age = time.monotonic() - self._subscriptions_loaded
            if age >= self._limits.subscription_refresh:
                self._subscriptions = self._store.list_subscriptions(enabled=True)
                self._subscriptions_loaded = time.monotonic()
            return self._subscriptions

    # -- dispatching ----------------------------------------------------------------

    def _run(self) -> None:
        errors = 0  # in a row
        while True:
            with self._cond:
                if self._stopping:
                    return
            try:
                self._dispatch_due()
                wait = self._seconds_until_next_due()
                errors = 0
            except Exception:
                errors += 1
                wait = self._limits.error_backoff.delay(errors, self._rng)
                logger.exception(
                    "webhook dispatcher: error %d in a row while dispatching; retrying in %.1f s",
                    errors,
                    wait,
                )
            with self._cond:
                if not self._woken and not self._stopping:
                    self._cond.wait(timeout=wait)
                self._woken = False

    def _seconds_until_next_due(self) -> float:
        poll = self._limits.poll_interval
        with self._cond:
            if len(self._in_flight) >= self._limits.max_concurrency:
                return poll  # a finishing attempt wakes the dispatcher
        due = self._store.next_due_at()
        if due is None:
            return poll
        delay = (due - self._clock()).total_seconds()
        # Already due yet not dispatched: its subscription is at its concurrency limit.
        # A finishing attempt wakes the dispatcher; polling is the fallback. (Returning 0
        # here would spin.)
        return poll if delay <= 0 else min(poll, delay)

    def _dispatch_due(self) -> None:
        limits = self._limits
        while True:
            with self._cond:
                if self._stopping:
                    return
                free = limits.max_concurrency - len(self._in_flight)
                saturated = {
                    sid for sid, n in self._per_subscription.items()
                    if n >= limits.max_per_subscription
                }  # fmt: skip
            if free <= 0:
                return
            now = self._clock()
            candidates = self._store.due_deliveries(
                now=now, limit=free + limits.max_per_subscription, exclude_subscriptions=saturated
            )
            if not candidates:
                return
            dispatched = skipped = 0
            for delivery in candidates:
                if dispatched >= free:
                    break
                with self._cond:
                    busy = self._per_subscription.get(delivery.subscription_id, 0)
                if busy >= limits.max_per_subscription:
                    skipped += 1
                    continue
                if self._dispatch(delivery, now):
                    dispatched += 1
            if dispatched == 0 and skipped == 0:
                return  # everything was claimed elsewhere; wait for the next due time
            if dispatched == 0:
                continue  # only saturated subscriptions were seen; query again without them

    def _dispatch(self, delivery: Delivery, now: datetime) -> bool:
        try:
            subscription = self._store.get_subscription(delivery.subscription_id)
        except SubscriptionNotFoundError:
            return False  # removed since: its deliveries went with it
        lease = timedelta(seconds=4 * subscription.timeout + self._limits.lease_grace)
        if not self._store.claim(delivery, now=now, lease_until=now + lease):
            return False
        assert self._executor is not None
        with self._cond:
            self._in_flight[delivery.id] = AttemptInFlight(
                delivery_id=delivery.id,
                event_id=delivery.event_id,
                subscription_id=subscription.id,
                started_at=now,
                times_out_at=now + timedelta(seconds=subscription.timeout),
                lease_until=now + lease,
            )
            self._per_subscription[subscription.id] = (
                self._per_subscription.get(subscription.id, 0) + 1
            )
        try:
            self._executor.submit(self._run_attempt, delivery, subscription)
        except RuntimeError:  # executor shut down while stopping: the lease expires later
            self._finished(delivery, subscription)
            return False
        return True

    def _run_attempt(self, delivery: Delivery, subscription: Subscription) -> None:
        try:
            self.attempt(delivery, subscription)
        except Exception:
            logger.exception(
                "webhook delivery %s (event %s): attempt crashed; it will be retried after "
                "its lease expires",
                delivery.id,
                delivery.event_id,
            )
        finally:
            self._finished(delivery, subscription)

    def _finished(self, delivery: Delivery, subscription: Subscription) -> None:
        with self._cond:
            self._in_flight.pop(delivery.id, None)
            remaining = self._per_subscription.get(subscription.id, 1) - 1
            if remaining > 0:
                self._per_subscription[subscription.id] = remaining
            else:
                self._per_subscription.pop(subscription.id, None)
            self._woken = True
            self._cond.notify_all()

    # -- one attempt ----------------------------------------------------------------

    def attempt(self, delivery: Delivery, subscription: Subscription) -> Delivery | None:
        """Make the next attempt of ``delivery`` now and record it; returns the new state.

        The dispatcher calls this for claimed deliveries; it is public for tools and tests.
        """
        number = delivery.attempts + 1
        started_at = self._clock()
        started = time.perf_counter()
        result = self._send(delivery, subscription)
        seconds = time.perf_counter() - started
        attempt = Attempt(
            delivery_id=delivery.id,
            number=number,
            started_at=started_at,
            latency_ms=result.latency_ms,
            status_code=result.status_code,
            outcome=result.outcome,
            error=result.error,
        )
        in_round = number - delivery.round_start
        next_at: datetime | None = None
        if result.outcome is AttemptOutcome.DELIVERED:
            status = DeliveryStatus.DELIVERED
        elif result.outcome is AttemptOutcome.BLOCKED:
            status = DeliveryStatus.BLOCKED
        elif not result.retryable or in_round >= subscription.retry.max_attempts:
            status = DeliveryStatus.FAILED
        else:
            status = DeliveryStatus.PENDING
            delay = subscription.retry.backoff(in_round, self._rng)
            if result.retry_after is not None:
                delay = max(delay, min(result.retry_after, subscription.retry.max_backoff))
            next_at = self._clock() + timedelta(seconds=delay)
        updated = self._store.record_attempt(attempt, status=status, next_attempt_at=next_at)
        if self._metrics is not None:
            self._metrics.attempted(result.outcome, seconds, None if updated is None else status)
        gave_up = status in (DeliveryStatus.FAILED, DeliveryStatus.BLOCKED)
        log = logger.warning if gave_up else logger.info
        log(
            "webhook delivery %s attempt %d (subscription %s, event %s %s): %s%s%s -> %s%s",
            delivery.id,
            number,
            subscription.id,
            delivery.event_id,
            delivery.event_type,
            result.outcome.value,
            f" HTTP {result.status_code}" if result.status_code is not None else "",
            f" in {result.latency_ms:.0f} ms" if result.latency_ms is not None else "",
            status.value,
            f" (retry at {next_at.isoformat()})" if next_at is not None else "",
        )
        if updated is None:
            logger.warning(
                "webhook delivery %s attempt %d was already recorded by another worker",
                delivery.id,
                number,
            )
        return updated

    def _send(self, delivery: Delivery, subscription: Subscription) -> _Outcome:
        started = time.perf_counter()

        def elapsed() -> float:
            return (time.perf_counter() - started) * 1000.0

        try:
            target = check_url(subscription.url, self._policy, self._resolver)
        except BlockedURLError as exc:
            return _Outcome(AttemptOutcome.BLOCKED, None, _clip(exc.reason), False, None)
        except URLResolutionError as exc:
            return _Outcome(AttemptOutcome.DNS_ERROR, None, _clip(str(exc)), True, None)
        headers = {
            **subscription.headers,
            "content-type": CLOUDEVENTS_JSON,
            **signature_headers(
                subscription.secrets, delivery.id, delivery.body, int(self._clock().timestamp())
            ),
        }
        try:
            response = self._client.send(
                target,
                method=subscription.method,
                headers=headers,
                body=delivery.body,
                timeout=subscription.timeout,
            )
        except BlockedURLError as exc:
            return _Outcome(AttemptOutcome.BLOCKED, None, _clip(exc.reason), False, elapsed())
        except httpx.TimeoutException as exc:
            error = f"timed out after {subscription.timeout:g} s ({type(exc).__name__})"
            return _Outcome(AttemptOutcome.TIMEOUT, None, error, True, elapsed())
        except httpx.HTTPError as exc:
            error = _clip(f"{type(exc).__name__}: {exc}")
            return _Outcome(AttemptOutcome.NETWORK_ERROR, None, error, True, elapsed())
        code = response.status_code
        if 200 <= code < 300:
            return _Outcome(AttemptOutcome.DELIVERED, code, None, False, response.latency_ms)
        retryable = code >= 500 or code in RETRYABLE_STATUSES
        error = f"HTTP {code}" + ("" if retryable else " (not retried)")
        return _Outcome(
            AttemptOutcome.HTTP_ERROR,
            code,
            error,
            retryable,
            response.latency_ms,
            response.retry_after,
        )


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_ERROR_LENGTH else text[: _MAX_ERROR_LENGTH - 1] + "…"
