"""An event prepared once for any sink: full topic, key, CloudEvents headers, Avro body.

Every sink (``direct``, ``on_commit``, ``outbox``; see :mod:`flowbus.producer.sinks`)
prepares an event here, so it is checked, named and encoded the same way wherever it goes.
The body is the schemaless Avro of the signal's validated data, written with the signal's
own schema (:meth:`~flowbus.avro.serializer.EventSerializer.encode_body`, no registry
call): the caller's data errors raise here, in the caller's thread and transaction, and no
registry or broker trouble can. The framing header (registry id or fingerprint) and the
``ce_dataschema`` header come later, from the sink: the producer when the writer schema is
resolved, the outbox relay when it publishes the row.

The event's wire profile (:mod:`flowbus.wire`: the route's, else the signal's) decides the
body's schema and the header style here, and the key's framing and the partition where the
producer frames the event.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flowbus import cloudevents
from flowbus.wire import FLOWBUS, HeaderStyle, WireProfile, get_profile

if TYPE_CHECKING:
    from flowbus.avro.serializer import EventSerializer
    from flowbus.metadata import EventMetadata
    from flowbus.signals import WorkflowSignal

__all__ = ["PreparedEvent", "prepare_event"]


@dataclasses.dataclass(slots=True, eq=False)
class PreparedEvent:
    """One event checked and encoded, ready for a sink to frame and deliver.

    ``value`` and ``headers`` are the framed Kafka value and the full headers; ``None``
    until the sink settled the framing (the producer, once the writer schema is resolved).
    """

    signal: WorkflowSignal
    metadata: EventMetadata
    data: Mapping[str, Any]
    #: The full topic name (``FLOWBUS_TOPIC_PREFIX`` applied).
    topic: str
    key: str | None
    sender: str | None
    #: The caller's trace context, taken when the event was sent.
    traceparent: str | None
    #: Schemaless Avro of ``data``, written with the signal's own schema.
    body: bytes
    value: bytes | None = None
    headers: cloudevents.KafkaHeaders | None = None
    #: The wire profile of the event.
    profile: WireProfile = FLOWBUS
    #: The Kafka key as written (the profile's key format); ``key`` itself until framed.
    wire_key: str | bytes | None = None
    #: The partition chosen for the profile's partitioner; -1: librdkafka's own choice.
    partition: int = -1

    def cloudevent_headers(self, dataschema: str | None = None) -> cloudevents.KafkaHeaders:
        """The event's binary-mode headers (``ce_dataschema`` only when given)."""
        return cloudevents.to_headers(
            self.metadata,
            partitionkey=self.key,
            sender=self.sender,
            dataschema=dataschema,
            traceparent=self.traceparent,
            openedx=self.profile.headers is HeaderStyle.OPENEDX,
        )


def prepare_event(
    serializer: EventSerializer,
    topic_prefix: str,
    signal: WorkflowSignal,
    metadata: EventMetadata,
    data: Mapping[str, Any],
    *,
    topic: str,
    key: str | None,
    sender: str | None,
    wire: str | None = None,
) -> PreparedEvent:
    """Encode ``data`` (raises :class:`~flowbus.errors.EncodeError` when it does not fit
    the schema) and name the event; nothing is framed or sent yet. ``wire``: the route's
    wire profile (default: the signal's)."""
    if wire is None and signal.wire == FLOWBUS.name:
        profile = FLOWBUS
        body = serializer.encode_body(signal, data)
    else:
        profile = get_profile(wire or signal.wire)
        body = serializer.encode_body(signal, data, profile)
    return PreparedEvent(
        signal,
        metadata,
        data,
        topic_prefix + topic,
        key,
        sender,
        cloudevents.current_traceparent(),
        body,
        profile=profile,
        wire_key=key,
    )
