"""Dead-letter records: a message that could not be handled, kept with the reason.

A dead-letter record carries the original key, value and headers unchanged, plus
``flowbus-dlq-*`` headers saying what went wrong and where the message came from. The
original offset is committed only once the broker has acknowledged the dead letter, so
a message is never lost between its topic and the dead-letter topic.

A message too large for the dead-letter topic (the broker accepted it on its own topic,
but the dead-letter headers push it over a limit) is dead-lettered as a *pointer*: no
value, the ``flowbus-dlq-pointer`` header set, and the original's size and SHA-256, so
that it can be found (and checked) on its own topic while retention keeps it there.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple

from flowbus import cloudevents

PREFIX = "flowbus-dlq-"
REASON = f"{PREFIX}reason"
ERROR_TYPE = f"{PREFIX}error-type"
ERROR_MESSAGE = f"{PREFIX}error-message"
FAILED_RECEIVERS = f"{PREFIX}failed-receivers"
ATTEMPTS = f"{PREFIX}attempts"
ORIGINAL_TOPIC = f"{PREFIX}original-topic"
ORIGINAL_PARTITION = f"{PREFIX}original-partition"
ORIGINAL_OFFSET = f"{PREFIX}original-offset"
GROUP = f"{PREFIX}group"
TIME = f"{PREFIX}time"
#: Set (to ``"true"``) on a pointer record: the original value is not in this record.
POINTER = f"{PREFIX}pointer"
ORIGINAL_SIZE = f"{PREFIX}original-size"
ORIGINAL_SHA256 = f"{PREFIX}original-sha256"
#: Longest error message kept in a header; receivers' messages can be long.
MAX_MESSAGE_CHARS = 2000
DEFAULT_SUFFIX = ".dlq"


class Reason(enum.StrEnum):
    """Why a message was dead-lettered."""

    MALFORMED_HEADERS = "malformed-headers"  # a required CloudEvents header missing or bad
    UNKNOWN_EVENT_TYPE = "unknown-event-type"  # no signal for ce_type here
    UNDECODABLE = "undecodable"  # the value is not valid data for its schema / framing
    INVALID_DATA = "invalid-data"  # decoded, but the signal's validation refused it
    RECEIVER_FAILED = "receiver-failed"  # receivers still failing after the retries
    TIMEOUT = "timeout"  # a receiver still running at its deadline, after the retries


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """One message to dead-letter, and why."""

    reason: Reason
    error: BaseException
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]
    group: str
    attempts: int = 1
    failed_receivers: Sequence[str] = ()

    def record_headers(self, now: datetime | None = None) -> cloudevents.KafkaHeaders:
        """The original headers (any earlier dead-letter headers dropped) plus ours."""
        message = str(self.error)[:MAX_MESSAGE_CHARS]
        ours = {
            REASON: self.reason.value,
            ERROR_TYPE: f"{type(self.error).__module__}.{type(self.error).__qualname__}",
            ERROR_MESSAGE: message,
            FAILED_RECEIVERS: ",".join(self.failed_receivers),
            ATTEMPTS: str(self.attempts),
            ORIGINAL_TOPIC: self.topic,
            ORIGINAL_PARTITION: str(self.partition),
            ORIGINAL_OFFSET: str(self.offset),
            GROUP: self.group,
            TIME: cloudevents.format_time(now or datetime.now(UTC)),
        }
        headers: cloudevents.KafkaHeaders = [
            (k, v) for k, v in self.headers if not k.startswith(PREFIX)
        ]
        headers.extend((k, v.encode()) for k, v in ours.items())
        return headers

    def pointer(self, *, keep_original: bool = True) -> DeadLetterRecordParts:
        """The pointer record standing for this dead letter: no value, the original's size
        and SHA-256, and (with ``keep_original``) its key and headers."""
        value = self.value or b""
        size_and_digest = [
            (POINTER, b"true"),
            (ORIGINAL_SIZE, str(len(value)).encode()),
            (ORIGINAL_SHA256, hashlib.sha256(value).hexdigest().encode()),
        ]
        source = self if keep_original else dataclasses.replace(self, key=None, headers=())
        return DeadLetterRecordParts(source.key, None, [*source.record_headers(), *size_and_digest])

    def record(self) -> DeadLetterRecordParts:
        """The dead-letter record: the original key and value, the headers with ours."""
        return DeadLetterRecordParts(self.key, self.value, self.record_headers())


class DeadLetterRecordParts(NamedTuple):
    """Key, value and headers of a record to produce to a dead-letter topic."""

    key: bytes | None
    value: bytes | None
    headers: cloudevents.KafkaHeaders


def dead_letter_topic(topic: str, suffix: str = DEFAULT_SUFFIX) -> str:
    return f"{topic}{suffix}"


def read_dead_letter_headers(headers: cloudevents.Headers | None) -> dict[str, str]:
    """The ``flowbus-dlq-*`` headers of a dead-letter record, decoded (names without prefix)."""
    found: dict[str, str] = {}
    for name, raw in cloudevents.header_pairs(headers):
        if name.startswith(PREFIX):
            found[name[len(PREFIX) :]] = raw.decode(errors="replace")
    return found
