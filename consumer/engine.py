"""Key-ordered concurrent handling of consumed records, whatever they are read from.

Records are queued per key (a *lane*: one partition's records with one key, in offset
order). Up to ``concurrency`` lanes run at once, on handler threads; a lane runs one
record at a time, so never two records of one key are in flight together and a key's
events keep their order. A record without a key is a lane of its own.

- A record waiting for a retry keeps its lane (the records of its key wait behind it);
  every other lane goes on.
- An infrastructure failure pauses the record's partition: none of its lanes start a
  record until the pause ends, then the failed record is tried again.
- Each partition's committable offset is its first record not yet finished
  (:class:`~consumer.offsets.PartitionOffsets`); a dead-lettered record is finished once
  the dead-letter topic acknowledged it.
- A sync receiver still running at its deadline is *abandoned*: its thread cannot be
  stopped, so it is replaced, the call counts as failed (``timeout``) and the record goes
  on through the middlewares' decision. A thread that later returns just ends. Past
  ``max_abandoned`` stuck threads :attr:`Engine.fatal` is set, for the driver to exit.

The driver (the Kafka :class:`~consumer.worker.Worker`, or the in-memory test bus) feeds
records with :meth:`Engine.submit`, calls :meth:`Engine.tick` often (timers and
deadlines), commits :meth:`Engine.committable`, and applies :meth:`Engine.paused`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from flowbus.backoff import Backoff
from flowbus.errors import ReceiversAbandonedError, ReceiverTimeoutError
from flowbus.signals import callable_name

from .deadletter import DEFAULT_SUFFIX, DeadLetter, DeadLetterRecordParts, dead_letter_topic
from .failures import Failure, FailureKind
from .handler import MessageHandler
from .middleware import ConsumedRecord, MessageContext, Outcome, PausePartition, RetryLater
from .offsets import PartitionOffsets

__all__ = ["DeadLetterSink", "DeadLetterTooLargeError", "Engine", "WorkerStats"]

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]


class DeadLetterTooLargeError(Exception):
    """The dead-letter topic (or the client) refused the record for its size."""


class DeadLetterSink(Protocol):
    """Where dead letters go. ``send`` may raise :class:`DeadLetterTooLargeError` or any
    error (infrastructure); ``done(error)`` is called later with ``None`` once acknowledged."""

    def send(
        self, topic: str, parts: DeadLetterRecordParts, done: Callable[[Exception | None], None]
    ) -> None: ...


@dataclasses.dataclass
class WorkerStats:
    """What a worker finished since it started."""

    handled: int = 0  # finished records: re-sent or dead-lettered
    retried: int = 0  # finished records that needed more than one attempt
    dead_lettered: int = 0
    abandoned: int = 0  # receiver threads given up on at a deadline
    timeouts: int = 0


class _Partition:
    __slots__ = ("held", "infra", "key", "lanes", "offsets", "paused_until", "revoked")

    def __init__(self, key: TopicPartition) -> None:
        self.key = key
        self.offsets = PartitionOffsets()
        self.lanes: dict[object, _Lane] = {}
        self.paused_until = 0.0
        #: Records failing on infrastructure now, and why (for /healthz).
        self.infra: dict[MessageContext, str] = {}
        #: Being revoked: start nothing new, but note what finishes.
        self.held = False
        #: Revoked: forgotten; what finishes later is ignored.
        self.revoked = False


class _Lane:
    __slots__ = ("busy", "key", "partition", "queue")

    def __init__(self, partition: _Partition, key: object) -> None:
        self.partition = partition
        self.key = key
        self.queue: deque[MessageContext] = deque()
        #: Scheduled, running, or waiting for its head's retry time.
        self.busy = False


class _Attempt:
    """One attempt in progress on a handler thread; the handler's :class:`CallGuard`."""

    __slots__ = ("abandoned", "awaited", "context", "deadline", "engine", "lane", "receiver")

    def __init__(self, engine: Engine, lane: _Lane, context: MessageContext) -> None:
        self.engine = engine
        self.lane = lane
        self.context = context
        self.receiver: Callable[..., Any] | None = None
        self.deadline: float | None = None
        self.awaited = False
        self.abandoned = False

    def call_started(
        self, receiver: Callable[..., Any], timeout: float | None, awaited: bool
    ) -> None:
        with self.engine._lock:
            self.receiver = receiver
            self.awaited = awaited
            self.deadline = None if timeout is None else self.engine._clock() + timeout

    def call_ended(self) -> bool:
        with self.engine._lock:
            self.deadline = None
            return not self.abandoned


class Engine:
    """See the module docstring. ``sink``: where dead letters go."""

    def __init__(
        self,
        handler: MessageHandler,
        sink: DeadLetterSink,
        *,
        concurrency: int = 1,
        dead_letter_suffix: str = DEFAULT_SUFFIX,
        dead_letter_backoff: Backoff | None = None,
        max_abandoned: int = 16,
        on_finished: Callable[[MessageContext, DeadLetter | None], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.handler = handler
        self.sink = sink
        self.concurrency = concurrency
        self.dead_letter_suffix = dead_letter_suffix
        self.dead_letter_backoff = dead_letter_backoff or Backoff(initial=0.5, maximum=30.0)
        self.max_abandoned = max_abandoned
        #: Called (on any thread) when a record is finished: re-sent, or dead-lettered.
        self.on_finished = on_finished
        self.stats = WorkerStats()
        #: Set when the engine cannot go on (too many abandoned receivers).
        self.fatal: BaseException | None = None
        self._clock = clock
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._partitions: dict[TopicPartition, _Partition] = {}
        self._ready: deque[_Lane] = deque()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_seq = itertools.count()
        self._running: set[_Attempt] = set()
        self._dead_lettering: dict[MessageContext, _Partition] = {}
        self._buffered = 0
        self._abandoned_now = 0
        self._threads = 0
        self._thread_names = itertools.count(1)
        self._dispatching = True
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> Engine:
        """Start the handler threads and the event loop of ``async def`` receivers."""
        loop = self._loop = asyncio.new_event_loop()
        threading.Thread(
            target=loop.run_forever, name="flowbus-async-receivers", daemon=True
        ).start()
        self.handler.loop = loop
        with self._lock:
            for _ in range(self.concurrency):
                self._spawn()
        return self

    def stop_dispatching(self) -> None:
        """Start no new attempt (shutdown): what runs may finish."""
        with self._lock:
            self._dispatching = False
            self._ready.clear()

    def close(self) -> None:
        """End the handler threads (those stuck in a receiver end with the process)."""
        with self._lock:
            self._dispatching = False
            self._closed = True
            self._ready.clear()
            self._work.notify_all()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)

    # --- feeding and timers (the driver's thread) ------------------------------------------

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        with self._lock:
            for key in partitions:
                self._partitions.setdefault(key, _Partition(key))

    def submit(self, records: Iterable[ConsumedRecord]) -> None:
        """Queue records (each partition's in offset order)."""
        with self._lock:
            for record in records:
                key = (record.topic, record.partition)
                partition = self._partitions.get(key)
                if partition is None:
                    partition = self._partitions[key] = _Partition(key)
                context = MessageContext(record)
                partition.offsets.taken(record.offset)
                lane_key: object = record.key if record.key is not None else record.offset
                if record.key is None:
                    lane_key = ("no key", record.offset)
                lane = partition.lanes.get(lane_key)
                if lane is None:
                    lane = partition.lanes[lane_key] = _Lane(partition, lane_key)
                lane.queue.append(context)
                self._buffered += 1
                self._schedule(lane)

    def tick(self) -> None:
        """Run due timers (retries, pause ends, dead-letter re-sends) and enforce deadlines."""
        now = self._clock()
        due: list[Callable[[], None]] = []
        timed_out: list[_Attempt] = []
        with self._lock:
            while self._timers and self._timers[0][0] <= now:
                due.append(heapq.heappop(self._timers)[2])
            for attempt in self._running:
                if attempt.deadline is not None and not attempt.awaited and now > attempt.deadline:
                    timed_out.append(attempt)
            for attempt in timed_out:
                self._abandon(attempt)
        for action in due:
            action()
        for attempt in timed_out:
            self._time_out(attempt)

    def next_timer(self) -> float | None:
        """Seconds until the next timer is due (``None``: none)."""
        with self._lock:
            if not self._timers:
                return None
            return max(0.0, self._timers[0][0] - self._clock())

    # --- what the driver reads -------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Records taken and not finished."""
        return self._buffered

    def committable(
        self, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        """The offset to commit per partition (first record not finished)."""
        with self._lock:
            keys = self._partitions.keys() if partitions is None else partitions
            found = {}
            for key in keys:
                partition = self._partitions.get(key)
                offset = None if partition is None else partition.offsets.committable()
                if offset is not None:
                    found[key] = offset
            return found

    def paused(self) -> set[TopicPartition]:
        """Partitions paused by an infrastructure failure."""
        with self._lock:
            return {key for key, partition in self._partitions.items() if partition.infra}

    def busy(self, partitions: Iterable[TopicPartition] | None = None) -> int:
        """Attempts running and dead letters unacknowledged (in ``partitions``)."""
        with self._lock:
            if partitions is None:
                return len(self._running) + len(self._dead_lettering)
            keys = set(partitions)
            running = sum(1 for a in self._running if a.lane.partition.key in keys)
            return running + sum(1 for p in self._dead_lettering.values() if p.key in keys)

    def degraded(self) -> list[str]:
        """Why the worker is degraded (empty: it is not)."""
        now = self._clock()
        with self._lock:
            reasons = [
                f"{key[0]}[{key[1]}] paused: {why} (next try in "
                f"{max(0.0, partition.paused_until - now):.1f}s)"
                for key, partition in sorted(self._partitions.items())
                for why in sorted(set(partition.infra.values()))
            ]
            if self._abandoned_now:
                reasons.append(
                    f"{self._abandoned_now} receiver thread(s) stuck past their deadline "
                    f"(limit {self.max_abandoned})"
                )
            return reasons

    @property
    def abandoned_now(self) -> int:
        return self._abandoned_now

    def revoke(self, partitions: Iterable[TopicPartition]) -> None:
        """Forget ``partitions`` (after the driver committed them): nothing more starts
        there, and what finishes there later is ignored."""
        with self._lock:
            for key in partitions:
                partition = self._partitions.pop(key, None)
                if partition is None:
                    continue
                partition.revoked = True
                self._buffered -= len(partition.offsets)
                for context in [c for c, p in self._dead_lettering.items() if p is partition]:
                    del self._dead_lettering[context]

    def hold(self, partitions: Iterable[TopicPartition]) -> None:
        """Start nothing more in ``partitions`` (they are being revoked)."""
        with self._lock:
            for key in partitions:
                partition = self._partitions.get(key)
                if partition is not None:
                    partition.held = True

    # --- the handler threads ---------------------------------------------------------------

    def _spawn(self) -> None:
        self._threads += 1
        name = f"flowbus-handler-{next(self._thread_names)}"
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def _serve(self) -> None:
        while True:
            with self._lock:
                while not self._ready:
                    if self._closed:
                        self._threads -= 1
                        return
                    self._work.wait()
                lane = self._ready.popleft()
                if lane.partition.revoked or lane.partition.held or not lane.queue:
                    lane.busy = False
                    continue
                context = lane.queue[0]
                attempt = _Attempt(self, lane, context)
                self._running.add(attempt)
            outcome = self.handler.attempt(context, attempt)
            if outcome is None:  # abandoned at a deadline; a replacement thread took over
                with self._lock:
                    self._abandoned_now -= 1
                    self._threads -= 1
                log.warning(
                    "receiver %s returned after its deadline at %s; its result is dropped",
                    callable_name(attempt.receiver) if attempt.receiver else "?",
                    context.position,
                )
                return
            self._after_attempt(attempt, outcome)

    def _schedule(self, lane: _Lane) -> None:
        # Under the lock.
        partition = lane.partition
        if (
            lane.busy
            or not lane.queue
            or not self._dispatching
            or partition.revoked
            or partition.held
            or partition.paused_until > self._clock()
        ):
            if not lane.queue and not lane.busy:
                partition.lanes.pop(lane.key, None)
            return
        lane.busy = True
        self._ready.append(lane)
        self._work.notify()

    def _after_attempt(self, attempt: _Attempt, outcome: Outcome) -> None:
        context, lane = attempt.context, attempt.lane
        partition = lane.partition
        decision = context.decision
        send_dead_letter = handled = False
        with self._lock:
            self._running.discard(attempt)
            if partition.revoked:
                lane.busy = False
                return
            now = self._clock()
            if outcome is Outcome.HANDLED:
                lane.queue.popleft()
                partition.infra.pop(context, None)
                self._finished(partition, context)
                lane.busy = False
                self._schedule(lane)
                handled = True
            elif outcome is Outcome.DEAD_LETTERING:
                lane.queue.popleft()
                self._dead_lettering[context] = partition
                lane.busy = False
                self._schedule(lane)
                send_dead_letter = True
            elif outcome is Outcome.PAUSED:
                delay = decision.delay if isinstance(decision, PausePartition) else 30.0
                failure = context.failure
                partition.infra[context] = _why(failure)
                self._pause(partition, now + delay)
                self._at(now + delay, lambda: self._resume_lane(lane))
            else:
                delay = decision.delay if isinstance(decision, RetryLater) else 0.0
                self._at(now + delay, lambda: self._resume_lane(lane))
        if send_dead_letter:
            self._send_dead_letter(context, partition)
        elif handled and self.on_finished is not None:
            self.on_finished(context, None)

    def _finished(self, partition: _Partition, context: MessageContext) -> None:
        # Under the lock.
        partition.offsets.done(context.record.offset)
        self._buffered -= 1
        self.stats.handled += 1
        if context.attempts > 1:
            self.stats.retried += 1
        if not partition.infra and partition.paused_until > self._clock():
            partition.paused_until = 0.0
            self._reschedule(partition)

    def _resume_lane(self, lane: _Lane) -> None:
        with self._lock:
            lane.busy = False
            self._schedule(lane)

    def _pause(self, partition: _Partition, until: float) -> None:
        # Under the lock.
        if until > partition.paused_until:
            partition.paused_until = until
            self._at(until, lambda: self._end_pause(partition))

    def _end_pause(self, partition: _Partition) -> None:
        with self._lock:
            if partition.paused_until <= self._clock():
                self._reschedule(partition)

    def _reschedule(self, partition: _Partition) -> None:
        # Under the lock.
        for lane in list(partition.lanes.values()):
            self._schedule(lane)

    def _at(self, when: float, action: Callable[[], None]) -> None:
        # Under the lock.
        heapq.heappush(self._timers, (when, next(self._timer_seq), action))

    # --- deadlines ---------------------------------------------------------------------------

    def _abandon(self, attempt: _Attempt) -> None:
        # Under the lock: the thread stays in its receiver; another takes its place.
        attempt.abandoned = True
        self._running.discard(attempt)
        self._abandoned_now += 1
        self.stats.abandoned += 1
        self.stats.timeouts += 1
        self._spawn()
        if self._abandoned_now > self.max_abandoned and self.fatal is None:
            self.fatal = ReceiversAbandonedError(self._abandoned_now, self.max_abandoned)

    def _time_out(self, attempt: _Attempt) -> None:
        context = attempt.context
        receiver = attempt.receiver
        assert receiver is not None
        timeout = context.receiver_timeout or 0.0
        error = ReceiverTimeoutError(callable_name(receiver), timeout)
        failure = self.handler.receiver_failure(context, [(receiver, error)])
        outcome = self.handler.failed(context, failure)
        self._after_attempt(attempt, outcome)

    # --- dead letters ------------------------------------------------------------------------

    def _send_dead_letter(
        self, context: MessageContext, partition: _Partition, pointer: int = 0, failures: int = 0
    ) -> None:
        letter = context.dead_letter
        assert letter is not None
        topic = dead_letter_topic(letter.topic, self.dead_letter_suffix)
        parts = letter.record() if pointer == 0 else letter.pointer(keep_original=pointer == 1)

        def done(error: Exception | None) -> None:
            if error is None:
                self._dead_lettered(context, partition, letter, topic, pointer)
            elif isinstance(error, DeadLetterTooLargeError) and pointer < 2:
                log.warning(
                    "dead-letter record for %s too large for %s; writing a pointer record",
                    context.position, topic,
                )  # fmt: skip
                self._send_dead_letter(context, partition, pointer + 1, failures)
            else:
                self._dead_letter_failed(context, partition, pointer, failures + 1, error)

        try:
            self.sink.send(topic, parts, done)
        except Exception as exc:
            done(exc)

    def _dead_lettered(
        self,
        context: MessageContext,
        partition: _Partition,
        letter: DeadLetter,
        topic: str,
        pointer: int,
    ) -> None:
        with self._lock:
            if self._dead_lettering.pop(context, None) is None or partition.revoked:
                return
            partition.infra.pop(context, None)
            self.stats.dead_lettered += 1
            self._finished(partition, context)
        log.warning(
            "dead-lettered %s to %s%s: %s (%s)",
            context.position, topic, " as a pointer" if pointer else "",
            letter.reason.value, type(letter.error).__name__,
        )  # fmt: skip
        self.handler.notify("after_dead_letter", context, letter)
        if self.on_finished is not None:
            self.on_finished(context, letter)

    def _dead_letter_failed(
        self,
        context: MessageContext,
        partition: _Partition,
        pointer: int,
        failures: int,
        error: Exception,
    ) -> None:
        delay = self.dead_letter_backoff.delay(failures)
        log.error(
            "dead-letter topic did not take %s (%s: %s); partition paused, retrying in %.1fs",
            context.position, type(error).__name__, error, delay,
        )  # fmt: skip
        with self._lock:
            if partition.revoked:
                self._dead_lettering.pop(context, None)
                return
            if context not in self._dead_lettering:
                return
            failure = Failure(FailureKind.INFRASTRUCTURE, context.failure.reason, error)  # type: ignore[union-attr]
            partition.infra[context] = "dead-letter topic not writable: " + _why(failure)
            now = self._clock()
            self._pause(partition, now + delay)
            self._at(
                now + delay,
                lambda: self._send_dead_letter(context, partition, pointer, failures),
            )


def _why(failure: Failure | None) -> str:
    if failure is None:
        return "infrastructure failure"
    return failure.describe()
