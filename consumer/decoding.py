"""A consumed record turned back into its event, or the failure that says why it cannot be.

One piece of code for the worker (:class:`~consumer.handler.MessageHandler`) and the
operator's views (``flowbus tail``, ``flowbus dlq show --data``), so a record a view shows
as undecodable is one the worker dead-letters, with the same reason. The metadata comes
strictly from the CloudEvents headers, the signal from ``ce_type``, the data from the value
(either Avro framing), validated by the signal.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from flowbus import cloudevents
from flowbus.errors import DecodeError, EventHeaderError, SchemaRegistryError, SenderValidationError
from flowbus.signals import WorkflowSignal

from .dead_letter import Reason
from .failures import Failure, FailureKind
from .middleware import ConsumedRecord, DecodedEvent

if TYPE_CHECKING:
    from flowbus.avro.serializer import EventDeserializer

__all__ = ["DecodeFailed", "decode_record"]

log = logging.getLogger(__name__)


class DecodeFailed(Exception):
    """A record is not an event here; :attr:`failure` has the kind, reason and error."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(str(failure.error))
        self.failure = failure


def decode_record(record: ConsumedRecord, deserializer: EventDeserializer) -> DecodedEvent:
    """The event in ``record``; raises :class:`DecodeFailed` with a data failure (the record
    can never be handled) or an infrastructure one (the registry is unreachable)."""
    try:
        envelope = cloudevents.from_headers(record.headers)
    except EventHeaderError as exc:
        raise DecodeFailed(Failure(FailureKind.DATA, Reason.MALFORMED_HEADERS, exc)) from exc
    metadata = envelope.metadata
    try:
        signal = WorkflowSignal.get_signal_by_type(metadata.event_type)
    except KeyError as exc:
        error = LookupError(f"no signal for event type {metadata.event_type!r} here")
        raise DecodeFailed(Failure(FailureKind.DATA, Reason.UNKNOWN_EVENT_TYPE, error)) from exc
    try:
        decoded = deserializer.deserialize(signal, record.value or b"", record.topic)
    except SchemaRegistryError as exc:
        raise DecodeFailed(Failure(FailureKind.INFRASTRUCTURE, Reason.UNDECODABLE, exc)) from exc
    except DecodeError as exc:
        raise DecodeFailed(Failure(FailureKind.DATA, Reason.UNDECODABLE, exc)) from exc
    except Exception as exc:  # a decoder bug: the same bytes would fail again
        log.exception("unexpected error decoding event %s", metadata.id)
        raise DecodeFailed(Failure(FailureKind.DATA, Reason.UNDECODABLE, exc)) from exc
    try:
        data = signal.validate_decoded(decoded)
    except SenderValidationError as exc:
        raise DecodeFailed(Failure(FailureKind.DATA, Reason.INVALID_DATA, exc)) from exc
    return DecodedEvent(signal, metadata, envelope.sender, data)
