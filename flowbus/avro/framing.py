"""The two framings of an Avro body in a Kafka message value, told apart by the first bytes.

* Confluent wire format (with a schema registry): ``00``, the schema id as 4 bytes
  big-endian, the body.
* Avro single-object encoding (registry-free, the default): ``C3 01``, the CRC-64-AVRO
  fingerprint of the writer schema's Parsing Canonical Form as 8 bytes little-endian, the
  body. The decoder looks the fingerprint up in the schema directory (``schemas/``).
"""

from __future__ import annotations

import enum
import struct
from typing import NamedTuple

from flowbus.errors import TruncatedDataError, WrongMagicByteError

__all__ = [
    "CONFLUENT_HEADER_SIZE",
    "CONFLUENT_MAGIC",
    "SINGLE_OBJECT_HEADER_SIZE",
    "SINGLE_OBJECT_MAGIC",
    "Frame",
    "Framing",
    "confluent_header",
    "read_frame",
    "single_object_header",
]

CONFLUENT_MAGIC = b"\x00"
CONFLUENT_HEADER_SIZE = 5
SINGLE_OBJECT_MAGIC = b"\xc3\x01"
SINGLE_OBJECT_HEADER_SIZE = 10

_SCHEMA_ID = struct.Struct(">I")


class Framing(enum.Enum):
    """How the writer schema is named in front of the body."""

    CONFLUENT = "confluent"
    SINGLE_OBJECT = "single-object"


class Frame(NamedTuple):
    """The header of one message value: the framing, the writer schema reference, the body."""

    framing: Framing
    body: memoryview
    schema_id: int | None = None
    fingerprint: bytes | None = None


def confluent_header(schema_id: int) -> bytes:
    """``00`` + the registry schema id (4 bytes big-endian)."""
    return CONFLUENT_MAGIC + _SCHEMA_ID.pack(schema_id)


def single_object_header(fingerprint: bytes) -> bytes:
    """``C3 01`` + the 8-byte little-endian CRC-64-AVRO fingerprint."""
    if len(fingerprint) != 8:
        raise ValueError("a CRC-64-AVRO fingerprint has 8 bytes")
    return SINGLE_OBJECT_MAGIC + fingerprint


def read_frame(value: bytes) -> Frame:
    """Detect the framing of ``value`` and split header from body.

    Raises :class:`~flowbus.errors.TruncatedDataError` when ``value`` is shorter than its
    header and :class:`~flowbus.errors.WrongMagicByteError` when it starts with neither
    magic.
    """
    view = memoryview(value)
    if not view:
        raise TruncatedDataError("empty message value: no framing header")
    first = view[0]
    if first == 0:
        if len(view) < CONFLUENT_HEADER_SIZE:
            raise TruncatedDataError(
                f"Confluent wire format header needs {CONFLUENT_HEADER_SIZE} bytes, got {len(view)}"
            )
        (schema_id,) = _SCHEMA_ID.unpack_from(view, 1)
        return Frame(Framing.CONFLUENT, view[CONFLUENT_HEADER_SIZE:], schema_id=schema_id)
    if first == SINGLE_OBJECT_MAGIC[0] and (len(view) == 1 or view[1] == SINGLE_OBJECT_MAGIC[1]):
        if len(view) < SINGLE_OBJECT_HEADER_SIZE:
            raise TruncatedDataError(
                f"single-object encoding header needs {SINGLE_OBJECT_HEADER_SIZE} bytes, "
                f"got {len(view)}"
            )
        return Frame(
            Framing.SINGLE_OBJECT,
            view[SINGLE_OBJECT_HEADER_SIZE:],
            fingerprint=bytes(view[2:SINGLE_OBJECT_HEADER_SIZE]),
        )
    prefix = bytes(view[:2])
    raise WrongMagicByteError(
        f"message value starts with {prefix.hex(' ')}: neither the Confluent wire format "
        "(00) nor Avro single-object encoding (c3 01)",
        prefix,
    )
