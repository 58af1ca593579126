"""Dead-letter records read back: header accessors, original headers, filters, pointers."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sample_dead_letters import ORIGINAL_HEADERS, dead_letter

from flowbus.consumer import dead_letter as deadletter
from flowbus.consumer.dead_letter import DeadLetter, Reason
from flowbus.consumer.dead_letter_records import (
    DeadLetterFilter,
    DeadLetterRecord,
    Republisher,
    check_original,
    resolve_pointer,
)
from flowbus.errors import (
    DeadLetterPointerError,
    DeadLetterQueueError,
    PointerOriginalMismatchError,
    PointerOriginalNotFoundError,
)

WHEN = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def record(
    *, when: datetime = WHEN, headers: list | None = None, partition: int = 0, offset: int = 4
) -> DeadLetterRecord:
    dead = dead_letter()
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


def test_original_headers_and_record_drop_the_dead_letter_headers():
    found = record()
    original = found.as_original_record()

    assert found.original_headers() == ORIGINAL_HEADERS
    assert (original.topic, original.partition, original.offset) == ("events", 2, 17)
    assert original.headers == ORIGINAL_HEADERS
    assert (original.key, original.value) == (b"k", b"v")


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


# --- pointer records ---------------------------------------------------------------------------

BIG = b"\x00\x00\x00\x00\x07" + b"y" * 2048


def pointer_record(*, keep_original: bool = True) -> tuple[DeadLetter, DeadLetterRecord]:
    dead = dead_letter(reason=Reason.RECEIVER_FAILED, value=BIG)
    key, value, headers = dead.pointer(keep_original=keep_original)
    return dead, DeadLetterRecord("events.dlq", 0, 9, key, value, tuple(headers))


def original_record(value: bytes | None = BIG, headers: list | None = None) -> DeadLetterRecord:
    return DeadLetterRecord(
        "events", 2, 17, b"k", value, tuple(ORIGINAL_HEADERS if headers is None else headers)
    )


def test_pointer_records_are_recognised():
    _, pointer = pointer_record()

    assert pointer.is_pointer
    assert not record().is_pointer
    assert pointer.original_size == len(BIG)
    assert pointer.original_sha256 == hashlib.sha256(BIG).hexdigest()
    assert pointer.location == "events.dlq[0]@9"
    assert pointer.origin == "events[2]@17"
    assert record().original_size is None and record().original_sha256 is None


def test_pointer_header_must_say_true():
    headers = [
        (k, b"false" if k == deadletter.POINTER else v) for k, v in pointer_record()[1].headers
    ]

    assert not record(headers=headers).is_pointer


@pytest.mark.parametrize("keep_original", [True, False])
def test_check_original_completes_the_pointer_with_the_original(keep_original):
    _, pointer = pointer_record(keep_original=keep_original)

    completed = check_original(pointer, original_record())

    assert not completed.is_pointer
    assert (completed.key, completed.value) == (b"k", BIG)
    assert completed.original_headers() == ORIGINAL_HEADERS
    assert completed.origin == "events[2]@17"
    assert completed.reason == "receiver-failed" and completed.group == "workers"
    assert completed.error_message == "field 'x' missing"
    assert completed.location == pointer.location
    original = completed.as_original_record()
    assert (original.value, original.headers) == (BIG, ORIGINAL_HEADERS)


def test_check_original_drops_dead_letter_headers_the_original_carries():
    _, pointer = pointer_record()
    stale = [*ORIGINAL_HEADERS, (deadletter.REASON, b"undecodable")]

    completed = check_original(pointer, original_record(headers=stale))

    assert completed.original_headers() == ORIGINAL_HEADERS
    assert completed.reason == "receiver-failed"  # the pointer's, not the stale one


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (BIG[:-1], f"{len(BIG) - 1} bytes"),  # other size
        (BIG[:-1] + b"z", f"SHA-256 {hashlib.sha256(BIG[:-1] + b'z').hexdigest()}"),  # same size
        (None, "0 bytes"),
    ],
)
def test_check_original_refuses_another_record(value, why):
    _, pointer = pointer_record()

    with pytest.raises(PointerOriginalMismatchError) as caught:
        check_original(pointer, original_record(value))

    message = str(caught.value)
    assert message.startswith("pointer record events.dlq[0]@9: the record at events[2]@17 is not")
    assert why in message
    assert f"the pointer says {len(BIG)} bytes" in message
    assert message.endswith("not replayed")
    assert isinstance(caught.value, DeadLetterPointerError)
    assert isinstance(caught.value, DeadLetterQueueError)
    assert (caught.value.position, caught.value.origin) == ("events.dlq[0]@9", "events[2]@17")
    assert "yyyy" not in message  # no payload in the message


def test_check_original_refuses_a_pointer_without_size_or_digest():
    _, pointer = pointer_record()
    headers = tuple((k, v) for k, v in pointer.headers if k != deadletter.ORIGINAL_SHA256)
    damaged = dataclasses.replace(pointer, headers=headers)

    with pytest.raises(PointerOriginalMismatchError, match="no readable"):
        check_original(damaged, original_record())


def test_resolve_pointer_leaves_ordinary_records_alone():
    plain = record()

    assert resolve_pointer(plain, {"bootstrap.servers": "127.0.0.1:1"}) is plain


def test_resolve_pointer_without_the_original_position_fails():
    _, pointer = pointer_record()
    headers = tuple((k, v) for k, v in pointer.headers if k != deadletter.ORIGINAL_OFFSET)

    with pytest.raises(PointerOriginalNotFoundError, match="position of its original is unknown"):
        resolve_pointer(dataclasses.replace(pointer, headers=headers), {})


def test_republisher_refuses_an_unresolved_pointer():
    _, pointer = pointer_record()

    republisher = Republisher({"bootstrap.servers": "127.0.0.1:1"}, timeout=1)
    with pytest.raises(DeadLetterPointerError, match="not been read back"):
        republisher.republish(pointer)
