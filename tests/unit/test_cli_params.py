"""Parsing of the operator commands' times and partition offsets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from flowbus.consumer.cli_params import PartitionOffset, parse_partition_offset, parse_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-01-31T14:00:00Z", datetime(2025, 1, 31, 14, tzinfo=UTC)),
        ("2025-01-31T14:00:00", datetime(2025, 1, 31, 14, tzinfo=UTC)),  # no offset: UTC
        ("2025-01-31T15:00:00+01:00", datetime(2025, 1, 31, 14, tzinfo=UTC)),
        ("2025-01-31", datetime(2025, 1, 31, tzinfo=UTC)),
    ],
)
def test_parse_time(text, expected):
    parsed = parse_time(text)

    assert parsed == expected
    assert parsed.tzinfo is UTC


def test_parse_time_converts_offsets_to_utc():
    parsed = parse_time("2025-01-31T15:30:00-02:30")

    assert parsed.utcoffset() == timedelta(0)
    assert parsed == datetime(2025, 1, 31, 15, 30, tzinfo=timezone(-timedelta(hours=2.5)))


def test_parse_time_rejects_garbage():
    with pytest.raises(ValueError, match="'soon' is not an ISO 8601 time"):
        parse_time("soon")


@pytest.mark.parametrize(
    ("text", "required", "expected"),
    [
        ("0:42", True, PartitionOffset(0, 42)),
        (" 3:0 ", True, PartitionOffset(3, 0)),
        ("42", False, PartitionOffset(None, 42)),
        ("1:7", False, PartitionOffset(1, 7)),
    ],
)
def test_parse_partition_offset(text, required, expected):
    assert parse_partition_offset(text, partition_required=required) == expected


@pytest.mark.parametrize(
    ("text", "required", "message"),
    [
        ("42", True, "'42' is not PARTITION:OFFSET"),
        ("a:1", True, "'a:1' is not PARTITION:OFFSET with non-negative integers"),
        ("1:-1", True, "non-negative integers"),
        ("1:", False, "'1:' is not OFFSET or PARTITION:OFFSET"),
        ("", False, "is not OFFSET or PARTITION:OFFSET"),
    ],
)
def test_parse_partition_offset_rejects(text, required, message):
    with pytest.raises(ValueError, match=message):
        parse_partition_offset(text, partition_required=required)


def test_partition_offset_str():
    assert (str(PartitionOffset(2, 5)), str(PartitionOffset(None, 5))) == ("2:5", "5")
