"""The handling pipeline's seam: middlewares with before / after / on-failure hooks.

Every attempt at handling a message calls, in the order the middlewares are given,
``before_handle`` and then ``after_handle`` with the attempt's :class:`Outcome`. When an
attempt fails, ``on_failure`` is asked for a :class:`Decision`, in the same order; the
first that gives one wins:

- :class:`RetryLater`: try this message again after ``delay`` seconds; later messages of
  its key wait behind it, every other key goes on;
- :class:`DeadLetterNow`: write it to the dead-letter topic with the failure's reason;
- :class:`PausePartition`: stop the message's partition for ``delay`` seconds, then try
  again; nothing after it is committed meanwhile.

When no middleware decides, a data or receiver failure is dead-lettered and an
infrastructure failure pauses (nothing is ever dropped). The default chain is
:func:`default_middlewares`; users insert their own, in the style of dramatiq's
middleware. Hooks run on the thread handling the message, except when a receiver timed
out: then on the worker's thread. A hook that raises is logged and ignored.

The public names are those :mod:`flowbus.consumer` exports from here (it lists them).
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from flowbus.backoff import Backoff
from flowbus.cloudevents import Headers, header_pairs

from .failures import Failure, FailureKind

if TYPE_CHECKING:
    from flowbus.metadata import EventMetadata
    from flowbus.signals import WorkflowSignal

    from .dead_letter import DeadLetter
    from .metrics import WorkerMetrics
    from .retry import ReceiverRetryPolicy

log = logging.getLogger(__name__)


class ConsumedRecord(NamedTuple):
    """A record as read from a topic (from Kafka, or from the in-memory bus)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers | None


class DecodedEvent(NamedTuple):
    """A record turned back into an event: its signal, metadata, sender name and data."""

    signal: WorkflowSignal
    metadata: EventMetadata
    sender: str | None
    data: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class RetryLater:
    delay: float


@dataclasses.dataclass(frozen=True, slots=True)
class DeadLetterNow:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class PausePartition:
    delay: float


Decision = RetryLater | DeadLetterNow | PausePartition


class Outcome(enum.StrEnum):
    """How one attempt ended."""

    HANDLED = "handled"  # every receiver ran
    RETRYING = "retrying"  # failed; tried again later
    PAUSED = "paused"  # failed on infrastructure; partition paused, tried again later
    DEAD_LETTERING = "dead-lettering"  # failed for good; on its way to the dead-letter topic


class MessageContext:
    """One message on its way through the pipeline, kept across its attempts.

    ``attempts`` counts the receiver rounds (the first call included);
    ``infrastructure_failures`` the infrastructure failures in a row; ``failure`` and
    ``decision`` are the last attempt's, if it failed. Middlewares may keep their own
    state in ``extras``.
    """

    # Class-level defaults: a context is made per message, and most are handled at the
    # first attempt, so only what every message needs is set per instance.
    event: DecodedEvent | None = None
    attempts = 0
    infrastructure_failures = 0
    #: Receivers still to call (``None`` until the event is decoded).
    pending: list[Callable[..., Any]] | None = None
    failure: Failure | None = None
    #: What the middlewares decided on the last failure.
    decision: Decision | None = None
    dead_letter: DeadLetter | None = None
    #: Set by :class:`Deadlines`: seconds a receiver may run (``None``: no deadline).
    receiver_timeout: float | None = None
    first_started: float | None = None
    _extras: dict[str, Any] | None = None

    def __init__(self, record: ConsumedRecord, arrival: int = 0) -> None:
        self.record = record
        #: The order in which the engine received it.
        self.arrival = arrival

    @property
    def extras(self) -> dict[str, Any]:
        """Middlewares' own state for this message (made on first use: most messages need
        none, and every object a buffered message keeps alive costs in the garbage
        collector)."""
        if self._extras is None:
            self._extras = {}
        return self._extras

    @property
    def metadata(self) -> EventMetadata | None:
        return None if self.event is None else self.event.metadata

    @property
    def event_type(self) -> str | None:
        return None if self.event is None else self.event.metadata.event_type

    @property
    def position(self) -> str:
        record = self.record
        return f"{record.topic}[{record.partition}]@{record.offset}"

    def __repr__(self) -> str:
        return f"<MessageContext {self.position} attempts={self.attempts}>"


class Middleware:
    """Base class: override the hooks you need."""

    def before_handle(self, context: MessageContext) -> None:
        """An attempt starts."""

    def after_handle(self, context: MessageContext, outcome: Outcome) -> None:
        """An attempt ended with ``outcome`` (``context.failure`` says why, if it failed)."""

    def on_failure(self, context: MessageContext, failure: Failure) -> Decision | None:
        """An attempt failed: decide, or ``None`` to let the next middleware decide."""
        return None

    def after_dead_letter(self, context: MessageContext, letter: DeadLetter) -> None:
        """The dead-letter topic acknowledged ``letter``: the message is finished."""


class Deadlines(Middleware):
    """Each receiver call may run ``receiver_timeout`` seconds; past it, the call fails
    with :class:`~flowbus.errors.ReceiverTimeoutError` (reason ``timeout``)."""

    def __init__(self, receiver_timeout: float | None) -> None:
        if receiver_timeout is not None and receiver_timeout <= 0:
            raise ValueError("receiver_timeout must be positive (or None for no deadline)")
        self.receiver_timeout = receiver_timeout

    def before_handle(self, context: MessageContext) -> None:
        context.receiver_timeout = self.receiver_timeout


class Retries(Middleware):
    """Receiver failures are retried with the policy's backoff until its attempts run out."""

    def __init__(self, policy: ReceiverRetryPolicy) -> None:
        self.policy = policy

    def on_failure(self, context: MessageContext, failure: Failure) -> Decision | None:
        if failure.kind is FailureKind.RECEIVER and context.attempts < self.policy.max_attempts:
            return RetryLater(self.policy.delay(context.attempts))
        return None


class InfrastructurePauses(Middleware):
    """Infrastructure failures pause the partition, for longer after each one in a row."""

    def __init__(self, backoff: Backoff | None = None) -> None:
        self.backoff = backoff or Backoff(initial=1.0, maximum=30.0)

    def on_failure(self, context: MessageContext, failure: Failure) -> Decision | None:
        if failure.kind is FailureKind.INFRASTRUCTURE:
            return PausePartition(self.backoff.delay(context.infrastructure_failures))
        return None


class DeadLetters(Middleware):
    """Data failures, and receiver failures no earlier middleware retried, go to the
    dead-letter topic."""

    def on_failure(self, context: MessageContext, failure: Failure) -> Decision | None:
        if failure.kind in (FailureKind.DATA, FailureKind.RECEIVER):
            return DeadLetterNow()
        return None


class Metrics(Middleware):
    """Counts and times each message in a :class:`~flowbus.consumer.metrics.WorkerMetrics`."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self.metrics = metrics

    def before_handle(self, context: MessageContext) -> None:
        if context.first_started is None:
            context.first_started = time.monotonic()

    def after_handle(self, context: MessageContext, outcome: Outcome) -> None:
        if outcome is Outcome.HANDLED:
            self.metrics.resent(self._finished(context))
        elif outcome is Outcome.PAUSED:
            self.metrics.paused(context.event_type or "unknown")

    def after_dead_letter(self, context: MessageContext, letter: DeadLetter) -> None:
        self.metrics.dead_lettered(self._finished(context), letter.reason.value)

    def _finished(self, context: MessageContext) -> str:
        """Count and time a finished message; returns its event type label."""
        event_type = context.event_type or "unknown"
        self.metrics.consumed(event_type)
        if context.attempts > 1:
            self.metrics.retried(event_type)
        if context.first_started is not None:
            self.metrics.observe_handling(time.monotonic() - context.first_started)
        metadata = context.metadata
        if metadata is not None:
            self.metrics.observe_end_to_end(time.time() - metadata.time.timestamp())
        return event_type


class Tracing(Middleware):
    """An OpenTelemetry span per attempt, child of the producer's ``traceparent``.

    Spans go to ``tracer_provider``, by default the application's global one; while none is
    configured (or ``opentelemetry`` is not installed) this costs nothing.
    """

    _SPAN = "flowbus.tracing.span"

    def __init__(self, tracer_provider: Any = None) -> None:
        try:
            from opentelemetry import trace
            from opentelemetry.propagate import extract
        except ImportError:
            self._trace: Any = None
            self._tracer: Any = None
            return
        self._trace = trace
        self._provider = tracer_provider
        self._tracer = None
        self._next_look = 0.0
        self._extract = extract

    def _current_tracer(self) -> Any:
        if self._tracer is not None or self._trace is None:
            return self._tracer
        now = time.monotonic()
        if now < self._next_look:  # looking costs an environment lookup: once a second
            return None
        self._next_look = now + 1.0
        trace = self._trace
        provider = self._provider or trace.get_tracer_provider()
        if isinstance(provider, trace.ProxyTracerProvider):
            return None  # no provider configured (yet): spans would go nowhere
        self._tracer = provider.get_tracer("flowbus.consumer")
        return self._tracer

    def before_handle(self, context: MessageContext) -> None:
        tracer = self._current_tracer()
        if tracer is None:
            return
        record = context.record
        carrier = {
            name: value.decode(errors="replace")
            for name, value in header_pairs(record.headers)
            if name in ("traceparent", "tracestate")
        }
        span = tracer.start_span(
            f"{record.topic} process",
            context=self._extract(carrier),
            kind=self._trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": record.topic,
                "messaging.destination.partition.id": str(record.partition),
                "messaging.kafka.offset": record.offset,
                "messaging.operation.type": "process",
            },
        )
        context.extras[self._SPAN] = span

    def after_handle(self, context: MessageContext, outcome: Outcome) -> None:
        if self._tracer is None:
            return
        span = context.extras.pop(self._SPAN, None)
        if span is None:
            return
        metadata = context.metadata
        if metadata is not None:
            span.set_attribute("messaging.message.id", str(metadata.id))
            span.set_attribute("cloudevents.event_type", metadata.event_type)
        span.set_attribute("flowbus.outcome", outcome.value)
        if context.failure is not None and outcome is not Outcome.HANDLED:
            span.set_status(self._trace.StatusCode.ERROR, context.failure.describe())
        span.end()


def default_middlewares(
    *,
    retry: ReceiverRetryPolicy,
    receiver_timeout: float | None,
    infrastructure_backoff: Backoff | None = None,
    metrics: WorkerMetrics | None = None,
) -> list[Middleware]:
    """Tracing, metrics (with ``metrics``), deadlines, retries, pauses, dead letters."""
    chain: list[Middleware] = [Tracing()]
    if metrics is not None:
        chain.append(Metrics(metrics))
    chain += [
        Deadlines(receiver_timeout),
        Retries(retry),
        InfrastructurePauses(infrastructure_backoff),
        DeadLetters(),
    ]
    return chain
