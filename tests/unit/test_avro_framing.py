"""Framing detection: Confluent wire format vs Avro single-object encoding."""

from __future__ import annotations

import pytest

from flowbus.avro.framing import (
    Framing,
    confluent_header,
    read_frame,
    single_object_header,
)
from flowbus.errors import DecodeError, TruncatedDataError, WrongMagicByteError

FINGERPRINT = bytes(range(1, 9))


def test_confluent_header_is_zero_and_big_endian_id() -> None:
    assert confluent_header(258) == b"\x00\x00\x00\x01\x02"


def test_single_object_header_is_c301_and_fingerprint() -> None:
    assert single_object_header(FINGERPRINT) == b"\xc3\x01" + FINGERPRINT


def test_detects_confluent_wire_format() -> None:
    frame = read_frame(confluent_header(7) + b"body")
    assert frame.framing is Framing.CONFLUENT
    assert frame.schema_id == 7
    assert bytes(frame.body) == b"body"


def test_detects_single_object_encoding() -> None:
    frame = read_frame(single_object_header(FINGERPRINT) + b"body")
    assert frame.framing is Framing.SINGLE_OBJECT
    assert frame.fingerprint == FINGERPRINT
    assert bytes(frame.body) == b"body"


def test_empty_body_after_header_is_allowed() -> None:
    assert bytes(read_frame(confluent_header(1)).body) == b""


@pytest.mark.parametrize(
    "value",
    [b"", b"\x00", b"\x00\x00\x00\x01", b"\xc3", b"\xc3\x01", b"\xc3\x01" + FINGERPRINT[:7]],
)
def test_truncated_header(value: bytes) -> None:
    with pytest.raises(TruncatedDataError) as caught:
        read_frame(value)
    assert isinstance(caught.value, DecodeError)
    assert caught.value.reason


@pytest.mark.parametrize("value", [b"{json}", b"\x01\x00\x00\x00\x01", b"\xc3\x02" + FINGERPRINT])
def test_wrong_magic_byte(value: bytes) -> None:
    with pytest.raises(WrongMagicByteError) as caught:
        read_frame(value)
    assert caught.value.prefix == value[:2]
    assert value[:2].hex(" ") in caught.value.reason
