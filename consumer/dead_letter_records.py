"""Reading a dead-letter topic back, selecting records, and re-publishing them.

Reading assigns every partition by hand from the beginning up to the end offsets found at
start (so it terminates, however busy the topic) and never commits: no consumer group
is created or moved. Re-publishing sends a record's original key, value and headers
(the ``flowbus-dlq-*`` headers dropped) to its original topic, waiting for each
acknowledgement; the dead-letter record itself stays where it is.

A *pointer record* (``flowbus-dlq-pointer: true``) holds no value: the original message
was too large for the dead-letter topic. Replaying one first reads the original back
from its own topic and position (:func:`resolve_pointer`), and checks its size and
SHA-256 against the pointer's; what is re-published is that original, never the empty
value of the pointer.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from flowbus import cloudevents
from flowbus.errors import (
    DeadLetterPointerError,
    DeadLetterQueueError,
    DeadLetterRecordNotFoundError,
    DeliveryFailedError,
    DeliveryTimeoutError,
    PointerOriginalMismatchError,
    PointerOriginalNotFoundError,
    TopicNotFoundError,
)
from flowbus.kafka_delivery import produce_and_wait

from . import dead_letter
from .kafka_clients import topic_partitions
from .middleware import ConsumedRecord

log = logging.getLogger(__name__)

Header = tuple[str, bytes | None]
#: The headers that make a record a pointer record; dropped once its original is found.
POINTER_HEADERS = frozenset(
    {dead_letter.POINTER, dead_letter.ORIGINAL_SIZE, dead_letter.ORIGINAL_SHA256}
)


@dataclasses.dataclass(frozen=True)
class DeadLetterRecord:
    """One record of a dead-letter topic, as read back."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...]
    timestamp_ms: int | None = None

    @classmethod
    def from_message(cls, message: Message) -> DeadLetterRecord:
        kind, stamp = message.timestamp()
        return cls(
            topic=message.topic() or "",
            partition=message.partition() or 0,
            offset=message.offset() or 0,
            key=message.key(),
            value=message.value(),
            headers=tuple(_header_list(message.headers())),
            timestamp_ms=stamp if kind else None,
        )

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def location(self) -> str:
        """``topic[partition]@offset`` of this record."""
        return f"{self.topic}[{self.partition}]@{self.offset}"

    @property
    def dead_letter_info(self) -> dict[str, Any]:
        """The ``flowbus-dlq-*`` headers, names without the prefix."""
        return dead_letter.read_dead_letter_headers(self.headers)

    def header(self, name: str) -> str | None:
        for key, raw in self.headers:
            if key == name and raw is not None:
                return raw.decode(errors="replace")
        return None

    @property
    def event_type(self) -> str | None:
        return self.header(cloudevents.TYPE)

    @property
    def event_id(self) -> str | None:
        return self.header(cloudevents.ID)

    @property
    def reason(self) -> str | None:
        return self.header(dead_letter.REASON)

    @property
    def error_type(self) -> str | None:
        return self.header(dead_letter.ERROR_TYPE)

    @property
    def error_message(self) -> str | None:
        return self.header(dead_letter.ERROR_MESSAGE)

    @property
    def group(self) -> str | None:
        return self.header(dead_letter.GROUP)

    @property
    def original_topic(self) -> str | None:
        return self.header(dead_letter.ORIGINAL_TOPIC)

    @property
    def original_partition(self) -> int | None:
        return _as_int(self.header(dead_letter.ORIGINAL_PARTITION))

    @property
    def original_offset(self) -> int | None:
        return _as_int(self.header(dead_letter.ORIGINAL_OFFSET))

    @property
    def origin(self) -> str:
        """``topic[partition]@offset`` of the message that was dead-lettered."""
        partition, offset = self.original_partition, self.original_offset
        return (
            f"{self.original_topic or '?'}[{'?' if partition is None else partition}]"
            f"@{'?' if offset is None else offset}"
        )

    @property
    def is_pointer(self) -> bool:
        """A pointer record: no value here; the original is on its topic at :attr:`origin`."""
        return self.header(dead_letter.POINTER) == "true"

    @property
    def original_size(self) -> int | None:
        """A pointer record's original value size in bytes (None if absent or unreadable)."""
        return _as_int(self.header(dead_letter.ORIGINAL_SIZE))

    @property
    def original_sha256(self) -> str | None:
        """A pointer record's original value SHA-256, lowercase hex (None if absent)."""
        digest = self.header(dead_letter.ORIGINAL_SHA256)
        return None if digest is None else digest.strip().lower()

    @property
    def dead_lettered_at(self) -> datetime | None:
        """The ``flowbus-dlq-time`` header as a time; None if absent or unreadable."""
        text = self.header(dead_letter.TIME)
        if text is None:
            return None
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else None

    def as_original_record(self) -> ConsumedRecord:
        """The record as it was before it was dead-lettered (topic, position, headers)."""
        return ConsumedRecord(
            self.original_topic or "",
            self.original_partition or 0,
            self.original_offset or 0,
            self.key,
            self.value,
            [*self.original_headers()],
        )

    def original_headers(self) -> list[Header]:
        """The headers the original message had: ours (``flowbus-dlq-*``) removed."""
        return [(k, v) for k, v in self.headers if not k.startswith(dead_letter.PREFIX)]


@dataclasses.dataclass(frozen=True)
class DeadLetterFilter:
    """Which records to take. ``event_type`` is a glob on ``ce_type``; ``since`` (inclusive)
    and ``until`` (exclusive) compare with ``flowbus-dlq-time``: a record without a readable
    time matches no time filter."""

    event_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    positions: frozenset[tuple[int, int]] = frozenset()

    def matches(self, record: DeadLetterRecord) -> bool:
        if self.positions and (record.partition, record.offset) not in self.positions:
            return False
        if self.event_type is not None and not fnmatch.fnmatchcase(
            record.event_type or "", self.event_type
        ):
            return False
        if self.since is None and self.until is None:
            return True
        when = record.dead_lettered_at
        if when is None:
            return False
        return (self.since is None or when >= self.since) and (
            self.until is None or when < self.until
        )


class DeadLetterTopic:
    """Reads one dead-letter topic (or, for a pointer record, its original topic);
    ``config`` is a reader configuration (see kafka_clients)."""

    def __init__(self, topic: str, config: Mapping[str, Any], *, timeout: float = 30.0) -> None:
        self.topic = topic
        self.config = dict(config)
        self.timeout = timeout

    def _consumer(self) -> Consumer:
        return Consumer(self.config)

    def _partitions(self, consumer: Consumer) -> list[int]:
        return topic_partitions(
            consumer, self.topic, self.timeout, DeadLetterQueueError, self.config
        )

    def _watermarks(self, consumer: Consumer, partition: int) -> tuple[int, int]:
        try:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=self.timeout
            )
        except KafkaException as exc:
            raise DeadLetterQueueError(
                f"cannot read the offsets of {self.topic}[{partition}]: {exc}"
            ) from exc
        return int(low), int(high)

    def partitions(self) -> dict[int, tuple[int, int]]:
        """partition -> (earliest offset, end offset)."""
        consumer = self._consumer()
        try:
            return {p: self._watermarks(consumer, p) for p in self._partitions(consumer)}
        finally:
            consumer.close()

    def records(self) -> Iterator[DeadLetterRecord]:
        """Every record from the beginning to the end offsets found at start, per partition
        in offset order (partitions interleaved)."""
        consumer = self._consumer()
        try:
            ends: dict[int, int] = {}
            starts: list[TopicPartition] = []
            for partition in self._partitions(consumer):
                low, high = self._watermarks(consumer, partition)
                if high > low:
                    ends[partition] = high
                    starts.append(TopicPartition(self.topic, partition, low))
            if not starts:
                return
            consumer.assign(starts)
            yield from self._read_until(consumer, ends)
        finally:
            consumer.close()

    def _read_until(self, consumer: Consumer, ends: dict[int, int]) -> Iterator[DeadLetterRecord]:
        remaining = dict(ends)
        last_progress = time.monotonic()
        while remaining:
            message = consumer.poll(1.0)
            if message is None:
                if time.monotonic() - last_progress > self.timeout:
                    where = ", ".join(f"[{p}] before {o}" for p, o in sorted(remaining.items()))
                    raise DeadLetterQueueError(
                        f"reading '{self.topic}' stalled for {self.timeout:.0f}s at {where}"
                    )
                continue
            last_progress = time.monotonic()
            partition, offset = message.partition() or 0, message.offset() or 0
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    # The end offset may be a transaction marker no record is returned for.
                    if partition in remaining and offset >= remaining[partition]:
                        del remaining[partition]
                    continue
                raise DeadLetterQueueError(f"reading '{self.topic}' failed: {error}")
            if partition not in remaining or offset >= remaining[partition]:
                continue  # written after we started: not part of this read
            yield DeadLetterRecord.from_message(message)
            if offset + 1 >= remaining[partition]:
                del remaining[partition]

    def record(self, partition: int | None, offset: int) -> DeadLetterRecord:
        """The record at ``partition:offset`` (partition may be None for a one-partition topic)."""
        consumer = self._consumer()
        try:
            partitions = self._partitions(consumer)
            if partition is None:
                if len(partitions) != 1:
                    raise DeadLetterRecordNotFoundError(
                        f"'{self.topic}' has {len(partitions)} partitions: "
                        "give the record as PARTITION:OFFSET"
                    )
                partition = partitions[0]
            if partition not in partitions:
                raise DeadLetterRecordNotFoundError(
                    f"'{self.topic}' has no partition {partition} "
                    f"(it has {len(partitions)}: 0..{len(partitions) - 1})"
                )
            low, high = self._watermarks(consumer, partition)
            if not low <= offset < high:
                raise DeadLetterRecordNotFoundError(
                    f"no record at {self.topic}[{partition}]@{offset}: "
                    f"the partition holds offsets {low}..{high - 1}"
                    if high > low
                    else f"no record at {self.topic}[{partition}]@{offset}: the partition is empty"
                )
            consumer.assign([TopicPartition(self.topic, partition, offset)])
            for record in self._read_until(consumer, {partition: offset + 1}):
                if record.offset == offset:
                    return record
            raise DeadLetterRecordNotFoundError(
                f"no record at {self.topic}[{partition}]@{offset} (compacted or a "
                "transaction marker)"
            )
        finally:
            consumer.close()


@dataclasses.dataclass(frozen=True)
class Republished:
    """Where a dead-letter record's original message was written again."""

    record: DeadLetterRecord
    topic: str
    partition: int
    offset: int


class Republisher:
    """Writes dead-letter records' original messages back to their topics, one at a time."""

    def __init__(self, config: Mapping[str, Any], *, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._producer = Producer(dict(config))
        self._existing: set[str] = set()

    def check_topic(self, topic: str) -> None:
        """Raise :class:`DeadLetterQueueError` unless ``topic`` exists (it is never created)."""
        if topic in self._existing:
            return
        try:
            metadata = self._producer.list_topics(topic, timeout=self.timeout)
        except KafkaException as exc:
            raise DeadLetterQueueError(f"cannot read metadata of '{topic}': {exc}") from exc
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            missing = found is None or found.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
            reason = "does not exist" if missing else f"unusable: {found.error}"
            raise DeadLetterQueueError(f"original topic '{topic}' {reason}")
        self._existing.add(topic)

    def republish(self, record: DeadLetterRecord) -> Republished:
        """Send one record to its original topic and wait for the broker's ack.

        A pointer record is refused: pass it through :func:`resolve_pointer` first.
        """
        if record.is_pointer:
            raise DeadLetterPointerError(
                record.location, record.origin, "its original has not been read back"
            )
        topic = record.original_topic
        if not topic:
            raise DeadLetterQueueError(
                f"record {record.position} has no {dead_letter.ORIGINAL_TOPIC} header: "
                "its original topic is unknown"
            )
        self.check_topic(topic)
        headers: list[tuple[str, str | bytes | None]] = [*record.original_headers()]
        try:
            message = produce_and_wait(
                self._producer,
                lambda on_delivery: self._producer.produce(
                    topic,
                    key=record.key,
                    value=record.value,
                    headers=headers,
                    on_delivery=on_delivery,
                ),
                timeout=self.timeout,
            )
        except DeliveryTimeoutError:
            raise DeadLetterQueueError(
                f"record {record.position} was not acknowledged by '{topic}' "
                f"within {self.timeout:.0f}s"
            ) from None
        except DeliveryFailedError as exc:
            raise DeadLetterQueueError(
                f"record {record.position} could not be written to '{topic}': {exc.error}"
            ) from None
        log.info(
            "re-published dead-letter %s (%s %s) to %s[%s]@%s",
            record.position, record.event_type, record.event_id,
            topic, message.partition(), message.offset(),
        )  # fmt: skip
        return Republished(record, topic, message.partition() or 0, message.offset() or 0)

    def close(self) -> None:
        self._producer.flush(self.timeout)

    def __enter__(self) -> Republisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def resolve_pointer(
    record: DeadLetterRecord, config: Mapping[str, Any], *, timeout: float = 30.0
) -> DeadLetterRecord:
    """``record`` itself, or for a pointer record the pointer completed with its original
    (read from the original topic with the reader ``config``, then :func:`check_original`).

    Raises :class:`PointerOriginalNotFoundError` when the original is not on the broker
    any more (or the pointer does not say where it is), and
    :class:`PointerOriginalMismatchError` when what is there is not the original.
    """
    if not record.is_pointer:
        return record
    topic, partition, offset = (
        record.original_topic, record.original_partition, record.original_offset
    )  # fmt: skip
    if not topic or partition is None or offset is None:
        raise PointerOriginalNotFoundError(
            record.location,
            record.origin,
            f"the position of its original is unknown ({record.origin}: the "
            f"{dead_letter.ORIGINAL_TOPIC}, -partition or -offset header is missing or unreadable)",
        )
    try:
        original = DeadLetterTopic(topic, config, timeout=timeout).record(partition, offset)
    except (DeadLetterRecordNotFoundError, TopicNotFoundError) as exc:
        raise PointerOriginalNotFoundError(
            record.location,
            record.origin,
            f"its original {record.origin} is not on the broker any more "
            f"(retention, compaction or a deleted topic: {exc})",
        ) from exc
    return check_original(record, original)


def check_original(pointer: DeadLetterRecord, original: DeadLetterRecord) -> DeadLetterRecord:
    """The pointer record completed with ``original``'s key, value and headers (its own
    ``flowbus-dlq-*`` headers kept, the pointer ones dropped), once the original's size and
    SHA-256 are those the pointer recorded; else :class:`PointerOriginalMismatchError`."""
    expected_size, expected_digest = pointer.original_size, pointer.original_sha256
    if expected_size is None or not expected_digest:
        raise PointerOriginalMismatchError(
            pointer.location,
            pointer.origin,
            f"it has no readable {dead_letter.ORIGINAL_SIZE} and {dead_letter.ORIGINAL_SHA256} "
            f"to check the record at {pointer.origin} against",
        )
    value = original.value or b""
    digest = hashlib.sha256(value).hexdigest()
    if len(value) != expected_size or digest != expected_digest:
        raise PointerOriginalMismatchError(
            pointer.location,
            pointer.origin,
            f"the record at {pointer.origin} is not its original: {len(value)} bytes with "
            f"SHA-256 {digest}, the pointer says {expected_size} bytes with SHA-256 "
            f"{expected_digest}",
        )
    ours = [
        (k, v)
        for k, v in pointer.headers
        if k.startswith(dead_letter.PREFIX) and k not in POINTER_HEADERS
    ]
    log.info(
        "pointer record %s: original %s read back (%d bytes, SHA-256 matches)",
        pointer.location, pointer.origin, len(value),
    )  # fmt: skip
    return dataclasses.replace(
        pointer,
        key=original.key,
        value=original.value,
        headers=(*original.original_headers(), *ours),
    )


def _header_list(
    headers: Sequence[tuple[str, bytes | str | None]] | Mapping[str, Any] | None,
) -> list[Header]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    return [(k, v.encode() if isinstance(v, str) else v) for k, v in pairs]


def _as_int(text: str | None) -> int | None:
    try:
        return None if text is None else int(text)
    except ValueError:
        return None
