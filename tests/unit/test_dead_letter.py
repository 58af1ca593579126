"""Dead letters as written: the full record and the pointer record for a too-large message."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import datetime

import sample_dead_letters
from sample_dead_letters import dead_letter

from flowbus.consumer import dead_letter as deadletter
from flowbus.consumer.dead_letter import DeadLetter, Reason

VALUE = b"\x00\x00\x00\x00\x07" + b"x" * 4096
ORIGINAL_HEADERS = [*sample_dead_letters.ORIGINAL_HEADERS, ("uber-trace-id", b"\xff\xfe")]
#: Left by an earlier trip through a dead-letter topic (a replayed pointer, say).
EARLIER = [
    (deadletter.REASON, b"undecodable"),
    (deadletter.POINTER, b"true"),
    (deadletter.ORIGINAL_SIZE, b"1"),
    (deadletter.ORIGINAL_SHA256, b"00" * 32),
]


def letter(**changes: object) -> DeadLetter:
    """A receiver failure of a large ``events[2]@17`` carrying a binary tracing header."""
    fields: dict[str, object] = {
        "reason": Reason.RECEIVER_FAILED,
        "error": RuntimeError("receiver exploded"),
        "key": b"case-1",
        "value": VALUE,
        "headers": ORIGINAL_HEADERS,
        "attempts": 3,
        "failed_receivers": ("app.on_created",),
    }
    return dead_letter(**(fields | changes))


def dlq_headers(headers: list[tuple[str, bytes]]) -> dict[str, bytes]:
    return {k: v for k, v in headers if k.startswith(deadletter.PREFIX)}


def test_record_keeps_key_value_and_headers() -> None:
    parts = letter().record()

    assert (parts.key, parts.value) == (b"case-1", VALUE)
    assert parts.headers[: len(ORIGINAL_HEADERS)] == ORIGINAL_HEADERS
    assert dlq_headers(parts.headers)[deadletter.REASON] == b"receiver-failed"
    assert deadletter.POINTER not in dlq_headers(parts.headers)


def test_pointer_has_no_value_and_the_originals_size_and_sha256() -> None:
    parts = letter().pointer()

    assert parts.value is None
    ours = dlq_headers(parts.headers)
    assert ours[deadletter.POINTER] == b"true"
    assert ours[deadletter.ORIGINAL_SIZE] == str(len(VALUE)).encode()
    assert ours[deadletter.ORIGINAL_SHA256] == hashlib.sha256(VALUE).hexdigest().encode()
    assert len(ours[deadletter.ORIGINAL_SHA256]) == 64


def test_pointer_carries_the_usual_dead_letter_headers() -> None:
    ours = dlq_headers(letter().pointer().headers)

    assert ours[deadletter.REASON] == b"receiver-failed"
    assert ours[deadletter.ERROR_TYPE] == b"builtins.RuntimeError"
    assert ours[deadletter.ERROR_MESSAGE] == b"receiver exploded"
    assert ours[deadletter.FAILED_RECEIVERS] == b"app.on_created"
    assert ours[deadletter.ATTEMPTS] == b"3"
    assert ours[deadletter.ORIGINAL_TOPIC] == b"events"
    assert ours[deadletter.ORIGINAL_PARTITION] == b"2"
    assert ours[deadletter.ORIGINAL_OFFSET] == b"17"
    assert ours[deadletter.GROUP] == b"workers"
    assert datetime.fromisoformat(ours[deadletter.TIME].decode()).tzinfo is not None


def test_pointer_keeps_the_original_key_and_headers_by_default() -> None:
    parts = letter().pointer()

    assert parts.key == b"case-1"
    assert [h for h in parts.headers if not h[0].startswith(deadletter.PREFIX)] == ORIGINAL_HEADERS


def test_pointer_without_the_original_drops_key_and_original_headers() -> None:
    parts = letter().pointer(keep_original=False)

    assert parts.key is None
    assert parts.value is None
    assert all(name.startswith(deadletter.PREFIX) for name, _ in parts.headers)
    ours = dlq_headers(parts.headers)
    assert ours[deadletter.ORIGINAL_TOPIC] == b"events"
    assert ours[deadletter.ORIGINAL_SHA256] == hashlib.sha256(VALUE).hexdigest().encode()


def test_pointer_does_not_repeat_earlier_dead_letter_headers() -> None:
    parts = letter(headers=[*ORIGINAL_HEADERS, *EARLIER]).pointer()

    counts = Counter(name for name, _ in parts.headers)
    assert {name: n for name, n in counts.items() if n > 1} == {}
    ours = dlq_headers(parts.headers)
    assert ours[deadletter.REASON] == b"receiver-failed"  # ours, not the earlier one
    assert ours[deadletter.ORIGINAL_SIZE] == str(len(VALUE)).encode()
    assert ours[deadletter.ORIGINAL_SHA256] == hashlib.sha256(VALUE).hexdigest().encode()


def test_pointer_of_a_null_value_describes_the_empty_value() -> None:
    ours = dlq_headers(letter(value=None).pointer().headers)

    assert ours[deadletter.ORIGINAL_SIZE] == b"0"
    assert ours[deadletter.ORIGINAL_SHA256] == hashlib.sha256(b"").hexdigest().encode()


def test_timeout_is_a_reason() -> None:
    parts = letter(reason=Reason.TIMEOUT).pointer()

    assert dlq_headers(parts.headers)[deadletter.REASON] == b"timeout"
