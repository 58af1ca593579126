"""The relay: committed outbox rows onto Kafka, in commit order per key, at least once.

**Contract.** A row is marked sent only after the broker acknowledged it (idempotent
producer, ``acks=all``). Broker and registry outages never stop the relay: the rows stay,
and are tried again after :class:`~flowbus.backoff.Backoff` delays. A crash between the
acknowledgement and the mark publishes those rows again (a duplicate, never a loss);
consumers that must not see one twice deduplicate by ``ce_id``.

**Framing** is settled here: the stored body is written with the schema named by the
row's (event type, fingerprint); the relay finds that schema among the signals defined in
its process, else in the schema directory (``schemas/``), and frames the body with the
registry's id for it (Confluent wire format) or with the fingerprint (single-object
encoding).

**Order, one relay.** Rows are read in ``seq`` order and produced in that order through
one idempotent producer, so each partition receives them in that order. ``seq`` order is
commit order per key: on SQLite, writers are serialised; on PostgreSQL, a lower ``seq``
can commit after a higher one (sequence values are taken at INSERT), so the INSERT of a
keyed event first takes a transaction-scoped advisory lock on the key's hash. A second
transaction writing the same key waits until the first commits or rolls back, and takes
its ``seq`` after that. So for one key, ``seq`` order is commit order, and any snapshot
that shows a key's row also shows every row of that key with a lower ``seq``: a read
never skips an invisible earlier row of a key it publishes. Keyless events are ordered
with nothing (as in the consumer).

**Order, several relays.** Keys are hashed into :data:`~.store.BUCKETS` buckets and a
relay publishes only the buckets it holds a lease on (table ``flowbus_outbox_leases``;
taken with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two relays never take the same
bucket). A lease is a bucket, an owner and an expiry by the database's clock. Each relay
heartbeats, renews its leases, and moves towards a fair share (``ceil(buckets / live
relays)``), giving up surplus buckets between batches, when nothing of theirs is in
flight. One bucket therefore has one publisher at a time, provided a relay never
publishes on an expired lease: it starts a batch only while its own conservative view of
the lease (the local monotonic clock when the renewing transaction *began*, plus the
TTL) leaves more than ``message.timeout.ms`` plus a margin, and librdkafka settles every
message (delivered or failed) within ``message.timeout.ms``. The relay waits for that
before it reads again, so when its lease lapses nothing of it is still in flight, and the
next owner starts from the rows it did not mark. A relay that stalls past its lease
(paused process) stops publishing before the lease lapses by this rule; one that dies
leaves its buckets to others after the TTL.

**Within a batch**, a row that cannot be framed (registry unreachable, schema unknown)
ends the batch there: the rows before it are produced, it and the rest wait. A delivery
that fails leaves its row pending; with the idempotent producer, messages of one
partition are acknowledged in order, so a failure in a run of one key's messages fails
the rest of that run with it (they time out together in a broker outage).

**Rejected rows.** Some refusals never get better by retrying: a record larger than the
topic's ``max.message.bytes``, an invalid record, a topic that may not be written
(:data:`PERMANENT_ERRORS`; an unknown topic is not among them: a restarting broker says
so for a while). The broker refuses a whole record batch at once, so a permanent error of
a message batched with others does not yet say that *this* row is at fault: the relay
produces each such row again on its own, and only a refusal of that lone message (or
librdkafka refusing the message itself in ``produce``) rejects the row. It is produced
again only when no earlier row of its key in the batch stays pending: otherwise it would
overtake that row, and it waits with it instead. A rejected row is kept, with its error
code and message and the time, is no longer pending, is never deleted by the clean-up,
and is logged (event id, type, topic, reason; never the payload) and counted (``flowbus
outbox status``, the metrics).
``flowbus outbox retry`` re-queues it in its old place.

The **order rule** for its key: later rows of that key are published as if the rejected
one were not there. A permanent refusal does not end by waiting, and holding the key
would stop every later event of that key (one Caluma case) until an operator acts;
instead its consumers miss that one event until it is re-queued, and a re-queued row is
published after the rows of its key that went out meanwhile (out of order; ``ce_time``
says when it happened). Every other failure keeps the row pending and retried as before.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from flowbus import cloudevents
from flowbus.avro.codec import ParsedSchema
from flowbus.avro.serializer import EventSerializer, codec_for
from flowbus.backoff import Backoff
from flowbus.broker import kafka_client_config
from flowbus.errors import (
    ConfigurationError,
    DeliveryFailedError,
    MissingExtraError,
    OutboxError,
    OutboxStoreError,
    SchemaRegistryError,
)
from flowbus.kafka_delivery import produce_and_wait
from flowbus.settings import FlowbusSettings, get_settings
from flowbus.signals import WorkflowSignal

from ..event_producer import DEFAULT_KAFKA_CONFIG
from .store import CHANNEL, PendingRow, Rejection, RelayStore

if TYPE_CHECKING:
    from .metrics import OutboxMetrics

__all__ = ["PERMANENT_ERRORS", "OutboxRelay"]

log = logging.getLogger(__name__)

#: librdkafka settles each message within this (the relay's default message.timeout.ms).
DEFAULT_MESSAGE_TIMEOUT_S = 10.0
#: Slack between the producer's deadline and the lease's.
LEASE_MARGIN_S = 2.0
#: Delivery errors no retry can cure: the row is rejected (module docstring).
PERMANENT_ERRORS = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_TIMESTAMP,
        KafkaError.UNSUPPORTED_FOR_MESSAGE_FORMAT,
        KafkaError.POLICY_VIOLATION,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError._INVALID_ARG,
    }
)
# Not among them: an unknown topic or partition. A broker that is restarting, or a topic
# being created, answers so for a while; such a row waits (pending) as in any outage.


class _NoMetrics:
    """The relay's metrics without the 'metrics' extra: nothing is counted."""

    def observe_status(self, status: object) -> None:
        pass

    def published(self, count: int) -> None:
        pass

    def rejected(self, count: int) -> None:
        pass

    def failed(self, count: int) -> None:
        pass

    def close(self) -> None:
        pass


def _default_metrics() -> OutboxMetrics | _NoMetrics:
    try:
        from .metrics import OutboxMetrics
    except MissingExtraError:
        return _NoMetrics()
    return OutboxMetrics()


class OutboxRelay:
    """Publishes an outbox's committed rows; ``start()`` in a thread or ``run()`` here.

    ``metrics``: default :class:`OutboxMetrics` when the ``metrics`` extra is installed,
    else none (the relay itself needs no extra).
    """

    def __init__(
        self,
        database_url: str,
        *,
        settings: FlowbusSettings | None = None,
        kafka_config: Mapping[str, Any] | None = None,
        serializer: EventSerializer | None = None,
        name: str | None = None,
        batch_size: int = 1000,
        poll_interval: float = 1.0,
        lease_ttl: float = 30.0,
        retention: float = 86_400.0,
        backoff: Backoff | None = None,
        metrics: OutboxMetrics | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        config: dict[str, Any] = {
            **DEFAULT_KAFKA_CONFIG,
            "message.timeout.ms": int(DEFAULT_MESSAGE_TIMEOUT_S * 1000),
            **kafka_client_config(
                self.settings,
                kafka_config,
                client_id=f"flowbus-outbox-{self.settings.service_name}",
            ),
        }
        self.message_timeout = int(config["message.timeout.ms"]) / 1000
        if lease_ttl < 1.5 * (self.message_timeout + LEASE_MARGIN_S):
            raise ConfigurationError(
                f"outbox lease_ttl {lease_ttl}s must be at least 1.5 x (message.timeout.ms "
                f"+ {LEASE_MARGIN_S:.0f}s) = {1.5 * (self.message_timeout + LEASE_MARGIN_S)}s"
            )
        if batch_size < 1 or poll_interval <= 0 or retention < 0:
            raise ConfigurationError("outbox relay: batch_size >= 1, poll_interval > 0")
        self.database_url = database_url
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.lease_ttl = lease_ttl
        self.retention = retention
        self.backoff = backoff or Backoff(initial=0.5, maximum=30.0)
        self.metrics: OutboxMetrics | _NoMetrics = metrics or _default_metrics()
        self._kafka_config = config
        self._serializer = serializer or EventSerializer.from_settings(self.settings)
        self._schemas: dict[tuple[str, str], ParsedSchema] = {}
        self._store: RelayStore | None = None
        self._listener: Any = None
        self._producer: Producer | None = None
        self._buckets: list[int] = []
        self._lease_deadline = 0.0  # monotonic
        self._next_maintenance = 0.0
        self._failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- running -----------------------------------------------------------------------

    def start(self) -> OutboxRelay:
        """Run the relay on a daemon thread until :meth:`stop`."""
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="flowbus-outbox-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Finish the batch in flight, give up the leases, close; waits for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def buckets(self) -> list[int]:
        """The buckets this relay holds a lease on now."""
        return list(self._buckets)

    def run(
        self, *, drain: bool = False, on_published: Callable[[int], object] | None = None
    ) -> None:
        """The relay loop, on this thread, until :meth:`stop` (or SIGTERM in the CLI).

        ``drain``: return as soon as the buckets this relay holds have nothing pending (a
        one-shot relay, for jobs and tests; through outages it keeps trying meanwhile).
        ``on_published(n)``: called after each batch that published ``n > 0`` rows.
        """
        try:
            while not self._stop.is_set():
                try:
                    published = self._step()
                except (OutboxStoreError, KafkaException) as exc:
                    log.error("outbox relay %s: %s; retrying", self.name, exc)
                    self._reset_store()
                    published = None
                if published is None:
                    self._failures += 1
                    self._stop.wait(self.backoff.delay(self._failures))
                else:
                    self._failures = 0
                    if published and on_published is not None:
                        on_published(published)
                    if published == 0:
                        if drain:
                            return
                        self._wait_for_rows()
        finally:
            self._close()

    def _step(self) -> int | None:
        """One batch; the number published, or None after a failure (back off)."""
        store = self._open()
        if time.monotonic() >= self._next_maintenance:
            self._maintain(store)
        if self._lease_deadline - time.monotonic() < self.message_timeout + LEASE_MARGIN_S:
            self._maintain(store)  # renew before a batch that could outlive the lease
        rows = store.pending(self._buckets, self.batch_size)
        if not rows:
            return 0
        return self._publish(store, rows)

    def _maintain(self, store: RelayStore) -> None:
        began = time.monotonic()
        self._buckets = store.maintain_leases(self.name, int(self.lease_ttl * 1000))
        self._lease_deadline = began + self.lease_ttl
        self._next_maintenance = began + min(self.lease_ttl / 3, 5.0)
        removed = store.clean_up(int(self.retention * 1000))
        if removed:
            log.info("outbox relay %s: %d sent row(s) past retention deleted", self.name, removed)
        self.metrics.observe_status(store.status())

    # -- publishing --------------------------------------------------------------------

    def _publish(self, store: RelayStore, rows: list[PendingRow]) -> int | None:
        producer = self._kafka()
        outcomes: dict[int, KafkaError | None] = {}
        produced: list[PendingRow] = []
        messages: dict[int, tuple[bytes, cloudevents.KafkaHeaders]] = {}
        complete = True
        for row in rows:
            try:
                value, headers = self._message(row)
            except (SchemaRegistryError, OutboxError) as exc:
                log.error(
                    "event %s (%s) to %s not framed yet, retried later: %s",
                    row.id, row.event_type, row.topic, exc,
                )  # fmt: skip
                complete = False
                break
            on_delivery = functools.partial(_record, outcomes, row.seq)
            messages[row.seq] = (value, headers)
            try:
                _produce(producer, row.topic, row.key, value, headers, on_delivery)
            except KafkaException as exc:  # librdkafka refused this message itself
                outcomes[row.seq] = _kafka_error(exc)
            produced.append(row)
        while len(outcomes) < len(produced):  # every message settles within its timeout
            producer.flush(self.message_timeout + LEASE_MARGIN_S)
        rejected: dict[int, Rejection] = {}
        held: set[str | None] = set()  # keys with an earlier row left pending in this batch
        for row in produced:
            error = outcomes[row.seq]
            if error is None:
                continue
            if error.code() not in PERMANENT_ERRORS or row.key in held:
                held.add(row.key)  # retried later, and what follows it in its key with it
                continue
            # The broker refuses whole batches: only a lone message's refusal is this row's.
            outcomes[row.seq] = error = self._produce_alone(producer, row, *messages[row.seq])
            if error is not None and error.code() in PERMANENT_ERRORS:
                rejected[row.seq] = Rejection(error.name(), error.str())
            elif error is not None:
                held.add(row.key)
        sent = [row.seq for row in produced if outcomes[row.seq] is None]
        failed = [row for row in produced if outcomes[row.seq] is not None]
        failed = [row for row in failed if row.seq not in rejected]
        store.mark_sent(sent)
        self.metrics.published(len(sent))
        if rejected:
            store.mark_rejected(rejected)
            self.metrics.rejected(len(rejected))
            self.metrics.observe_status(store.status())
            for row in produced:
                if row.seq in rejected:
                    log.error(
                        "event %s (%s) for %s rejected by the broker for good, set aside "
                        "in the outbox (flowbus outbox rejected / retry): %s: %s",
                        row.id, row.event_type, row.topic,
                        rejected[row.seq].code, rejected[row.seq].message,
                    )  # fmt: skip
        if failed:
            store.mark_failed([row.seq for row in failed])
            self.metrics.failed(len(failed))
            for row in failed[:20]:
                log.error(
                    "event %s (%s) not delivered to %s, stays in the outbox: %s",
                    row.id, row.event_type, row.topic, outcomes[row.seq],
                )  # fmt: skip
            if len(failed) > 20:
                log.error("... and %d more undelivered events stay in the outbox", len(failed) - 20)
        return len(sent) + len(rejected) if complete and not failed else None

    def _produce_alone(
        self, producer: Producer, row: PendingRow, value: bytes, headers: cloudevents.KafkaHeaders
    ) -> KafkaError | None:
        """Produce one message with nothing else in flight; its delivery error, if any."""
        try:
            produce_and_wait(
                producer,
                lambda report: _produce(producer, row.topic, row.key, value, headers, report),
                timeout=None,
            )
        except KafkaException as exc:
            return _kafka_error(exc)
        except DeliveryFailedError as exc:
            return cast(KafkaError, exc.error)
        return None

    def _message(self, row: PendingRow) -> tuple[bytes, cloudevents.KafkaHeaders]:
        schema = self._schema(row.event_type, row.schema_fingerprint)
        framed = self._serializer.frame(row.event_type, schema, row.topic, row.payload)
        headers: cloudevents.KafkaHeaders = [
            (name, value.encode()) for name, value in json.loads(row.headers)
        ]
        headers.append((cloudevents.DATASCHEMA, framed.dataschema.encode()))
        return framed.value, headers

    def _schema(self, event_type: str, fingerprint_hex: str) -> ParsedSchema:
        key = (event_type, fingerprint_hex)
        schema = self._schemas.get(key)
        if schema is not None:
            return schema
        fingerprint = bytes.fromhex(fingerprint_hex)
        try:
            own = codec_for(WorkflowSignal.get_signal_by_type(event_type)).schema
        except KeyError:
            own = None
        if own is not None and own.fingerprint == fingerprint:
            schema = own
        else:
            entry = self._serializer.schema_dir.by_fingerprint(fingerprint)
            if entry is None or entry.event_type != event_type:
                raise OutboxError(
                    f"schema {fingerprint_hex} of {event_type} is neither defined here nor in "
                    f"the schema directory {self._serializer.schema_dir.directory} (import the "
                    "signal's module in the relay: --import)"
                )
            schema = entry.parsed
        self._schemas[key] = schema
        return schema

    # -- connections -------------------------------------------------------------------

    def _open(self) -> RelayStore:
        if self._store is None:
            store = RelayStore(self.database_url)
            try:
                store.migrate()
                if store.dialect == "postgresql":
                    self._listen()
            except BaseException:
                store.close()
                raise
            self._store = store
        return self._store

    def _listen(self) -> None:
        from flowbus.database import connect_postgres

        listener = connect_postgres(self.database_url, OutboxStoreError)
        listener.execute(f"LISTEN {CHANNEL}")
        self._listener = listener

    def _wait_for_rows(self) -> None:
        """Until a NOTIFY (PostgreSQL), the poll interval, or stop."""
        if self._listener is None:
            self._stop.wait(self.poll_interval)
            return
        deadline = time.monotonic() + self.poll_interval
        try:  # short slices, so that stop() is seen quickly
            while not self._stop.is_set() and (left := deadline - time.monotonic()) > 0:
                if any(True for _ in self._listener.notifies(timeout=min(left, 0.2), stop_after=1)):
                    return
        except Exception as exc:  # a broken listener: fall back to polling until reconnected
            log.warning("outbox relay %s: LISTEN connection lost (%s)", self.name, exc)
            self._reset_store()

    def _kafka(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(
                self._kafka_config, logger=logging.getLogger("flowbus.librdkafka")
            )
        return self._producer

    def _reset_store(self) -> None:
        for conn in (self._store, self._listener):
            if conn is not None:
                with contextlib.suppress(Exception):  # already broken
                    conn.close()
        self._store = self._listener = None
        self._buckets = []
        self._lease_deadline = 0.0

    def _close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self.message_timeout)
        if self._store is not None:
            try:
                self._store.release(self.name)
            except OutboxStoreError as exc:
                log.warning("outbox relay %s: leases not released (%s)", self.name, exc)
        self._reset_store()


def _record(
    outcomes: dict[int, KafkaError | None], seq: int, error: KafkaError | None, _: Message
) -> None:
    outcomes[seq] = error


def _kafka_error(exc: KafkaException) -> KafkaError:
    error = exc.args[0] if exc.args else None
    return error if isinstance(error, KafkaError) else KafkaError(KafkaError._FAIL, str(exc))


def _produce(
    producer: Producer,
    topic: str,
    key: str | None,
    value: bytes,
    headers: cloudevents.KafkaHeaders,
    on_delivery: Callable[[KafkaError | None, Message], None],
) -> None:
    while True:
        try:
            producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
            return
        except BufferError:  # the local queue is full: serve reports until there is room
            producer.poll(0.1)
