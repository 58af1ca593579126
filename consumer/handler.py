"""Handling one message: rebuild the event, re-send its signal, decide its fate.

The metadata comes strictly from the headers, the signal from ``ce_type``, the data from
the value (either Avro framing). The signal is re-sent with the original metadata, so
receivers here run as if the event had happened locally (``from_event_bus=True``).
Receivers that raised are called again, only they, with backoff; whatever still fails,
or cannot be read at all, becomes a :class:`DeadLetter`. Handling never raises.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from confluent_kafka import Message

from flowbus import cloudevents
from flowbus.errors import DecodeError, EventHeaderError, SenderValidationError
from flowbus.metadata import EventMetadata
from flowbus.signals import WorkflowSignal, callable_name

from .deadletter import DeadLetter, Reason
from .retry import RetryPolicy

if TYPE_CHECKING:
    from flowbus.avro.serializer import EventDeserializer

log = logging.getLogger(__name__)

Receiver = Callable[..., Any]


@dataclasses.dataclass
class HandlingResult:
    """What happened to one message."""

    #: The event's metadata, once its headers were read.
    metadata: EventMetadata | None = None
    attempts: int = 0
    responses: list[tuple[Receiver, Any]] = dataclasses.field(default_factory=list)
    dead_letter: DeadLetter | None = None
    #: When handling ended (``time.time()``); with ``metadata.time``, the end-to-end latency.
    ended_at: float | None = None

    @property
    def event_type(self) -> str | None:
        return None if self.metadata is None else self.metadata.event_type

    @property
    def event_id(self) -> str | None:
        return None if self.metadata is None else str(self.metadata.id)

    @property
    def end_to_end(self) -> float | None:
        """Seconds from the event's ``time`` to the end of its handling."""
        if self.metadata is None or self.ended_at is None:
            return None
        return self.ended_at - self.metadata.time.timestamp()

    @property
    def retried(self) -> bool:
        return self.attempts > 1


class MessageHandler:
    """Turns a Kafka message back into a signal event; configured once, called per message."""

    def __init__(
        self,
        group: str,
        deserializer: EventDeserializer | None = None,
        retry: RetryPolicy | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.group = group
        self.deserializer = deserializer or _default_deserializer()
        self.retry = retry or RetryPolicy()
        # Set by the worker on shutdown: cuts a backoff wait short.
        self._stop = stop or threading.Event()

    def handle(self, message: Message) -> HandlingResult:
        result = HandlingResult()
        try:
            envelope = cloudevents.from_headers(message.headers())
        except EventHeaderError as exc:
            return self._dead(result, message, Reason.MALFORMED_HEADERS, exc)
        metadata = result.metadata = envelope.metadata
        try:
            signal = WorkflowSignal.get_signal_by_type(metadata.event_type)
        except KeyError as exc:
            error = LookupError(f"no signal for event type {metadata.event_type!r} here")
            error.__cause__ = exc
            return self._dead(result, message, Reason.UNKNOWN_EVENT_TYPE, error)
        try:
            decoded = self.deserializer.deserialize(
                signal, message.value() or b"", message.topic() or ""
            )
        except DecodeError as exc:
            return self._dead(result, message, Reason.UNDECODABLE, exc)
        except Exception as exc:  # a decoder bug must not stop the worker either
            log.exception("unexpected error decoding event %s", metadata.id)
            return self._dead(result, message, Reason.UNDECODABLE, exc)
        try:
            data = signal.validate_decoded(decoded)
        except SenderValidationError as exc:
            return self._dead(result, message, Reason.INVALID_DATA, exc)

        failed = self._send(result, signal, metadata, envelope.sender, data)
        while failed and result.attempts < self.retry.max_attempts:
            if self._stop.wait(self.retry.delay(result.attempts)):
                break  # shutting down: dead-letter what still fails rather than wait on
            failed = self._retry(result, signal, metadata, envelope.sender, data, failed)
        result.ended_at = time.time()
        if failed:
            names = [callable_name(receiver) for receiver, _ in failed]
            log.warning(
                "event %s (%s) at %s[%s]@%s: receivers %s still failing after %d attempts",
                metadata.id, metadata.event_type, message.topic(), message.partition(),
                message.offset(), ", ".join(names), result.attempts,
            )  # fmt: skip
            return self._dead(result, message, Reason.RECEIVER_FAILED, failed[0][1], names)
        return result

    def _send(
        self,
        result: HandlingResult,
        signal: WorkflowSignal,
        metadata: EventMetadata,
        sender: str | None,
        data: Mapping[str, Any],
    ) -> list[tuple[Receiver, BaseException]]:
        result.attempts = 1
        try:
            # ``data`` was validated by handle(): no second validation.
            responses = signal.resend_validated(metadata, data, send_robust=True, sender=sender)
        except Exception as exc:
            # The signal lets receiver failures propagate (allow_send_event_failure): the
            # receivers after the failing one did not run, so retry the whole dispatch.
            result.responses = []
            return [(_ResendAll(signal, metadata, sender), exc)]
        result.responses = list(responses)
        failed: list[tuple[Receiver, BaseException]] = []
        for receiver, response in responses:
            if isinstance(response, BaseException):
                failed.append((receiver, response))
        return failed

    def _retry(
        self,
        result: HandlingResult,
        signal: WorkflowSignal,
        metadata: EventMetadata,
        sender: str | None,
        data: Mapping[str, Any],
        failed: list[tuple[Receiver, BaseException]],
    ) -> list[tuple[Receiver, BaseException]]:
        result.attempts += 1
        still_failing: list[tuple[Receiver, BaseException]] = []
        for receiver, _ in failed:
            try:
                response = receiver(
                    sender, signal=signal, metadata=metadata, from_event_bus=True, **data
                )
            except Exception as exc:
                still_failing.append((receiver, exc))
            else:
                result.responses.append((receiver, response))
        return still_failing

    def _dead(
        self,
        result: HandlingResult,
        message: Message,
        reason: Reason,
        error: BaseException,
        failed_receivers: list[str] | None = None,
    ) -> HandlingResult:
        result.dead_letter = DeadLetter(
            reason=reason,
            error=error,
            topic=message.topic() or "",
            partition=message.partition() or 0,
            offset=message.offset() or 0,
            key=_as_bytes(message.key()),
            value=_as_bytes(message.value()),
            headers=cloudevents.header_pairs(message.headers()),
            group=self.group,
            attempts=max(result.attempts, 1),
            failed_receivers=failed_receivers or (),
        )
        return result


class _ResendAll:
    """Stands for "every receiver" when a propagating failure cut the dispatch short."""

    __module__ = "flowbus.consumer"
    __qualname__ = "<all receivers>"

    def __init__(self, signal: WorkflowSignal, metadata: EventMetadata, sender: str | None):
        self.signal, self.metadata, self.sender = signal, metadata, sender

    def __call__(self, sender: object, **kwargs: Any) -> Any:
        kwargs.pop("signal"), kwargs.pop("metadata"), kwargs.pop("from_event_bus")
        return self.signal.send_event_with_custom_metadata(
            self.metadata, send_robust=False, sender=self.sender, **kwargs
        )


def _as_bytes(value: str | bytes | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def _default_deserializer() -> EventDeserializer:
    from flowbus.avro.serializer import EventDeserializer
    from flowbus.settings import get_settings

    return EventDeserializer.from_settings(get_settings())
