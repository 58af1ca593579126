"""The consumer worker: read event topics, re-send each event locally, never stop.

At-least-once: a message's offset is stored only after it was handled (re-sent, or
dead-lettered and acknowledged by the broker); stored offsets are committed every
``auto.commit.interval.ms``, when partitions are revoked, and at shutdown. Partitions are
assigned cooperative-sticky. SIGTERM and SIGINT finish the message in hand, commit,
close the consumer (leaving the group at once) and return.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal as signals
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from flowbus.errors import ConfigurationError
from flowbus.receivers import import_receiver_modules
from flowbus.settings import FlowbusSettings, get_settings

from .deadletter import DEFAULT_SUFFIX, DeadLetter, dead_letter_topic
from .handler import MessageHandler
from .retry import RetryPolicy

if TYPE_CHECKING:
    from flowbus.avro.serializer import EventDeserializer

    from .metrics import WorkerMetrics

log = logging.getLogger(__name__)
_librdkafka_log = logging.getLogger("flowbus.librdkafka")

DEFAULT_CONSUMER_CONFIG: dict[str, Any] = {
    "partition.assignment.strategy": "cooperative-sticky",
    "enable.auto.commit": True,
    "auto.commit.interval.ms": 5000,
    # Offsets are stored by the worker after handling, never by librdkafka on delivery.
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
}
LAG_INTERVAL_S = 5.0


@dataclasses.dataclass
class WorkerStats:
    """What a worker did since it started."""

    handled: int = 0
    retried: int = 0
    dead_lettered: int = 0


class Worker:
    """Consumes ``topics`` in consumer group ``group``; see the module docstring."""

    def __init__(
        self,
        topics: Sequence[str],
        group: str,
        *,
        settings: FlowbusSettings | None = None,
        kafka_config: Mapping[str, Any] | None = None,
        receiver_modules: Iterable[str] = (),
        deserializer: EventDeserializer | None = None,
        retry: RetryPolicy | None = None,
        dead_letter_suffix: str = DEFAULT_SUFFIX,
        metrics: WorkerMetrics | None = None,
        poll_timeout: float = 1.0,
    ) -> None:
        if not topics:
            raise ConfigurationError("a worker needs at least one topic")
        self.settings = settings or get_settings()
        if not self.settings.kafka_bootstrap_servers:
            raise ConfigurationError("no broker configured: set KAFKA_BOOTSTRAP_SERVERS")
        self.group = group
        self.topics = [f"{self.settings.topic_prefix}{topic}" for topic in topics]
        self.dead_letter_suffix = dead_letter_suffix
        self.metrics = metrics
        self.poll_timeout = poll_timeout
        self.stats = WorkerStats()
        self._stopping = threading.Event()
        import flowbus.catalog  # noqa: F401  (the catalog's signals must be known here)

        import_receiver_modules([*self.settings.receiver_modules, *receiver_modules])
        if deserializer is None:
            from flowbus.avro.serializer import EventDeserializer

            deserializer = EventDeserializer.from_settings(self.settings)
        self.handler = MessageHandler(group, deserializer, retry, stop=self._stopping)
        common = {"bootstrap.servers": self.settings.kafka_bootstrap_servers}
        common |= self.settings.kafka_config | dict(kafka_config or {})
        self._consumer_config = {
            **DEFAULT_CONSUMER_CONFIG,
            **common,
            "group.id": group,
            "client.id": f"flowbus-worker-{self.settings.service_name}",
        }
        self._dlq_producer_config: dict[str, Any] = {
            **{k: v for k, v in common.items() if not k.startswith(("auto.", "enable.auto"))},
            "enable.idempotence": True,
            "acks": "all",
        }
        self._consumer: Consumer | None = None
        self._dlq_producer: Producer | None = None
        self._last_lag = 0.0

    # --- lifecycle -----------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the worker to finish the message in hand and shut down."""
        self._stopping.set()

    def run(
        self, *, max_messages: int | None = None, install_signal_handlers: bool = True
    ) -> WorkerStats:
        """Consume until :meth:`stop` (or SIGTERM/SIGINT, or ``max_messages`` handled)."""
        previous = self._install_signal_handlers() if install_signal_handlers else {}
        self._consumer = Consumer(self._consumer_config, logger=_librdkafka_log)
        self._dlq_producer = Producer(self._dlq_producer_config, logger=_librdkafka_log)
        try:
            self._ensure_dead_letter_topics()
            self._consumer.subscribe(self.topics, on_revoke=self._on_revoke, on_lost=self._on_lost)
            log.info("worker %s consuming %s", self.group, ", ".join(self.topics))
            while not self._stopping.is_set():
                message = self._consumer.poll(self.poll_timeout)
                self._after_poll(message)
                if message is None:
                    continue
                if message.error() is not None:
                    self._on_consume_error(message)
                    continue
                self._handle(message)
                if max_messages is not None and self.stats.handled >= max_messages:
                    break
        finally:
            self._shutdown()
            for signum, handler in previous.items():
                signals.signal(signum, handler)
        return self.stats

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("signal %d: finishing the message in hand, then stopping", signum)
            self.stop()

        return {
            signum: signals.signal(signum, on_signal)
            for signum in (signals.SIGTERM, signals.SIGINT)
        }

    def _shutdown(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            self._commit(consumer, "shutdown")
            consumer.close()  # leaves the group now, so its partitions move at once
        producer, self._dlq_producer = self._dlq_producer, None
        if producer is not None:
            left = producer.flush(30)
            if left:
                log.error("%d dead-letter record(s) not acknowledged at shutdown", left)
        log.info("worker %s stopped: %s", self.group, self.stats)

    # --- per message ----------------------------------------------------------------------

    def _handle(self, message: Message) -> None:
        started = time.monotonic()
        try:
            result = self.handler.handle(message)
        except Exception:  # the handler does not raise; if it ever does, do not lose the message
            log.exception(
                "handler error at %s[%s]@%s", message.topic(), message.partition(), message.offset()
            )
            raise
        if result.dead_letter is not None:
            if not self._dead_letter(result.dead_letter):
                return  # stopping before the dead-letter topic acknowledged: leave it unstored
            self.stats.dead_lettered += 1
        self.stats.handled += 1
        self.stats.retried += result.retried
        assert self._consumer is not None
        self._consumer.store_offsets(message=message)
        if self.metrics is not None:
            event_type = result.event_type or "unknown"
            self.metrics.consumed(event_type)
            if result.retried:
                self.metrics.retried(event_type)
            if result.dead_letter is not None:
                self.metrics.dead_lettered(event_type, result.dead_letter.reason.value)
            else:
                self.metrics.resent(event_type)
            self.metrics.observe_handling(time.monotonic() - started)
            if result.end_to_end is not None:
                self.metrics.observe_end_to_end(result.end_to_end)

    def _dead_letter(self, letter: DeadLetter) -> bool:
        """Produce ``letter`` and wait for the broker's ack; retry until it lands or we stop."""
        assert self._dlq_producer is not None
        topic = dead_letter_topic(letter.topic, self.dead_letter_suffix)
        delay = 0.5
        outcome: list[KafkaError | None] = []
        while True:
            outcome.clear()
            self._dlq_producer.produce(
                topic,
                key=letter.key,
                value=letter.value,
                headers=letter.record_headers(),
                on_delivery=lambda error, _msg: outcome.append(error),
            )
            self._dlq_producer.flush(30)
            if outcome and outcome[0] is None:
                log.warning(
                    "dead-lettered %s[%s]@%s to %s: %s (%s)",
                    letter.topic, letter.partition, letter.offset, topic, letter.reason.value,
                    type(letter.error).__name__,
                )  # fmt: skip
                return True
            log.error(
                "dead-letter topic %s did not take %s[%s]@%s: %s; retrying in %.1fs",
                topic, letter.topic, letter.partition, letter.offset,
                outcome[0] if outcome else "no delivery report", delay,
            )  # fmt: skip
            if self._stopping.wait(delay):
                return False
            delay = min(delay * 2, 30.0)

    # --- offsets, errors, lag ------------------------------------------------------------

    def _commit(self, consumer: Consumer, why: str) -> None:
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == KafkaError._NO_OFFSET:
                return  # nothing stored since the last commit
            log.error("offset commit on %s failed: %s", why, exc)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._commit(consumer, "revoke")

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning("partitions lost (no commit possible): %s", partitions)

    def _on_consume_error(self, message: Message) -> None:
        error = message.error()
        assert error is not None
        if error.code() == KafkaError._PARTITION_EOF:
            return
        log.error("consume error on %s: %s", message.topic(), error)
        if error.fatal():
            raise KafkaException(error)

    def _after_poll(self, message: Message | None) -> None:
        if self.metrics is None or (message is not None and message.error() is not None):
            return
        self.metrics.poll_succeeded()
        now = time.monotonic()
        if now - self._last_lag < LAG_INTERVAL_S or self._consumer is None:
            return
        self._last_lag = now
        assignment = self._consumer.assignment()
        for position in self._consumer.position(assignment) if assignment else []:
            with contextlib.suppress(KafkaException):
                _, high = self._consumer.get_watermark_offsets(position, cached=True)
                if position.offset >= 0 and high >= 0:
                    self.metrics.set_lag(position.topic, position.partition, high - position.offset)

    def _ensure_dead_letter_topics(self) -> None:
        """Create missing dead-letter topics (brokers may not auto-create topics)."""
        admin = AdminClient(
            {
                k: v
                for k, v in self._dlq_producer_config.items()
                if k not in ("enable.idempotence", "acks")
            }
        )
        wanted = {dead_letter_topic(t, self.dead_letter_suffix) for t in self.topics}
        existing = set(admin.list_topics(timeout=30).topics)
        missing = [NewTopic(t, num_partitions=1) for t in sorted(wanted - existing)]
        for topic, future in admin.create_topics(missing).items() if missing else []:
            try:
                future.result(30)
                log.info("created dead-letter topic %s", topic)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise ConfigurationError(
                        f"cannot create dead-letter topic {topic}: {exc}"
                    ) from exc
