"""Wire profiles: how an event is laid out on Kafka, chosen per signal or per route.

A profile bundles the strategies the Avro layer, the headers and the producer are given;
the signal itself only names its profile (``WorkflowSignal(..., wire="openedx")``), and a
forwarding route may choose another (``{"topic": ..., "wire": "openedx"}``).

``flowbus`` (the default): the record is named after the event type, datetimes are
``timestamp-micros``, the extensions travel as ``ce_sourcehost`` / ``ce_sourcelib``, the
key is raw UTF-8 and the partitioner is librdkafka's ``murmur2_random`` (the Java client's).

``openedx``: as edx-event-bus-kafka writes it. The record is ``<event type>.CloudEvent``
with models named by class name in that namespace, datetimes are ISO 8601 strings,
``sourcehost`` / ``sourcelib`` are unprefixed and ``ce_time`` ends in ``+00:00``, the key
is an Avro ``"string"`` in Confluent framing (subject ``<topic>-string``, so a registry is
needed), and the partition is librdkafka's default ``consistent_random``: the CRC-32 of the
key bytes modulo the partition count. Types Open edX cannot carry are refused when a
signal or route chooses it.

A consumer needs no profile: it tells them apart by the writer schema's record name.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from flowbus.avro.schema import FLOWBUS_NAMING, OPENEDX_NAMING, AvroNaming
from flowbus.errors import ConfigurationError

__all__ = [
    "FLOWBUS",
    "OPENEDX",
    "PROFILES",
    "HeaderStyle",
    "KeyFormat",
    "WireProfile",
    "get_profile",
]


class KeyFormat(enum.Enum):
    """How the record key is written."""

    #: The key's UTF-8 bytes.
    RAW = "raw"
    #: An Avro ``"string"`` in Confluent framing, registered under ``<topic>-string``.
    AVRO_STRING = "avro-string"


class HeaderStyle(enum.Enum):
    """How the CloudEvents headers are written (both are read)."""

    #: ``ce_sourcehost`` / ``ce_sourcelib``; ``ce_time`` with ``Z``.
    FLOWBUS = "flowbus"
    #: unprefixed ``sourcehost`` / ``sourcelib``, ``ce_datacontenttype``; ``ce_time`` with
    #: ``+00:00``.
    OPENEDX = "openedx"


@dataclass(frozen=True, slots=True, eq=False)
class WireProfile:
    """One wire layout: Avro naming, key format, header style and partitioner."""

    name: str
    naming: AvroNaming
    key_format: KeyFormat
    headers: HeaderStyle
    #: librdkafka's name of the partitioner the profile's peers use.
    partitioner: str

    def key_subject(self, topic: str) -> str:
        """The registry subject of an :attr:`KeyFormat.AVRO_STRING` key on ``topic``."""
        return f"{topic}-string"


FLOWBUS = WireProfile(
    "flowbus", FLOWBUS_NAMING, KeyFormat.RAW, HeaderStyle.FLOWBUS, "murmur2_random"
)
OPENEDX = WireProfile(
    "openedx", OPENEDX_NAMING, KeyFormat.AVRO_STRING, HeaderStyle.OPENEDX, "consistent_random"
)
#: Every profile by name.
PROFILES: Mapping[str, WireProfile] = {profile.name: profile for profile in (FLOWBUS, OPENEDX)}


def get_profile(name: str | WireProfile) -> WireProfile:
    """The profile called ``name``; :class:`~flowbus.errors.ConfigurationError` if none is."""
    if isinstance(name, WireProfile):
        return name
    try:
        return PROFILES[name]
    except (KeyError, TypeError):
        raise ConfigurationError(
            f"unknown wire profile {name!r} (profiles: {', '.join(PROFILES)})"
        ) from None
