"""Dead-letter records read back: header accessors, original headers, filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flowbus.consumer.deadletter import DeadLetter, Reason
from flowbus.consumer.dlq_records import DeadLetterFilter, DeadLetterRecord

WHEN = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ORIGINAL_HEADERS = [("ce_type", b"org.flowbus.test.item.created.v1"), ("ce_id", b"id-1")]


def record(
    *, when: datetime = WHEN, headers: list | None = None, partition: int = 0, offset: int = 4
) -> DeadLetterRecord:
    dead = DeadLetter(
        reason=Reason.INVALID_DATA,
        error=ValueError("field 'x' missing"),
        topic="events",
        partition=2,
        offset=17,
        key=b"k",
        value=b"v",
        headers=ORIGINAL_HEADERS,
        group="workers",
    )
    return DeadLetterRecord(
        topic="events.dlq",
        partition=partition,
        offset=offset,
        key=dead.key,
        value=dead.value,
        headers=tuple(headers if headers is not None else dead.record_headers(now=when)),
    )


def test_accessors_read_the_dead_letter_headers():
    found = record()

    assert found.position == "0:4"
    assert (found.event_type, found.event_id) == ("org.flowbus.test.item.created.v1", "id-1")
    assert found.reason == "invalid-data"
    assert found.error_type == "builtins.ValueError"
    assert found.error_message == "field 'x' missing"
    assert found.group == "workers"
    assert found.origin == "events[2]@17"
    assert found.dead_lettered_at == WHEN


def test_original_headers_and_message_drop_the_dead_letter_headers():
    found = record()
    message = found.as_original_message()

    assert found.original_headers() == ORIGINAL_HEADERS
    assert (message.topic(), message.partition(), message.offset()) == ("events", 2, 17)
    assert message.headers() == ORIGINAL_HEADERS
    assert (message.key(), message.value()) == (b"k", b"v")


def test_records_without_dead_letter_headers_read_as_unknown():
    found = record(headers=[("flowbus-dlq-time", b"yesterday")])

    assert found.origin == "?[?]@?"
    assert found.reason is None and found.event_type is None
    assert found.dead_lettered_at is None


@pytest.mark.parametrize(
    ("selection", "matches"),
    [
        (DeadLetterFilter(), True),
        (DeadLetterFilter(event_type="org.flowbus.test.*"), True),
        (DeadLetterFilter(event_type="org.flowbus.test.item.created.v1"), True),
        (DeadLetterFilter(event_type="*.deleted.*"), False),
        (DeadLetterFilter(since=WHEN), True),  # inclusive
        (DeadLetterFilter(until=WHEN), False),  # exclusive
        (DeadLetterFilter(since=WHEN - timedelta(hours=1), until=WHEN + timedelta(hours=1)), True),
        (DeadLetterFilter(since=WHEN + timedelta(seconds=1)), False),
        (DeadLetterFilter(positions=frozenset({(0, 4)})), True),
        (DeadLetterFilter(positions=frozenset({(1, 4), (0, 5)})), False),
    ],
)
def test_filter(selection, matches):
    assert selection.matches(record()) is matches


def test_time_filters_leave_out_records_without_a_readable_time():
    timeless = record(headers=[*ORIGINAL_HEADERS])

    assert DeadLetterFilter(event_type="org.*").matches(timeless)
    assert not DeadLetterFilter(since=WHEN - timedelta(days=999)).matches(timeless)
