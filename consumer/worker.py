"""The consumer worker: read event topics, re-send each event locally, never stop.

The worker polls, feeds the records to the :class:`~consumer.engine.Engine` (which
handles up to ``concurrency`` keys at once on its own threads, one record of a key at a
time), and commits. Someone keeps polling while receivers run, so a slow receiver never
makes the worker overrun ``max.poll.interval.ms`` and leave the group; when too many records
wait (``max_buffered``), it pauses its partitions instead.

Who polls: with ``concurrency`` above 1, the thread that called :meth:`Worker.run`. With
``concurrency`` 1, the handler thread itself, between its records, as a sequential consumer
would (no hand-off between two threads per batch, which costs more than a no-op receiver);
the calling thread watches it and polls in its stead while it stays away longer than
``TAKEOVER_S`` (a slow or hanging receiver). The consumer is only ever used by one thread at
a time.

At-least-once: a partition's committed offset is its first record not finished (handled,
or dead-lettered and acknowledged), committed every ``commit_interval`` seconds, when
partitions are revoked, and at shutdown; a crash redoes about that much work. Partitions
are assigned cooperative-sticky. SIGTERM and SIGINT start nothing new, give what runs up to
``shutdown_timeout`` seconds, commit what finished, close the consumer (leaving the group at
once) and return; a second signal stops the wait.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import signal as signals
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from flowbus.broker import PROBE_TIMEOUT_S, BrokerLog, kafka_client_config, probe_broker
from flowbus.errors import ConfigurationError
from flowbus.receivers import import_receiver_modules
from flowbus.settings import FlowbusSettings, get_settings

from .dead_letter import DEFAULT_SUFFIX, DeadLetterRecordParts, dead_letter_topic
from .engine import DeadLetterTooLargeError, Engine, WorkerStats
from .failures import FailureClassifier
from .handler import MessageHandler
from .middleware import ConsumedRecord, Middleware, default_middlewares
from .retry import ReceiverRetryPolicy

if TYPE_CHECKING:
    from flowbus.avro.serializer import EventDeserializer

    from .metrics import WorkerMetrics

__all__ = ["DEFAULT_RECEIVER_TIMEOUT", "Worker", "WorkerStats"]

log = logging.getLogger(__name__)

DEFAULT_CONSUMER_CONFIG: dict[str, Any] = {
    "partition.assignment.strategy": "cooperative-sticky",
    "auto.offset.reset": "earliest",
}
#: The worker commits itself, only offsets whose records are finished.
_COMMIT_CONFIG = {"enable.auto.commit": False, "enable.auto.offset.store": False}
DEFAULT_RECEIVER_TIMEOUT = 60.0
LAG_INTERVAL_S = 5.0
#: While attempts run, the worker wakes at least this often (deadlines, retries).
TICK_S = 0.05
BATCH = 500
#: Concurrency 1: records the handler thread takes per poll. Fewer than ``BATCH``: what it
#: takes stays alive until handled, and a few hundred records' objects at once cost more
#: in the garbage collector's young generations than the extra polls do.
SHORT_BATCH = 64
#: How long the buffer may stay full before the partitions are paused.
FULL_PAUSE_S = 0.5
#: Concurrency 1: after this long in receivers, the handler thread's polling is taken over.
TAKEOVER_S = 0.2
#: Concurrency 1: the longest the handler thread waits in one poll (the lock it holds
#: meanwhile keeps the calling thread from taking over or shutting down).
SHORT_POLL_S = 0.25
#: The collector's first threshold while a worker runs (see ``_collector_for_batches``):
#: above the tracked objects of the largest batch in flight, so batches die young.
GC_YOUNG_THRESHOLD = 20_000
_TOO_LARGE = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE})


class KafkaDeadLetterSink:
    """Dead letters through an idempotent producer; acknowledgements arrive on ``poll``."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer

    def send(
        self, topic: str, parts: DeadLetterRecordParts, done: Callable[[Exception | None], None]
    ) -> None:
        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            if error is None:
                done(None)
            elif error.code() in _TOO_LARGE:
                done(DeadLetterTooLargeError(str(error)))
            else:
                done(KafkaException(error))

        try:
            self.producer.produce(
                topic, key=parts.key, value=parts.value, headers=parts.headers,
                on_delivery=on_delivery,
            )  # fmt: skip
        except KafkaException as exc:
            if exc.args and exc.args[0].code() in _TOO_LARGE:
                raise DeadLetterTooLargeError(str(exc)) from exc
            raise


class Worker:
    """Consumes ``topics`` in consumer group ``group``; see the module docstring.

    ``concurrency``: records handled at once (never two of one key). ``receiver_timeout``:
    seconds a receiver call may run (``None``: no deadline). ``middlewares``: the whole
    handling chain (default: :func:`~consumer.middleware.default_middlewares` from
    ``retry``, ``receiver_timeout`` and ``metrics``). ``classifier``: which receiver
    exceptions are infrastructure or data failures.
    """

    def __init__(
        self,
        topics: Sequence[str],
        group: str,
        *,
        settings: FlowbusSettings | None = None,
        kafka_config: Mapping[str, Any] | None = None,
        receiver_modules: Iterable[str] = (),
        deserializer: EventDeserializer | None = None,
        retry: ReceiverRetryPolicy | None = None,
        dead_letter_suffix: str = DEFAULT_SUFFIX,
        metrics: WorkerMetrics | None = None,
        poll_timeout: float = 1.0,
        concurrency: int = 1,
        receiver_timeout: float | None = DEFAULT_RECEIVER_TIMEOUT,
        shutdown_timeout: float = 30.0,
        commit_interval: float = 1.0,
        max_abandoned: int = 16,
        max_buffered: int | None = None,
        middlewares: Sequence[Middleware] | None = None,
        classifier: FailureClassifier | None = None,
    ) -> None:
        if not topics:
            raise ConfigurationError("a worker needs at least one topic")
        if concurrency < 1:
            raise ConfigurationError("concurrency must be at least 1")
        if receiver_timeout is not None and receiver_timeout <= 0:
            raise ConfigurationError("the receiver timeout must be positive")
        if shutdown_timeout < 0 or commit_interval <= 0:
            raise ConfigurationError("shutdown timeout must be >= 0, commit interval > 0")
        self.settings = settings or get_settings()
        common = kafka_client_config(self.settings, kafka_config)
        bootstrap = common["bootstrap.servers"]
        self.group = group
        self.topics = [f"{self.settings.topic_prefix}{topic}" for topic in topics]
        self.dead_letter_suffix = dead_letter_suffix
        self.metrics = metrics
        self.poll_timeout = poll_timeout
        self.concurrency = concurrency
        self.shutdown_timeout = shutdown_timeout
        self.commit_interval = commit_interval
        self.max_abandoned = max_abandoned
        self.max_buffered = max_buffered or max(2000, 100 * concurrency)
        self._stopping = threading.Event()
        self._hurry = threading.Event()
        import flowbus.catalog  # noqa: F401  (the catalog's signals must be known here)

        import_receiver_modules([*self.settings.receiver_modules, *receiver_modules])
        if deserializer is None:
            from flowbus.avro.serializer import EventDeserializer

            deserializer = EventDeserializer.from_settings(self.settings)
        if middlewares is None:
            middlewares = default_middlewares(
                retry=retry or ReceiverRetryPolicy(),
                receiver_timeout=receiver_timeout,
                metrics=metrics,
            )
        self.handler = MessageHandler(
            group, deserializer, middlewares=middlewares, classifier=classifier
        )
        # One log for the worker's clients: a broker that goes away is one line, not
        # thousands (see flowbus.broker).
        self.broker_log = BrokerLog()
        common |= self.broker_log.client_config()
        self._consumer_config = {
            **DEFAULT_CONSUMER_CONFIG,
            **common,
            **_COMMIT_CONFIG,
            "group.id": group,
            "client.id": f"flowbus-worker-{self.settings.service_name}",
        }
        self._dlq_producer_config: dict[str, Any] = {
            **{k: v for k, v in common.items() if not k.startswith(("auto.", "enable.auto"))},
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
        }
        self.engine: Engine | None = None
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._committed: dict[tuple[str, int], int] = {}
        self._kafka_paused: set[tuple[str, int]] = set()
        self._assigned: set[tuple[str, int]] = set()
        self._last_lag = 0.0
        self._last_commit = 0.0
        self._limit: int | None = None
        self._taken = 0
        self._full_since: float | None = None
        self._backpressure = False
        self._poll_lock = threading.Lock()  # the consumer is used by one thread at a time
        self._fetching = False  # concurrency 1: the handler thread is polling
        self._handler_seen = (-1, 0.0)  # (attempts ended, when) as last seen by _watch
        self._fetch_error: BaseException | None = None
        if metrics is not None:  # until the first poll: /healthz says what it waits for
            waiting = f"waiting for the Kafka broker (KAFKA_BOOTSTRAP_SERVERS={bootstrap})"
            metrics.set_state(
                in_flight=0, buffered=0, paused_partitions=0, abandoned=0, degraded=[waiting]
            )

    @property
    def stats(self) -> WorkerStats:
        return self.engine.stats if self.engine is not None else WorkerStats()

    # --- lifecycle -----------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the worker to shut down (see the module docstring)."""
        if self._stopping.is_set():
            self._hurry.set()
        self._stopping.set()

    def run(
        self, *, max_messages: int | None = None, install_signal_handlers: bool = True
    ) -> WorkerStats:
        """Consume until :meth:`stop` (or SIGTERM/SIGINT, or ``max_messages`` finished).

        Raises :class:`~flowbus.errors.ReceiversAbandonedError` (after committing) when
        more than ``max_abandoned`` receivers are stuck past their deadline.
        """
        signalled = self.stopped_by_signals() if install_signal_handlers else None
        with signalled or contextlib.nullcontext(), _collector_for_batches():
            return self._run(max_messages)

    @contextlib.contextmanager
    def stopped_by_signals(self) -> Iterator[None]:
        """SIGTERM/SIGINT stop this worker while the block runs (main thread only).

        For a command that announces the worker before :meth:`run` (then called with
        ``install_signal_handlers=False``): a signal in between stops it as well.
        """
        previous = self._install_signal_handlers()
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signals.signal(signum, handler)

    def _run(self, max_messages: int | None) -> WorkerStats:
        self._consumer = Consumer(self._consumer_config)
        self._producer = Producer(self._dlq_producer_config)
        engine = self.engine = Engine(
            self.handler,
            KafkaDeadLetterSink(self._producer),
            concurrency=self.concurrency,
            dead_letter_suffix=self.dead_letter_suffix,
            max_abandoned=self.max_abandoned,
        )
        if self.concurrency == 1:
            engine.fetch = self._fetch
        self._limit = max_messages
        engine.start()
        try:
            with self._poll_lock:  # the handler thread polls once the consumer is ready
                self._ensure_dead_letter_topics()
                self._consumer.subscribe(
                    self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke,
                    on_lost=self._on_lost,
                )  # fmt: skip
            log.info(
                "worker %s consuming %s (concurrency %d)",
                self.group, ", ".join(self.topics), self.concurrency,
            )  # fmt: skip
            while not self._stopping.is_set() and engine.fatal is None:
                if engine.fetch is None:
                    self._poll_once(engine)
                else:
                    self._watch(engine)
                if max_messages is not None and engine.stats.handled >= max_messages:
                    break
        finally:
            engine.fetch = None
            with self._poll_lock:  # a poll of the handler thread ends first
                self._shutdown(engine)
        if self._fetch_error is not None:
            raise self._fetch_error
        if engine.fatal is not None:
            raise engine.fatal
        return engine.stats

    def _fetch(self) -> None:
        """Concurrency 1, on the handler thread when nothing is ready: poll once."""
        self._fetching = True
        try:
            with self._poll_lock:
                engine = self.engine
                if engine is not None and engine.fetch is not None:
                    self._poll_once(engine, on_handler_thread=True)
        except BaseException as exc:  # for run() to raise, after shutting down
            self._fetch_error = exc
            self._stopping.set()
        finally:
            self._fetching = False

    def _watch(self, engine: Engine) -> None:
        """Concurrency 1, on the calling thread: poll in the handler thread's stead while
        it finishes nothing for ``TAKEOVER_S`` (it is in a slow receiver)."""
        self._stopping.wait(TICK_S)
        now = time.monotonic()
        ended = engine.attempts_ended
        if self._fetching or ended != self._handler_seen[0]:
            self._handler_seen = (ended, now)
            return
        if now - self._handler_seen[1] < TAKEOVER_S:
            return
        with self._poll_lock:
            if engine.fetch is not None and not self._stopping.is_set():
                self._poll_once(engine)

    def _poll_once(self, engine: Engine, on_handler_thread: bool = False) -> None:
        assert self._consumer is not None and self._producer is not None
        timeout = self.poll_timeout
        if engine.busy():
            timeout = min(timeout, TICK_S)
        elif on_handler_thread:
            timeout = min(timeout, SHORT_POLL_S)
        next_timer = engine.next_timer()
        if next_timer is not None:
            timeout = min(timeout, next_timer)
        batch = min(
            SHORT_BATCH if on_handler_thread else BATCH, self.max_buffered - engine.buffered
        )
        if self._limit is not None:  # take no more than the limit (the rest is not ours)
            batch = min(batch, self._limit - self._taken)
        self._note_fullness(batch <= 0)
        if batch > 0 or self._backpressure:
            # poll() returns as soon as one message is there; consume(n, 0) then takes
            # what is already fetched (consume(n, timeout) would wait out the timeout).
            # Every call that lets go of the GIL costs a hand-off with the handler
            # threads: while they have work, take what is fetched with one call.
            messages = self._consumer.consume(batch, 0) if engine.buffered else []
            if not messages:
                first = self._consumer.poll(timeout)
                messages = [] if first is None else [first]
                if first is not None and batch > 1:
                    messages += self._consumer.consume(batch - 1, 0)
        else:
            messages = []
            at_limit = self._limit is not None and self._taken >= self._limit
            if on_handler_thread:  # nothing ready, nothing to take: timers, acks
                self._producer.poll(min(timeout, TICK_S))
            else:
                below = 0 if at_limit else self.max_buffered // 2
                engine.wait_for_room(below, min(timeout, TICK_S))
        self._taken += len(messages)
        records = []
        for message in messages:
            if message.error() is not None:
                self._on_consume_error(message)
                continue
            records.append(
                ConsumedRecord(
                    message.topic() or "",
                    message.partition() or 0,
                    message.offset() or 0,
                    message.key(),
                    message.value(),
                    message.headers(),
                )
            )
        if records:
            engine.submit(records)
        engine.tick()
        if engine.dead_lettering:
            self._producer.poll(0)  # dead-letter acknowledgements
        self._apply_pauses(engine)
        now = time.monotonic()
        if now - self._last_commit >= self.commit_interval:
            self._last_commit = now
            self._commit(engine.committable(), asynchronous=True)
        if self.metrics is not None:
            self._report(engine, now)

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("signal %d: finishing what runs (up to %gs), then stopping",
                     signum, self.shutdown_timeout)  # fmt: skip
            self.stop()

        return {
            signum: signals.signal(signum, on_signal)
            for signum in (signals.SIGTERM, signals.SIGINT)
        }

    def _shutdown(self, engine: Engine) -> None:
        engine.stop_dispatching()
        consumer, self._consumer = self._consumer, None
        producer, self._producer = self._producer, None
        self._let_finish(engine, producer, self.shutdown_timeout)
        if engine.busy():
            log.warning(
                "%d attempt(s) still running at shutdown: not committed, they will be redone",
                engine.busy(),
            )
        if consumer is not None:
            self._commit(engine.committable(), asynchronous=False, consumer=consumer)
            self._consumer = consumer  # the revoke callback of close() commits through it
            try:
                consumer.close()  # leaves the group now, so its partitions move at once
            finally:
                self._consumer = None
        if producer is not None:
            left = producer.flush(5)
            if left:
                log.error("%d dead-letter record(s) not acknowledged at shutdown", left)
        engine.close()
        log.info("worker %s stopped: %s", self.group, engine.stats)

    def _let_finish(
        self,
        engine: Engine,
        producer: Producer | None,
        seconds: float,
        partitions: list[tuple[str, int]] | None = None,
    ) -> None:
        """Give what runs (in ``partitions``) up to ``seconds`` to finish, serving deadlines
        and dead-letter acknowledgements meanwhile; a second stop signal cuts it short."""
        deadline = time.monotonic() + seconds
        while engine.busy(partitions) and time.monotonic() < deadline and not self._hurry.is_set():
            engine.tick()
            if producer is not None:
                producer.poll(0.05)
            else:
                time.sleep(0.05)

    # --- offsets, pauses, rebalances -------------------------------------------------------

    def _commit(
        self,
        offsets: Mapping[tuple[str, int], int],
        *,
        asynchronous: bool,
        consumer: Consumer | None = None,
    ) -> None:
        consumer = consumer or self._consumer
        changed = [
            TopicPartition(topic, partition, offset)
            for (topic, partition), offset in offsets.items()
            if self._committed.get((topic, partition)) != offset
        ]
        if consumer is None or not changed:
            return
        try:
            if asynchronous:
                consumer.commit(offsets=changed, asynchronous=True)
            else:
                consumer.commit(offsets=changed, asynchronous=False)
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == KafkaError._NO_OFFSET:
                return
            log.error("offset commit failed: %s", exc)
            return
        for tp in changed:
            self._committed[(tp.topic, tp.partition)] = tp.offset

    def _note_fullness(self, full: bool) -> None:
        """Backpressure: with ``max_buffered`` records waiting, take no more; if that lasts,
        pause the partitions (so that polling, which keeps the worker in its group, brings
        nothing), until half of them are done."""
        now = time.monotonic()
        if not full:
            self._full_since = None
            assert self.engine is not None
            if self._backpressure and self.engine.buffered <= self.max_buffered // 2:
                self._backpressure = False
        elif self._full_since is None:
            self._full_since = now
        elif now - self._full_since >= FULL_PAUSE_S:
            self._backpressure = True

    def _apply_pauses(self, engine: Engine) -> None:
        assert self._consumer is not None
        wanted = engine.paused() & self._assigned
        if self._backpressure:
            wanted = set(self._assigned)
        pause = wanted - self._kafka_paused
        resume = self._kafka_paused - wanted
        if pause:
            self._consumer.pause([TopicPartition(t, p) for t, p in sorted(pause)])
        if resume:
            self._consumer.resume([TopicPartition(t, p) for t, p in sorted(resume)])
        self._kafka_paused = wanted

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        log.info("partitions assigned: %s", _names(keys))
        self._assigned.update(keys)
        if self.engine is not None:
            self.engine.assign(keys)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        log.info("partitions revoked: %s", _names(keys))
        engine = self.engine
        if engine is not None:
            engine.hold(keys)
            # Let what runs there finish first (at shutdown, it already had its time).
            wait = 0.0 if self._stopping.is_set() else min(self.shutdown_timeout, 10.0)
            self._let_finish(engine, self._producer, wait, keys)
            self._commit(engine.committable(keys), asynchronous=False, consumer=consumer)
            engine.revoke(keys)
        self._forget(keys)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        log.warning("partitions lost (no commit possible): %s", _names(keys))
        if self.engine is not None:
            self.engine.revoke(keys)
        self._forget(keys)

    def _forget(self, keys: list[tuple[str, int]]) -> None:
        for key in keys:
            self._assigned.discard(key)
            self._kafka_paused.discard(key)
            self._committed.pop(key, None)

    def _on_consume_error(self, message: Message) -> None:
        error = message.error()
        assert error is not None
        if error.code() == KafkaError._PARTITION_EOF:
            return
        log.error("consume error on %s: %s", message.topic(), error)
        if error.fatal():
            raise KafkaException(error)

    def _report(self, engine: Engine, now: float) -> None:
        metrics, consumer = self.metrics, self._consumer
        assert metrics is not None and consumer is not None
        metrics.poll_succeeded()
        broker_trouble = self.broker_log.recent_failure()
        metrics.set_state(
            in_flight=engine.busy(),
            buffered=engine.buffered,
            paused_partitions=len(engine.paused()),
            abandoned=engine.abandoned_now,
            degraded=[
                *engine.degraded(),
                *([f"Kafka broker connection failing: {broker_trouble}"] if broker_trouble else []),
            ],
        )
        if now - self._last_lag < LAG_INTERVAL_S:
            return
        self._last_lag = now
        assignment = consumer.assignment()
        for position in consumer.position(assignment) if assignment else []:
            try:
                _, high = consumer.get_watermark_offsets(position, cached=True)
            except KafkaException:
                continue
            if position.offset >= 0 and high >= 0:
                metrics.set_lag(position.topic, position.partition, high - position.offset)

    def _ensure_dead_letter_topics(self) -> None:
        """Create missing dead-letter topics (brokers may not auto-create topics).

        The first contact with the broker: one that does not answer within
        ``PROBE_TIMEOUT_S`` raises :class:`~flowbus.errors.BrokerUnreachableError`, so a
        worker started against a wrong address ends at once, saying so.
        """
        admin_config = {
            k: v
            for k, v in self._dlq_producer_config.items()
            if k not in ("enable.idempotence", "acks", "linger.ms")
        }
        admin = AdminClient(admin_config)
        probe_broker(admin, admin_config, timeout=PROBE_TIMEOUT_S)
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


@contextlib.contextmanager
def _collector_for_batches() -> Iterator[None]:
    """Tune the garbage collector to a worker's allocations while it runs, then restore it.

    What exists before the loop (modules, settings, the application) lives as long as the
    process: it is frozen out of the collector's passes, so full ones do not walk it again
    and again. A record's objects (message, headers, context, event) live for one batch:
    at Python's default first threshold (700) the collector ran ~300 times per 20,000
    records, each time finding a live batch and promoting it to the older generations.
    """
    gc.collect()
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], GC_YOUNG_THRESHOLD), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _names(keys: Iterable[tuple[str, int]]) -> str:
    return ", ".join(f"{topic}[{partition}]" for topic, partition in sorted(keys)) or "none"
