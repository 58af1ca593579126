"""What an operator sees of one record: where it is, its event's metadata, its data decoded.

Shared by ``flowbus tail`` and ``flowbus dlq show --data``. Decoding is the worker's own
(:func:`~consumer.decoding.decode_record`): a record the worker would dead-letter is shown
with the same reason and failure kind, never skipped and never raised. Its metadata then
comes from the headers as written, as far as they are readable.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flowbus import cloudevents
from flowbus.json_output import dumps, to_json_value

from .decoding import DecodeFailed, decode_record
from .failures import Failure, FailureKind
from .middleware import ConsumedRecord

if TYPE_CHECKING:
    from flowbus.avro.serializer import EventDeserializer

__all__ = ["RecordView", "view_record"]


@dataclasses.dataclass(frozen=True)
class RecordView:
    """One record as shown: ``data`` when it decoded, else ``failure``."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    event_type: str | None
    event_id: str | None
    time: str | None
    source: str | None
    sender: str | None
    data: dict[str, Any] | None
    failure: Failure | None
    timestamp: datetime | None = None

    @property
    def location(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"

    @property
    def key_text(self) -> str | None:
        """The key as text (bytes that are not UTF-8 as ``\\x..`` escapes)."""
        return None if self.key is None else self.key.decode("utf-8", "backslashreplace")

    def failure_json(self) -> dict[str, str] | None:
        if self.failure is None:
            return None
        error = self.failure.error
        return {
            "reason": self.failure.reason.value,
            "kind": self.failure.kind.value,
            "error_type": type(error).__name__,
            "message": str(error),
        }

    def to_json(self) -> dict[str, Any]:
        """The same keys for every record (JSON values only); ``data`` or ``failure`` is
        ``null``."""
        shown: dict[str, Any] = to_json_value(
            {
                "topic": self.topic,
                "partition": self.partition,
                "offset": self.offset,
                "timestamp": self.timestamp,
                "key": self.key_text,
                "event_type": self.event_type,
                "id": self.event_id,
                "time": self.time,
                "source": self.source,
                "sender": self.sender,
                "data": self.data,
                "failure": self.failure_json(),
            }
        )
        return shown

    def text_lines(self) -> list[str]:
        """A heading line, then the data (compact JSON) or the failure, indented."""
        heading = "  ".join(
            [
                self.location,
                self.time or "?",
                self.event_type or "?",
                self.event_id or "?",
                f"key={self.key_text if self.key is not None else 'null'}",
                f"source={self.source or '?'}",
            ]
        )
        if self.failure is None:
            return [heading, f"    {dumps(self.data)}"]
        failure = self.failure_json() or {}
        # A data failure is for good (the worker dead-letters it); an infrastructure one
        # (the registry unreachable) says nothing about the record.
        label = "POISON" if self.failure.kind is FailureKind.DATA else "NOT DECODED"
        return [
            heading,
            f"    {label} {failure['reason']} ({failure['kind']} failure): "
            f"{failure['error_type']}: {failure['message']}",
        ]


def view_record(
    record: ConsumedRecord, deserializer: EventDeserializer, *, timestamp_ms: int | None = None
) -> RecordView:
    """Decode ``record`` as the worker would and describe it; never raises for its content."""
    stamp = None if timestamp_ms is None else datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    where = (record.topic, record.partition, record.offset, record.key)
    try:
        event = decode_record(record, deserializer)
    except DecodeFailed as failed:
        headers = _readable_headers(record)
        return RecordView(
            *where,
            event_type=headers.get(cloudevents.TYPE),
            event_id=headers.get(cloudevents.ID),
            time=headers.get(cloudevents.TIME),
            source=headers.get(cloudevents.SOURCE),
            sender=headers.get(cloudevents.SENDER),
            data=None,
            failure=failed.failure,
            timestamp=stamp,
        )
    metadata = event.metadata
    return RecordView(
        *where,
        event_type=metadata.event_type,
        event_id=str(metadata.id),
        time=cloudevents.format_time(metadata.time),
        source=metadata.source,
        sender=event.sender,
        data=event.data,
        failure=None,
        timestamp=stamp,
    )


def _readable_headers(record: ConsumedRecord) -> dict[str, str]:
    """The record's headers as text, first value of each name (for a record that failed)."""
    found: dict[str, str] = {}
    for name, raw in cloudevents.header_pairs(record.headers):
        found.setdefault(name.lower(), raw.decode("utf-8", "replace"))
    return found
