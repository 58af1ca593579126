"""Offset reset plans: new offsets per target and what a move re-delivers or skips."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flowbus.consumer.offset_reset import (
    PartitionMove,
    ToEarliest,
    ToLatest,
    ToOffsets,
    ToTime,
    resolve_offset,
)
from flowbus.errors import InvalidResetTargetError as InvalidReplayTargetError


@pytest.mark.parametrize(
    ("target", "by_time", "expected"),
    [
        (ToEarliest(), None, 10),
        (ToLatest(), None, 50),
        (ToTime(datetime(2025, 1, 1, tzinfo=UTC)), 23, 23),
        (ToTime(datetime(2025, 1, 1, tzinfo=UTC)), -1, 50),  # no record at or after: the end
        (ToOffsets({0: 10}), None, 10),
        (ToOffsets({0: 50}), None, 50),
    ],
)
def test_resolve_offset(target, by_time, expected):
    assert resolve_offset(target, 0, 10, 50, by_time=by_time) == expected


@pytest.mark.parametrize("offset", [9, 51])
def test_explicit_offset_outside_the_range_is_refused(offset):
    with pytest.raises(InvalidReplayTargetError, match=rf"offset {offset} is outside .*\[10, 50\]"):
        resolve_offset(ToOffsets({3: offset}), 3, 10, 50)


def test_targets_refuse_naive_times_and_empty_offsets():
    with pytest.raises(InvalidReplayTargetError, match="no UTC offset"):
        ToTime(datetime(2025, 1, 1))
    with pytest.raises(InvalidReplayTargetError, match="no partition offsets"):
        ToOffsets({})


@pytest.mark.parametrize(
    ("current", "new", "redelivered", "skipped", "effect"),
    [
        (40, 20, 20, 0, "re-delivers 20 message(s)"),
        (20, 40, 0, 20, "skips 20 message(s)"),
        (30, 30, 0, 0, "unchanged"),
        (5, 50, 0, 40, "skips 40 message(s)"),  # below the earliest: only what exists counts
        (60, 50, 0, 0, "no message re-delivered or skipped"),  # beyond the end (truncated)
        (None, 20, 0, 0, "no committed offset yet; 30 message(s) to consume"),
    ],
)
def test_partition_move_counts(current, new, redelivered, skipped, effect):
    move = PartitionMove(partition=0, low=10, high=50, current=current, new=new)

    assert (move.redelivered, move.skipped, move.describe()) == (redelivered, skipped, effect)
