"""The producer: one signal's data and metadata onto one Kafka topic with one key.

Configured once, called per event. Idempotent with ``acks=all`` by default; librdkafka
properties pass through from ``FLOWBUS_KAFKA_CONFIG``. Delivery reports are served by a
background poller thread. Broker trouble never raises into the caller: it is logged (event
id and type, never the payload) and counted, and the event stays in librdkafka's queue
until ``message.timeout.ms`` (default 300 000 ms = 5 minutes) has passed. The synchronous
mode, for CLIs and tests, waits for each delivery and raises :class:`ProducerError`.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import signal as signals
import threading
import time
from collections.abc import Callable, Mapping
from types import FrameType
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from flowbus import cloudevents
from flowbus.errors import ConfigurationError, ProducerClosedError, ProducerError
from flowbus.metadata import EventMetadata
from flowbus.settings import FlowbusSettings, get_settings

if TYPE_CHECKING:
    from flowbus.avro.serializer import EventSerializer
    from flowbus.signals import WorkflowSignal

log = logging.getLogger(__name__)

#: Defaults a user's librdkafka properties may override.
DEFAULT_KAFKA_CONFIG: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    "compression.type": "lz4",
    # The Java client's key hash: a key lands on the same partition whichever client wrote
    # it, so one case's events stay in order even in a mixed fleet.
    "partitioner": "murmur2_random",
}
#: How long ``send`` waits for room when librdkafka's local queue is full.
QUEUE_FULL_WAIT_S = 1.0


@dataclasses.dataclass(frozen=True)
class DeliveryReport:
    """Where a synchronously sent event landed."""

    topic: str
    partition: int
    offset: int
    event_id: str


@dataclasses.dataclass
class ProducerStats:
    """Counters of what happened to events handed to the producer."""

    sent: int = 0
    delivered: int = 0
    failed: int = 0
    dropped: int = 0

    @property
    def in_flight(self) -> int:
        return self.sent - self.delivered - self.failed


class EventProducer:
    """Sends signal events to Kafka; see the module docstring for the delivery contract."""

    def __init__(
        self,
        *,
        settings: FlowbusSettings | None = None,
        kafka_config: Mapping[str, Any] | None = None,
        serializer: EventSerializer | None = None,
        synchronous: bool = False,
        delivery_timeout: float = 30.0,
        shutdown_timeout: float = 10.0,
        install_exit_handlers: bool = True,
    ) -> None:
        self.settings = settings or get_settings()
        if not self.settings.kafka_bootstrap_servers and not (kafka_config or {}).get(
            "bootstrap.servers"
        ):
            raise ProducerError("no broker configured: set KAFKA_BOOTSTRAP_SERVERS")
        self.config: dict[str, Any] = {
            **DEFAULT_KAFKA_CONFIG,
            "bootstrap.servers": self.settings.kafka_bootstrap_servers,
            "client.id": f"flowbus-{self.settings.service_name}",
            **self.settings.kafka_config,
            **(kafka_config or {}),
        }
        if str(self.config.get("enable.idempotence")).lower() not in ("true", "1"):
            log.warning("idempotence is off: a retried send may write an event twice")
        self.topic_prefix = self.settings.topic_prefix
        self.synchronous = synchronous
        self.delivery_timeout = delivery_timeout
        self.shutdown_timeout = shutdown_timeout
        self.stats = ProducerStats()
        self._stats_lock = threading.Lock()
        self._serializer = serializer or _default_serializer(self.settings)
        try:
            self._producer = Producer(self.config, logger=logging.getLogger("flowbus.librdkafka"))
        except KafkaException as exc:  # librdkafka refused a property; its message names it
            error = exc.args[0] if exc.args else None
            reason = error.str() if isinstance(error, KafkaError) else str(exc)
            raise ConfigurationError(
                f"invalid Kafka configuration (FLOWBUS_KAFKA_CONFIG / kafka_config): {reason}"
            ) from exc
        self._closed = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="flowbus-producer-poll")
        self._poller.daemon = True
        self._poller.start()
        self._previous_handlers: dict[int, Any] = {}
        if install_exit_handlers:
            self._install_exit_handlers()

    # --- sending ---------------------------------------------------------------------

    def topic_name(self, topic: str) -> str:
        return f"{self.topic_prefix}{topic}"

    def send(
        self,
        signal: WorkflowSignal,
        metadata: EventMetadata,
        data: Mapping[str, Any],
        *,
        topic: str,
        key: str | None = None,
        sender: str | None = None,
    ) -> DeliveryReport | None:
        """Send one event. Asynchronous mode returns None at once; synchronous mode waits.

        ``data`` is the signal's validated data. Encoding errors (the caller's bug)
        raise; broker trouble does not (asynchronous mode).
        """
        if self._closed.is_set():
            raise ProducerClosedError(f"producer closed; event {metadata.id} not sent")
        full_topic = self.topic_name(topic)
        serialized = self._serializer.serialize(signal, data, full_topic)
        headers = cloudevents.to_headers(
            metadata,
            partitionkey=key,
            sender=sender,
            dataschema=serialized.dataschema,
            traceparent=cloudevents.current_traceparent(),
        )
        if self.synchronous:
            return self._send_and_wait(full_topic, key, serialized.value, headers, metadata)
        self._produce(full_topic, key, serialized.value, headers, metadata, self._on_delivery)
        return None

    def _produce(
        self,
        topic: str,
        key: str | None,
        value: bytes,
        headers: cloudevents.KafkaHeaders,
        metadata: EventMetadata,
        on_delivery: Callable[[KafkaError | None, Message], None],
    ) -> None:
        deadline = time.monotonic() + QUEUE_FULL_WAIT_S
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=headers, on_delivery=on_delivery
                )
            except BufferError:
                # librdkafka's local queue is full (broker unreachable for a while): give
                # the poller a moment, but never hold the caller for long.
                if time.monotonic() < deadline:
                    self._producer.poll(0.05)
                    continue
                self._count("dropped")
                log.error(
                    "local producer queue full; event %s (%s) dropped",
                    metadata.id,
                    metadata.event_type,
                )
                if self.synchronous:
                    raise ProducerError(f"local queue full; event {metadata.id} not sent") from None
                return
            with self._stats_lock:
                self.stats.sent += 1
            # Serve the delivery reports that are ready, here and without waiting: the
            # poller thread alone falls behind a caller that sends flat out (it needs the
            # GIL once per report), and unserved reports keep their messages in
            # librdkafka's queue until it is full.
            self._producer.poll(0)
            return

    def _send_and_wait(
        self,
        topic: str,
        key: str | None,
        value: bytes,
        headers: cloudevents.KafkaHeaders,
        metadata: EventMetadata,
    ) -> DeliveryReport:
        outcome: list[tuple[KafkaError | None, Message]] = []

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            self._on_delivery(error, message)
            outcome.append((error, message))

        self._produce(topic, key, value, headers, metadata, on_delivery)
        deadline = time.monotonic() + self.delivery_timeout
        while not outcome and time.monotonic() < deadline:
            self._producer.flush(min(1.0, self.delivery_timeout))
        if not outcome:
            raise ProducerError(
                f"event {metadata.id} ({metadata.event_type}) not delivered to {topic} "
                f"within {self.delivery_timeout:.0f}s"
            )
        error, message = outcome[0]
        if error is not None:
            raise ProducerError(
                f"event {metadata.id} ({metadata.event_type}) not delivered to {topic}: {error}"
            )
        return DeliveryReport(
            topic=str(message.topic()),
            partition=int(message.partition() or 0),
            offset=int(message.offset() or 0),
            event_id=str(metadata.id),
        )

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            with self._stats_lock:
                self.stats.delivered += 1
            return
        self._count("failed")
        headers = dict(cloudevents.header_pairs(message.headers()))
        log.error(
            "event %s (%s) not delivered to %s: %s",
            headers.get(cloudevents.ID, b"?").decode(errors="replace"),
            headers.get(cloudevents.TYPE, b"?").decode(errors="replace"),
            message.topic(),
            error,
        )

    def _count(self, field: str) -> None:
        with self._stats_lock:
            setattr(self.stats, field, getattr(self.stats, field) + 1)

    def _poll_loop(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.1)

    # --- flushing and closing ----------------------------------------------------------

    def flush(self, timeout: float | None = None) -> int:
        """Wait for outstanding deliveries; returns how many are still undelivered."""
        return int(self._producer.flush(self.shutdown_timeout if timeout is None else timeout))

    def close(self, timeout: float | None = None) -> int:
        """Flush (bounded), stop the poller; returns and logs the undelivered count."""
        if self._closed.is_set():
            return 0
        left = self.flush(timeout)
        self._closed.set()
        self._poller.join(timeout=5)
        self._remove_exit_handlers()
        if left:
            log.error("producer closed with %d event(s) undelivered", left)
        else:
            log.info("producer closed; stats %s", self.stats)
        return left

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _install_exit_handlers(self) -> None:
        atexit.register(self.close)
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be installed from the main thread
        for signum in (signals.SIGTERM, signals.SIGINT):
            if signals.getsignal(signum) == signals.SIG_IGN:
                continue  # ignored on purpose (e.g. SIGINT of a background job): keep it so
            self._previous_handlers[signum] = signals.signal(signum, self._on_exit_signal)

    def _remove_exit_handlers(self) -> None:
        atexit.unregister(self.close)
        for signum, handler in self._previous_handlers.items():
            with contextlib.suppress(ValueError):  # not in the main thread any more
                if signals.getsignal(signum) == self._on_exit_signal:
                    signals.signal(signum, handler)
        self._previous_handlers.clear()

    def _on_exit_signal(self, signum: int, frame: FrameType | None) -> None:
        previous = self._previous_handlers.get(signum)
        log.info("signal %d: flushing the producer", signum)
        self.close()
        if callable(previous):
            previous(signum, frame)
        elif signum == signals.SIGINT:
            raise KeyboardInterrupt
        else:
            raise SystemExit(128 + signum)


def _default_serializer(settings: FlowbusSettings) -> EventSerializer:
    from flowbus.avro.serializer import EventSerializer

    return EventSerializer.from_settings(settings)
