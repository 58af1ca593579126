"""One attempt at handling a message: rebuild the event, call its receivers, name the failure.

The metadata comes strictly from the headers, the signal from ``ce_type``, the data from
the value (either Avro framing). The receivers connected to the signal (for the event's
sender) are called with the original metadata and ``from_event_bus=True``, so they run as
if the event had happened locally. A receiver that succeeded is not called again on a
later attempt: only those still pending are. ``async def`` receivers are awaited on the
worker's event loop, and cancelled at their deadline.

An attempt never raises: it ends with an :class:`~consumer.middleware.Outcome` and, if it
failed, the :class:`~consumer.failures.Failure` the middlewares decide on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from flowbus import cloudevents
from flowbus.errors import ReceiverTimeoutError
from flowbus.signals import callable_name

from .dead_letter import DeadLetter, Reason
from .decoding import DecodeFailed, decode_record
from .failures import Failure, FailureClassifier, FailureKind
from .middleware import (
    ConsumedRecord,
    DeadLetterNow,
    Decision,
    DecodedEvent,
    MessageContext,
    Middleware,
    Outcome,
    PausePartition,
)

if TYPE_CHECKING:
    from flowbus.avro.serializer import EventDeserializer

__all__ = ["CallGuard", "MessageHandler"]

log = logging.getLogger(__name__)


class CallGuard(Protocol):
    """How the attempt tells the engine a receiver call starts and ends (for deadlines)."""

    def call_started(
        self, receiver: Callable[..., Any], timeout: float | None, awaited: bool
    ) -> None: ...

    def call_ended(self) -> bool:
        """``False`` when the engine gave up on this attempt meanwhile (deadline passed)."""
        ...


class MessageHandler:
    """Decodes records and calls receivers; configured once, called per attempt."""

    def __init__(
        self,
        group: str,
        deserializer: EventDeserializer | None = None,
        *,
        middlewares: Sequence[Middleware] = (),
        classifier: FailureClassifier | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.group = group
        self.deserializer = deserializer or _default_deserializer()
        self.middlewares = tuple(middlewares)
        # Per hook, only the middlewares that implement it: most implement one or two.
        self._hooks = {
            hook: [
                getattr(middleware, hook)
                for middleware in self.middlewares
                if getattr(type(middleware), hook) is not getattr(Middleware, hook)
            ]
            for hook in ("before_handle", "after_handle", "after_dead_letter")
        }
        self._awaited: dict[Callable[..., Any], bool] = {}
        self.classifier = classifier or FailureClassifier()
        #: The event loop ``async def`` receivers are awaited on (run by the engine).
        self.loop = loop

    # --- one attempt -----------------------------------------------------------------------

    def attempt(self, context: MessageContext, guard: CallGuard) -> Outcome | None:
        """Run one attempt; ``None`` when the engine abandoned it (a deadline passed)."""
        self.notify("before_handle", context)
        try:
            if context.event is None:
                context.event = self.decode(context.record)
                context.pending = self.receivers_for(context.event)
            failure = self._call_pending(context, guard)
        except DecodeFailed as failed:
            failure = failed.failure
        except _Abandoned:
            return None
        if failure is None:
            context.failure = context.decision = None
            context.infrastructure_failures = 0
            self.notify("after_handle", context, Outcome.HANDLED)
            return Outcome.HANDLED
        return self.failed(context, failure)

    def failed(self, context: MessageContext, failure: Failure) -> Outcome:
        """Ask the middlewares what ``failure`` means for ``context``; note their decision."""
        context.failure = failure
        if failure.kind is FailureKind.INFRASTRUCTURE:
            context.infrastructure_failures += 1
        else:
            context.infrastructure_failures = 0
        decision = context.decision = self.decide(context, failure)
        if isinstance(decision, DeadLetterNow):
            context.dead_letter = self.dead_letter(context, failure)
            outcome = Outcome.DEAD_LETTERING
        elif isinstance(decision, PausePartition):
            outcome = Outcome.PAUSED
        else:
            outcome = Outcome.RETRYING
        self.notify("after_handle", context, outcome)
        return outcome

    def decide(self, context: MessageContext, failure: Failure) -> Decision:
        for middleware in self.middlewares:
            try:
                decision = middleware.on_failure(context, failure)
            except Exception:
                log.exception("middleware %s failed deciding on %s", middleware, context.position)
                continue
            if decision is not None:
                return decision
        if failure.kind is FailureKind.INFRASTRUCTURE:
            return PausePartition(30.0)
        return DeadLetterNow()

    def notify(self, hook: str, context: MessageContext, *args: Any) -> None:
        for method in self._hooks[hook]:
            try:
                method(context, *args)
            except Exception:
                log.exception("middleware hook %s failed at %s", method, context.position)

    # --- the steps -------------------------------------------------------------------------

    def decode(self, record: ConsumedRecord) -> DecodedEvent:
        """The event in ``record``; raises :class:`~consumer.decoding.DecodeFailed`."""
        return decode_record(record, self.deserializer)

    @staticmethod
    def receivers_for(event: DecodedEvent) -> list[Callable[..., Any]]:
        return list(event.signal.receivers_for(event.sender))

    def _call_pending(self, context: MessageContext, guard: CallGuard) -> Failure | None:
        event = context.event
        pending = context.pending
        assert event is not None and pending is not None
        context.attempts += 1
        stop_at_first = event.signal.send_event_failure_allowed
        failed: list[tuple[Callable[..., Any], BaseException]] = []
        for receiver in list(pending):
            try:
                self._call(receiver, event, context.receiver_timeout, guard)
            except _Abandoned:
                raise
            except Exception as exc:
                failed.append((receiver, exc))
                if stop_at_first:
                    break  # as locally: the receivers after a propagating failure do not run
            else:
                pending.remove(receiver)
        if not failed:
            return None
        return self.receiver_failure(context, failed)

    def receiver_failure(
        self,
        context: MessageContext,
        failed: list[tuple[Callable[..., Any], BaseException]],
    ) -> Failure:
        """The failure of a round whose ``failed`` receivers raised or timed out."""
        kinds = {self.classifier.receiver_failure_kind(error) for _, error in failed}
        if FailureKind.INFRASTRUCTURE in kinds:
            kind = FailureKind.INFRASTRUCTURE
            context.attempts -= 1  # an outage does not use up the receivers' attempts
        elif FailureKind.RECEIVER in kinds:
            kind = FailureKind.RECEIVER
        else:
            kind = FailureKind.DATA
        error = failed[0][1]
        timed_out = all(isinstance(e, ReceiverTimeoutError) for _, e in failed)
        reason = Reason.TIMEOUT if timed_out else Reason.RECEIVER_FAILED
        names = tuple(callable_name(receiver) for receiver, _ in failed)
        metadata = context.metadata
        log.warning(
            "event %s (%s) at %s: receivers %s failed (%s, attempt %d)",
            metadata.id if metadata else "?", metadata.event_type if metadata else "?",
            context.position, ", ".join(names), type(error).__name__, max(context.attempts, 1),
        )  # fmt: skip
        return Failure(kind, reason, error, names)

    def _call(
        self,
        receiver: Callable[..., Any],
        event: DecodedEvent,
        timeout: float | None,
        guard: CallGuard,
    ) -> Any:
        awaited = self._awaited.get(receiver)
        if awaited is None:
            awaited = self._awaited[receiver] = _is_async(receiver)
        guard.call_started(receiver, timeout, awaited)
        try:
            result = receiver(
                event.sender,
                signal=event.signal,
                metadata=event.metadata,
                from_event_bus=True,
                **event.data,
            )
            if result is not None and inspect.isawaitable(result):
                result = self._await(result, receiver, timeout)
        finally:
            if not guard.call_ended():
                raise _Abandoned
        return result

    def _await(self, awaitable: Any, receiver: Callable[..., Any], timeout: float | None) -> Any:
        if self.loop is None:
            name = callable_name(receiver)
            raise RuntimeError(f"receiver {name} is async, but no event loop runs here")
        future = asyncio.run_coroutine_threadsafe(_as_coroutine(awaitable), self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()  # a coroutine, unlike a thread, can be stopped
            raise ReceiverTimeoutError(callable_name(receiver), timeout or 0.0) from None

    def dead_letter(self, context: MessageContext, failure: Failure) -> DeadLetter:
        record = context.record
        return DeadLetter(
            reason=failure.reason,
            error=failure.error,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=cloudevents.header_pairs(record.headers),
            group=self.group,
            attempts=max(context.attempts, 1),
            failed_receivers=failure.receivers,
        )


class _Abandoned(Exception):
    """The engine gave up on this attempt while a receiver ran: drop its result."""


def _is_async(receiver: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(receiver) or inspect.iscoroutinefunction(
        getattr(receiver, "__call__", None)  # noqa: B004 (an async callable object)
    )


async def _as_coroutine(awaitable: Any) -> Any:
    return await awaitable


def _default_deserializer() -> EventDeserializer:
    from flowbus.avro.serializer import EventDeserializer
    from flowbus.settings import get_settings

    return EventDeserializer.from_settings(get_settings())
