"""A broker-free event bus for tests: the real pipeline, records kept in memory.

:class:`InMemoryBus` encodes events with the real serializer and CloudEvents headers, and
handles them with the real handler, middlewares, engine (key-ordered concurrency,
deadlines, retries) and dead-letter path, as a worker would; only Kafka is missing. In the
spirit of dramatiq's ``StubBroker`` and FastStream's ``TestKafkaBroker``::

    from flowbus.consumer.testing import InMemoryBus

    def test_completion_notifies_the_owner(mailbox):
        bus = InMemoryBus()
        bus.publish(post_complete_work_item, topic="caluma-events", **event_data)
        bus.run()                       # until every record is finished
        assert mailbox.sent == [...]
        assert bus.dead_letters == []

It lives on the consumer side (the core never imports a side). Receivers connect as
usual; pair it with :func:`flowbus.testing.isolated_receivers`.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any, NamedTuple

from flowbus import cloudevents
from flowbus.avro.serializer import EventDeserializer, EventSerializer
from flowbus.errors import FlowbusError
from flowbus.metadata import EventMetadata
from flowbus.signals import WorkflowSignal, sender_name

from .dead_letter import DEFAULT_SUFFIX, read_dead_letter_headers
from .engine import Engine, WorkerStats
from .failures import FailureClassifier
from .handler import MessageHandler
from .in_memory import Finished, InMemoryDeadLetterSink, run_until_finished
from .middleware import ConsumedRecord, MessageContext, Middleware, default_middlewares
from .retry import ReceiverRetryPolicy

__all__ = ["DeadLetterRecord", "InMemoryBus"]

#: Retries without waiting long: tests should not sleep.
FAST_RETRY = ReceiverRetryPolicy(max_attempts=3, initial_delay=0.001, max_delay=0.01)


class DeadLetterRecord(NamedTuple):
    """A record the bus dead-lettered: where it went, and the ``flowbus-dlq-*`` headers."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: cloudevents.KafkaHeaders
    info: dict[str, str]

    @property
    def reason(self) -> str:
        return self.info.get("reason", "")


class InMemoryBus:
    """Topics in memory, handled by a real engine; see the module docstring.

    ``partitions``: per topic; a record's partition comes from its key, so a key's events
    stay in order. Without ``middlewares``, the default chain with ``retry`` (fast
    retries by default) and ``receiver_timeout``.
    """

    def __init__(
        self,
        *,
        group: str = "in-memory",
        partitions: int = 1,
        concurrency: int = 1,
        receiver_timeout: float | None = None,
        retry: ReceiverRetryPolicy = FAST_RETRY,
        middlewares: Sequence[Middleware] | None = None,
        classifier: FailureClassifier | None = None,
        dead_letter_suffix: str = DEFAULT_SUFFIX,
        sink: InMemoryDeadLetterSink | None = None,
        deserializer: EventDeserializer | None = None,
        max_abandoned: int = 16,
    ) -> None:
        import flowbus.catalog  # noqa: F401  (the catalog's signals must be known here)

        self.partitions = partitions
        self.serializer = EventSerializer()
        chain = middlewares
        if chain is None:
            chain = default_middlewares(retry=retry, receiver_timeout=receiver_timeout)
        self.sink = sink or InMemoryDeadLetterSink()
        self.finished = Finished()
        self.engine = Engine(
            MessageHandler(
                group, deserializer or EventDeserializer(), middlewares=chain, classifier=classifier
            ),
            self.sink,
            concurrency=concurrency,
            max_abandoned=max_abandoned,
            dead_letter_suffix=dead_letter_suffix,
            on_finished=self.finished,
        )
        self.topics: dict[str, list[list[ConsumedRecord]]] = {}
        self._submitted: set[tuple[str, int, int]] = set()
        self._started = False

    # --- producing -------------------------------------------------------------------------

    def publish(
        self,
        signal: WorkflowSignal,
        *,
        topic: str,
        sender: object = None,
        metadata: EventMetadata | None = None,
        **data: Any,
    ) -> ConsumedRecord:
        """Validate and encode an event as the producer would, and append it to ``topic``."""
        validated = signal.validate_data(**data)
        metadata = metadata or signal.generate_signal_metadata()
        key = signal.resolve_key(validated)
        serialized = self.serializer.serialize(signal, validated, topic)
        headers = cloudevents.to_headers(
            metadata, partitionkey=key, sender=sender_name(sender),
            dataschema=serialized.dataschema, traceparent=cloudevents.current_traceparent(),
        )  # fmt: skip
        return self.publish_raw(
            topic, serialized.value, headers, key.encode() if key is not None else None
        )

    def publish_raw(
        self,
        topic: str,
        value: bytes | None,
        headers: cloudevents.Headers | None = None,
        key: bytes | None = None,
        partition: int | None = None,
    ) -> ConsumedRecord:
        """Append any record to ``topic`` (a poison message, a foreign producer's event)."""
        logs = self.topics.setdefault(topic, [[] for _ in range(self.partitions)])
        if partition is None:
            partition = 0 if key is None else zlib.crc32(key) % self.partitions
        record = ConsumedRecord(
            topic, partition, len(logs[partition]), key, value, cloudevents.header_pairs(headers)
        )
        logs[partition].append(record)
        return record

    # --- consuming -------------------------------------------------------------------------

    def run(self, timeout: float = 30.0) -> WorkerStats:
        """Handle every record not handled yet, until all are finished.

        Raises :class:`~flowbus.errors.FlowbusError` when ``timeout`` passes first (a
        receiver still running, a partition paused by an infrastructure failure).
        """
        if not self._started:
            self.engine.start()
            self._started = True
        pending = [
            record
            for logs in self.topics.values()
            for log in logs
            for record in log
            if (record.topic, record.partition, record.offset) not in self._submitted
        ]
        self._submitted.update((r.topic, r.partition, r.offset) for r in pending)
        if not run_until_finished(self.engine, pending, timeout):
            raise FlowbusError(
                f"in-memory bus: not finished after {timeout:g}s: "
                + ("; ".join(self.engine.degraded()) or f"{self.engine.busy()} running")
            )
        if self.engine.fatal is not None:
            raise self.engine.fatal
        return self.engine.stats

    @property
    def handled(self) -> list[MessageContext]:
        """Finished records (re-sent or dead-lettered), in the order they finished."""
        return list(self.finished.contexts)

    @property
    def dead_letters(self) -> list[DeadLetterRecord]:
        """What reached the dead-letter topics, in order."""
        return [
            DeadLetterRecord(
                topic,
                parts.key,
                parts.value,
                parts.headers,
                read_dead_letter_headers(parts.headers),
            )
            for topic, parts in self.sink.records
        ]

    def close(self) -> None:
        """Stop the engine's threads."""
        self.engine.close()

    def __enter__(self) -> InMemoryBus:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
