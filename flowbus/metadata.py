"""Event metadata: the envelope every flowbus event carries, on every side of the bus.

The fields follow Open edX's event metadata, which in turn maps onto CloudEvents
attributes (``id``, ``type``, ``source``, ``time``, ``specversion``) plus flowbus's own
extensions (``minorversion``, ``sourcehost``, ``sourcelib``).
"""

from __future__ import annotations

import functools
import re
import socket
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

import flowbus
from flowbus.event_ids import new_event_id
from flowbus.prebuilt import FILLABLE, fill
from flowbus.settings import get_settings

__all__ = ["EventMetadata", "default_source", "flowbus_version_tuple", "new_metadata"]

_LEADING_DIGITS = re.compile(r"\d+")


def flowbus_version_tuple(version: str | None = None) -> tuple[int, ...]:
    """flowbus's version as ints: ``"1.2.3"`` -> ``(1, 2, 3)``; ``"1.2rc1"`` -> ``(1, 2)``.

    Parsing stops at the first dotted part that does not start with a digit, and a part
    such as ``"0rc1"`` contributes only its leading number.
    """
    return _parse_version(version if version is not None else flowbus.__version__)


@functools.lru_cache(maxsize=16)
def _parse_version(version: str) -> tuple[int, ...]:
    # Cached: it is the default ``sourcelib`` of every event's metadata.
    parts: list[int] = []
    for part in version.split("."):
        match = _LEADING_DIGITS.match(part)
        if match is None:
            break
        parts.append(int(match.group()))
        if match.end() != len(part):
            break
    return tuple(parts)


def default_source() -> str:
    """``flowbus/<service name>/app``, the service name coming from the settings."""
    return f"flowbus/{get_settings().service_name}/app"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class EventMetadata(BaseModel):
    """The metadata of one event. Frozen: an event's envelope never changes once created.

    ``time`` must be timezone-aware and is stored in UTC; naive datetimes are rejected.
    Round trip: ``EventMetadata.from_json(metadata.to_json()) == metadata``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: UUID = Field(default_factory=new_event_id)
    event_type: str = Field(min_length=1)
    minorversion: int = Field(default=0, ge=0)
    source: str = Field(default_factory=default_source, min_length=1)
    sourcehost: str = Field(default_factory=socket.gethostname)
    sourcelib: tuple[int, ...] = Field(default_factory=flowbus_version_tuple)
    time: AwareDatetime = Field(default_factory=_utc_now)
    specversion: Literal["1.0"] = "1.0"

    @field_validator("time")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    def to_json(self) -> str:
        """The metadata as a JSON object (every field, ``minorversion`` included)."""
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> EventMetadata:
        """Parse what :meth:`to_json` wrote."""
        return cls.model_validate_json(text)


_TEMPLATE_ID = UUID(int=0)
_TEMPLATE_TIME = datetime(1970, 1, 1, tzinfo=UTC)
#: The fields a new event's metadata was given (the others took their defaults).
_GIVEN = frozenset({"event_type", "minorversion"})


@functools.lru_cache(maxsize=256)
def _template(event_type: str, minorversion: int, source: str, host: str) -> dict[str, Any]:
    """The validated values every new event with these constants shares (raises pydantic's
    ``ValidationError`` as ``EventMetadata`` would)."""
    return dict(
        EventMetadata(
            id=_TEMPLATE_ID,
            event_type=event_type,
            minorversion=minorversion,
            source=source,
            sourcehost=host,
            time=_TEMPLATE_TIME,
        ).__dict__
    )


@functools.cache
def _hostname() -> str:
    """``socket.gethostname()``, asked once per process (a system call per event, else; a
    forked child has its parent's host)."""
    return socket.gethostname()


def new_metadata(event_type: str, minorversion: int = 0) -> EventMetadata:
    """``EventMetadata(event_type=..., minorversion=...)``, a new event's metadata, in a
    fraction of the time: what every event of the type shares is validated once, and the
    new id and time are what validation would keep (a UUID1, an aware UTC datetime)."""
    if not FILLABLE:
        return EventMetadata(event_type=event_type, minorversion=minorversion)
    values = dict(_template(event_type, minorversion, default_source(), _hostname()))
    values["id"] = new_event_id()
    values["time"] = datetime.now(UTC)
    return fill(EventMetadata, values, set(_GIVEN))
