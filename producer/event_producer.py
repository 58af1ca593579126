"""The producer: one signal's data and metadata onto one Kafka topic with one key.

Configured once, called per event. Idempotent with ``acks=all`` by default; librdkafka
properties pass through from ``FLOWBUS_KAFKA_CONFIG``. Delivery reports are served by a
background poller thread.

Delivery contract of the asynchronous mode (the default): neither the broker nor the
schema registry ever raises into the caller or blocks it for long; only the caller's own
mistakes raise (data that does not fit the schema, a closed producer).

- Broker trouble is logged (event id, type and topic, never the payload) and counted, and
  the event stays in librdkafka's queue until ``message.timeout.ms`` (default 300 000 ms =
  5 minutes) has passed; then it is lost, and logged as such.
- An event whose writer schema is not resolved yet (the first of its event type and topic
  with a registry, or any while the registry is unreachable) waits in a bounded queue
  (``max_pending``) for the producer's preparing thread, which resolves the schema with
  :class:`~flowbus.backoff.Backoff` and produces the waiting events in order. Events with
  the topic and key of a waiting event wait behind it. An event that finds the queue full
  is dropped (logged, counted); events still waiting when the producer closes are lost
  (logged, counted).

The synchronous mode, for CLIs and tests, resolves the schema and waits for each delivery
in the caller's thread, and raises typed errors: :class:`ProducerError`,
:class:`~flowbus.errors.SchemaRegistryError`.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import logging
import signal as signals
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from types import FrameType
from typing import TYPE_CHECKING, Any
from uuid import UUID

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from flowbus import cloudevents
from flowbus.backoff import Backoff
from flowbus.broker import PROBE_TIMEOUT_S, BrokerLog, kafka_client_config, probe_broker
from flowbus.errors import (
    ConfigurationError,
    DeliveryFailedError,
    DeliveryTimeoutError,
    FlowbusError,
    ProducerClosedError,
    ProducerError,
    SchemaRegistryError,
)
from flowbus.kafka_delivery import produce_and_wait
from flowbus.metadata import EventMetadata
from flowbus.settings import FlowbusSettings, get_settings
from flowbus.wire import FLOWBUS, KeyFormat, WireProfile

from .pending import PendingEvents
from .prepared import PreparedEvent, prepare_event

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
#: How long the poller thread waits for delivery reports at a time, and how long a caller
#: must have stopped sending before the poller serves them (see ``_poll_loop``).
POLL_INTERVAL_S = 0.1
#: How many events may wait for their writer schema (see the module docstring).
DEFAULT_MAX_PENDING = 10_000


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


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class _DirectRoute:
    """What every event of one signal on one topic shares once its writer schema is
    resolved as the signal's own, in the ``flowbus`` profile: the body goes out as it is
    encoded, behind ``header``."""

    topic: str
    header: bytes
    dataschema: str
    encode: Callable[[Mapping[str, Any]], bytes]


class EventProducer:
    """Sends signal events to Kafka; see the module docstring for the delivery contract.

    This is the ``direct`` event sink of :mod:`flowbus.producer.sinks`.
    """

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
        max_pending: int = DEFAULT_MAX_PENDING,
        registry_backoff: Backoff | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.config: dict[str, Any] = {
            **DEFAULT_KAFKA_CONFIG,
            **kafka_client_config(
                self.settings, kafka_config, client_id=f"flowbus-{self.settings.service_name}"
            ),
        }
        if str(self.config.get("enable.idempotence")).lower() not in ("true", "1"):
            log.warning("idempotence is off: a retried send may write an event twice")
        self.topic_prefix = self.settings.topic_prefix
        self.synchronous = synchronous
        self.delivery_timeout = delivery_timeout
        self.shutdown_timeout = shutdown_timeout
        self.stats = ProducerStats()
        self._stats_lock = threading.Lock()
        #: ``_on_delivery`` bound once, not once per event's callback.
        self._report_delivery = self._on_delivery
        self._serializer = serializer or _default_serializer(self.settings)
        #: Only a registry can block or fail a serialization; without one, none waits.
        self._needs_registry = getattr(self._serializer, "registry", None) is not None
        #: (signal, full topic, wire profile) whose writer schema is resolved.
        self._ready: set[tuple[WorkflowSignal, str, WireProfile]] = set()
        #: (signal, topic as routed) whose events :meth:`send` writes without preparing
        #: them first (asynchronous mode; see ``_frame``).
        self._direct: dict[tuple[WorkflowSignal, str], _DirectRoute] = {}
        #: Partition counts of the topics the openedx profile's partitioner writes to.
        self._partition_counts: dict[str, int] = {}
        self._pending = PendingEvents(max_pending)
        self._registry_backoff = registry_backoff or Backoff()
        self._broker_log = BrokerLog()
        try:
            self._producer = Producer({**self.config, **self._broker_log.client_config()})
        except KafkaException as exc:  # librdkafka refused a property; its message names it
            error = exc.args[0] if exc.args else None
            reason = error.str() if isinstance(error, KafkaError) else str(exc)
            raise ConfigurationError(
                f"invalid Kafka configuration (FLOWBUS_KAFKA_CONFIG / kafka_config): {reason}"
            ) from exc
        self._closed = threading.Event()
        #: When a caller last served delivery reports itself (``_produce``).
        self._served_at = 0.0
        self._poller = threading.Thread(target=self._poll_loop, name="flowbus-producer-poll")
        self._poller.daemon = True
        self._poller.start()
        self._preparer: threading.Thread | None = None
        if self._needs_registry and not synchronous:
            self._preparer = threading.Thread(
                target=self._prepare_loop, name="flowbus-producer-prepare", daemon=True
            )
            self._preparer.start()
        self._previous_handlers: dict[int, Any] = {}
        if install_exit_handlers:
            self._install_exit_handlers()

    def check_broker(self, timeout: float = PROBE_TIMEOUT_S) -> None:
        """Raise :class:`~flowbus.errors.BrokerUnreachableError` (naming the setting) when
        the broker does not answer within ``timeout`` seconds; for commands, before sending."""
        probe_broker(
            self._producer, {**self.config, **self._broker_log.client_config()}, timeout=timeout
        )

    # --- sending ---------------------------------------------------------------------

    def topic_name(self, topic: str) -> str:
        return f"{self.topic_prefix}{topic}"

    @property
    def pending(self) -> int:
        """How many events wait for their writer schema (asynchronous mode)."""
        return len(self._pending)

    def send(
        self,
        signal: WorkflowSignal,
        metadata: EventMetadata,
        data: Mapping[str, Any],
        *,
        topic: str,
        key: str | None = None,
        sender: str | None = None,
        wire: str | None = None,
    ) -> DeliveryReport | None:
        """Send one event. Asynchronous mode returns None at once; synchronous mode waits.

        ``data`` is the signal's validated data; ``wire`` the wire profile (default: the
        signal's). Encoding errors (the caller's bug) raise; broker and registry trouble
        does not (asynchronous mode).
        """
        route = self._direct.get((signal, topic)) if wire is None else None
        if route is None or self._closed.is_set() or self._pending.holds_key(route.topic, key):
            return self.send_prepared(
                self.prepare(signal, metadata, data, topic=topic, key=key, sender=sender, wire=wire)
            )
        # The common case, in a few steps less than prepare + send_prepared: the writer
        # schema is the signal's own and resolved, nothing of this key waits before it.
        value = route.header + route.encode(data)
        headers = cloudevents.to_headers(
            metadata,
            partitionkey=key,
            sender=sender,
            dataschema=route.dataschema,
            traceparent=cloudevents.current_traceparent(),
        )
        self._produce(route.topic, value, key, -1, headers, metadata)
        return None

    def prepare(
        self,
        signal: WorkflowSignal,
        metadata: EventMetadata,
        data: Mapping[str, Any],
        *,
        topic: str,
        key: str | None = None,
        sender: str | None = None,
        wire: str | None = None,
    ) -> PreparedEvent:
        """Check and encode one event now, to produce later with :meth:`send_prepared`.

        Raises what :meth:`send` raises for the caller's data. The body is encoded here
        (:func:`~flowbus.producer.prepared.prepare_event`); in asynchronous mode the
        registry is not asked here: an event whose writer schema is not resolved yet is
        framed when it is produced.
        """
        if self._closed.is_set():
            raise ProducerClosedError(f"producer closed; event {metadata.id} not sent")
        event = prepare_event(
            self._serializer, self.topic_prefix, signal, metadata, data,
            topic=topic, key=key, sender=sender, wire=wire,
        )  # fmt: skip
        if (
            self.synchronous
            or not self._needs_registry
            or ((signal, event.topic, event.profile) in self._ready)
        ):
            self._frame(event)
        return event

    def send_prepared(self, event: PreparedEvent) -> DeliveryReport | None:
        """Produce an event :meth:`prepare` returned (as :meth:`send` does)."""
        if self._closed.is_set():
            raise ProducerClosedError(f"producer closed; event {event.metadata.id} not sent")
        if self.synchronous:
            if event.value is None:
                self._frame(event)
            return self._send_and_wait(event)
        if event.value is None or self._pending.holds_key(event.topic, event.key):
            self._wait_for_schema(event)
        else:
            self._produce_prepared(event)
        return None

    def _frame(self, event: PreparedEvent) -> None:
        profile = event.profile
        if profile is FLOWBUS:
            serialized = self._serializer.frame_body(
                event.signal, event.body, event.data, event.topic
            )
        else:
            serialized = self._serializer.frame_body(
                event.signal, event.body, event.data, event.topic, profile
            )
            if profile.key_format is KeyFormat.AVRO_STRING and event.key is not None:
                event.wire_key = self._serializer.frame_key(event.topic, event.key, profile)
                event.partition = self._partition_for(event.topic, event.wire_key, profile)
        ready = (event.signal, event.topic, profile)
        if ready not in self._ready:  # the first event framed for this signal, topic, profile
            self._ready.add(ready)
            if profile is FLOWBUS and event.signal.wire == FLOWBUS.name and not self.synchronous:
                self._note_direct_route(event)
        event.headers = event.cloudevent_headers(serialized.dataschema)
        event.value = serialized.value

    def _note_direct_route(self, event: PreparedEvent) -> None:
        framing = self._serializer.own_framing(event.signal, event.topic)
        if framing is None:
            return  # the registry's latest version is another schema: the data is re-written
        routed = event.topic[len(self.topic_prefix) :]
        self._direct[(event.signal, routed)] = _DirectRoute(event.topic, *framing)

    def _partition_for(self, topic: str, key: bytes, profile: WireProfile) -> int:
        """The partition ``profile``'s partitioner picks for ``key`` (-1: librdkafka's own
        choice). ``consistent_random`` is librdkafka's default, which edx-event-bus-kafka
        keeps: CRC-32 of the key bytes modulo the partition count (counted once a topic)."""
        if profile.partitioner != "consistent_random":
            return -1
        count = self._partition_counts.get(topic)
        if count is None:
            metadata = self._producer.list_topics(topic, timeout=10).topics.get(topic)
            if metadata is None or metadata.error is not None or not metadata.partitions:
                return -1  # librdkafka creates or reports the topic as it would for any event
            count = self._partition_counts[topic] = len(metadata.partitions)
        return zlib.crc32(key) % count

    def _wait_for_schema(self, event: PreparedEvent) -> None:
        if self._pending.put(event):
            return
        self._count("dropped")
        log.error(
            "event %s (%s) for %s dropped: %d events already wait for their schema",
            event.metadata.id,
            event.metadata.event_type,
            event.topic,
            self._pending.capacity,
        )

    def _prepare_loop(self) -> None:
        """The preparing thread: frame and produce the waiting events, oldest first."""
        stop = self._closed
        failures = 0
        while not stop.is_set() and (event := self._pending.first(stop)) is not None:
            if event.value is None:
                try:
                    self._frame(event)
                except SchemaRegistryError as exc:
                    failures += 1
                    delay = self._registry_backoff.delay(failures)
                    log.warning(
                        "event %s (%s) for %s waits for the schema registry "
                        "(attempt %d, again in %.1f s, %d event(s) waiting): %s",
                        event.metadata.id,
                        event.metadata.event_type,
                        event.topic,
                        failures,
                        delay,
                        len(self._pending),
                        exc,
                    )
                    if stop.wait(delay):
                        return
                    continue
                except FlowbusError as exc:  # the registry's writer schema cannot carry it
                    self._count("failed")
                    log.error(
                        "event %s (%s) for %s not sent: %s",
                        event.metadata.id,
                        event.metadata.event_type,
                        event.topic,
                        exc,
                    )
                    self._pending.done(event)
                    continue
            if failures:
                log.info("schema registry answers again; %d event(s) waiting", len(self._pending))
                failures = 0
            # Not serving reports here: poll(0) lets go of the GIL, a sending caller takes
            # it for a whole switch interval, and the waiting events drain slower than a
            # caller sending flat out adds to them (a burst at start-up filled the queue).
            self._produce_prepared(event, serve_reports=False)
            self._pending.done(event)

    def _produce_prepared(
        self,
        event: PreparedEvent,
        on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
        *,
        serve_reports: bool = True,
    ) -> None:
        assert event.value is not None and event.headers is not None  # framed
        self._produce(
            event.topic,
            event.value,
            event.wire_key,
            event.partition,
            event.headers,
            event.metadata,
            on_delivery,
            serve_reports=serve_reports,
        )

    def _produce(
        self,
        topic: str,
        value: bytes,
        key: str | bytes | None,
        partition: int,
        headers: cloudevents.KafkaHeaders,
        metadata: EventMetadata,
        on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
        *,
        serve_reports: bool = True,
    ) -> None:
        """Produce one framed event (``on_delivery``: default, the event's delivery
        callback); a full local queue is waited on briefly, then the event is dropped.
        ``serve_reports``: serve the delivery reports that are ready, as a caller does."""
        if on_delivery is None:
            on_delivery = self._on_delivery_of(metadata, topic)
        deadline = None
        while True:
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=key,
                    partition=partition,
                    headers=headers,
                    on_delivery=on_delivery,
                )
            except BufferError:
                # librdkafka's local queue is full (broker unreachable for a while): give
                # the poller a moment, but never hold the caller for long.
                if deadline is None:
                    deadline = time.monotonic() + QUEUE_FULL_WAIT_S
                if time.monotonic() < deadline:
                    self._producer.poll(0.05)
                    continue
                self._count("dropped")
                log.error(
                    "local producer queue full; event %s (%s) for %s dropped",
                    metadata.id,
                    metadata.event_type,
                    topic,
                )
                if self.synchronous:
                    raise ProducerError(f"local queue full; event {metadata.id} not sent") from None
                return
            with self._stats_lock:
                self.stats.sent += 1
            if not serve_reports:
                return
            # Serve the delivery reports that are ready, here and without waiting: the
            # poller thread alone falls behind a caller that sends flat out (it needs the
            # GIL once per report), and unserved reports keep their messages in
            # librdkafka's queue until it is full.
            self._producer.poll(0)
            self._served_at = time.monotonic()
            return

    def _send_and_wait(self, event: PreparedEvent) -> DeliveryReport:
        metadata, topic = event.metadata, event.topic
        try:
            message = produce_and_wait(
                self._producer,
                lambda on_delivery: self._produce_prepared(event, on_delivery),
                timeout=self.delivery_timeout,
                on_delivery=self._on_delivery_of(metadata, topic),
            )
        except DeliveryTimeoutError:
            raise ProducerError(
                f"event {metadata.id} ({metadata.event_type}) not delivered to {topic} "
                f"within {self.delivery_timeout:.0f}s"
            ) from None
        except DeliveryFailedError as exc:
            raise ProducerError(
                f"event {metadata.id} ({metadata.event_type}) not delivered to {topic}: {exc.error}"
            ) from None
        return DeliveryReport(
            topic=str(message.topic()),
            partition=int(message.partition() or 0),
            offset=int(message.offset() or 0),
            event_id=str(metadata.id),
        )

    def _on_delivery_of(
        self, metadata: EventMetadata, topic: str
    ) -> Callable[[KafkaError | None, Message], None]:
        """The delivery callback of one event: it knows the event's id, type and topic.

        A partial of one shared method rather than a closure: it holds only the id, and
        costs less while thousands of events wait for their acknowledgement.
        """
        return functools.partial(self._report_delivery, metadata.id, metadata.event_type, topic)

    def _on_delivery(
        self,
        event_id: UUID,
        event_type: str,
        topic: str,
        error: KafkaError | None,
        message: Message,
    ) -> None:
        if error is None:
            with self._stats_lock:
                self.stats.delivered += 1
            return
        self._count("failed")
        log.error("event %s (%s) not delivered to %s: %s", event_id, event_type, topic, error)

    def _count(self, field: str) -> None:
        with self._stats_lock:
            setattr(self.stats, field, getattr(self.stats, field) + 1)

    def _poll_loop(self) -> None:
        # While a caller sends, its own poll(0) serves the reports: a second thread taking
        # the GIL for them only makes the caller wait. The poller serves them once the
        # caller has been quiet for a poll interval.
        closed = self._closed
        while not closed.is_set():
            quiet = time.monotonic() - self._served_at
            if quiet < POLL_INTERVAL_S:
                closed.wait(POLL_INTERVAL_S - quiet)
            else:
                self._producer.poll(POLL_INTERVAL_S)

    # --- flushing and closing ----------------------------------------------------------

    def flush(self, timeout: float | None = None) -> int:
        """Wait for outstanding deliveries, waiting events included; returns how many are
        still undelivered."""
        timeout = self.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        if self._preparer is not None:
            self._pending.wait_empty(timeout)
        left = int(self._producer.flush(max(0.0, deadline - time.monotonic())))
        return left + len(self._pending)

    def close(self, timeout: float | None = None) -> int:
        """Flush (bounded), stop the threads; returns and logs the undelivered count.

        Events still waiting for their schema, and events librdkafka still holds, are lost:
        each is logged with its id, type and topic.
        """
        if self._closed.is_set():
            return 0
        left = self.flush(timeout)
        self._closed.set()
        if self._preparer is not None:
            self._pending.wake()
            self._preparer.join(timeout=5)
        for event in self._pending.take_all():
            self._count("dropped")
            log.error(
                "event %s (%s) for %s not sent: the producer closed while it waited for its schema",
                event.metadata.id,
                event.metadata.event_type,
                event.topic,
            )
        if len(self._producer):
            # Give up on what librdkafka still holds, so that each event's delivery report
            # names it as lost.
            self._producer.purge()
            self._producer.flush(1.0)
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
