"""The event a webhook delivers, and its CloudEvents structured-mode JSON body."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic_core import to_jsonable_python

from flowbus.errors import WebhookError

if TYPE_CHECKING:
    from flowbus.metadata import EventMetadata

__all__ = ["CLOUDEVENTS_JSON", "WebhookEvent"]

#: Content type of a structured-mode CloudEvent in JSON.
CLOUDEVENTS_JSON = "application/cloudevents+json"

#: Attribute names, in body order. ``datacontenttype`` is always ``application/json``.
_ATTRIBUTES = (
    "specversion",
    "id",
    "source",
    "type",
    "time",
    "subject",
    "minorversion",
    "sourcehost",
    "sourcelib",
    "sender",
    "partitionkey",
)


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One decoded event, as the webhook forwarder hands it to the delivery engine.

    ``data`` must be a JSON object (nested dicts, lists, strings, finite numbers, booleans,
    ``None``); :meth:`from_metadata` converts models, UUIDs and datetimes. The CloudEvents
    extension attributes (``minorversion``, ``sourcehost``, ``sourcelib``, ``sender``,
    ``partitionkey``) appear in the body when set.
    """

    id: str
    type: str
    source: str
    time: datetime
    data: Mapping[str, Any] = field(default_factory=dict)
    specversion: str = "1.0"
    minorversion: int = 0
    sourcehost: str | None = None
    sourcelib: str | None = None
    sender: str | None = None
    subject: str | None = None
    partitionkey: str | None = None

    def __post_init__(self) -> None:
        for name in ("id", "type", "source", "specversion"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise WebhookError(f"webhook event {name} must be a non-empty string")
        if not isinstance(self.time, datetime) or self.time.tzinfo is None:
            raise WebhookError(f"webhook event {self.id}: time must be a timezone-aware datetime")
        if not isinstance(self.data, Mapping):
            raise WebhookError(f"webhook event {self.id}: data must be a JSON object")
        if not isinstance(self.minorversion, int) or self.minorversion < 0:
            raise WebhookError(f"webhook event {self.id}: minorversion must be an int >= 0")
        try:
            json.dumps(self.data, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise WebhookError(f"webhook event {self.id}: data is not JSON: {exc}") from None

    @classmethod
    def from_metadata(
        cls,
        metadata: EventMetadata,
        data: Mapping[str, Any],
        *,
        sender: str | None = None,
        subject: str | None = None,
        partitionkey: str | None = None,
    ) -> WebhookEvent:
        """Build from flowbus event metadata and signal data (models become JSON objects)."""
        jsonable = to_jsonable_python(dict(data), inf_nan_mode="null")
        return cls(
            id=str(metadata.id),
            type=metadata.event_type,
            source=metadata.source,
            time=metadata.time,
            data=jsonable,
            specversion=metadata.specversion,
            minorversion=metadata.minorversion,
            sourcehost=metadata.sourcehost or None,
            sourcelib=".".join(str(part) for part in metadata.sourcelib) or None,
            sender=sender,
            subject=subject,
            partitionkey=partitionkey,
        )

    @property
    def time_text(self) -> str:
        """``time`` in RFC 3339, UTC, with a ``Z`` suffix."""
        return self.time.astimezone(UTC).isoformat().replace("+00:00", "Z")

    def attributes(self) -> dict[str, str | int]:
        """The CloudEvents context attributes that are set (extensions included)."""
        values: dict[str, str | int] = {}
        for name in _ATTRIBUTES:
            value = self.time_text if name == "time" else getattr(self, name)
            if value is not None:
                values[name] = value
        return values

    def to_cloudevent(self) -> dict[str, Any]:
        """The structured-mode CloudEvent as a JSON-compatible dict."""
        return {**self.attributes(), "datacontenttype": "application/json", "data": self.data}

    def to_json_bytes(self) -> bytes:
        """The structured-mode body: compact UTF-8 JSON of :meth:`to_cloudevent`."""
        return json.dumps(
            self.to_cloudevent(), separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
