"""Dead letters for the dead-letter unit tests: one sample, changed per test."""

from __future__ import annotations

from flowbus.consumer.dead_letter import DeadLetter, Reason

ORIGINAL_HEADERS = [("ce_type", b"org.flowbus.test.item.created.v1"), ("ce_id", b"id-1")]


def dead_letter(**changes: object) -> DeadLetter:
    """A dead letter of ``events[2]@17`` (invalid data), with ``changes`` to its fields."""
    fields: dict[str, object] = {
        "reason": Reason.INVALID_DATA,
        "error": ValueError("field 'x' missing"),
        "topic": "events",
        "partition": 2,
        "offset": 17,
        "key": b"k",
        "value": b"v",
        "headers": ORIGINAL_HEADERS,
        "group": "workers",
    }
    return DeadLetter(**(fields | changes))
