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

from .dead_letter import (
    DEFAULT_SUFFIX,
    DeadLetter,
    DeadLetterRecordParts,
    Reason,
    dead_letter_topic,
)
from .handler import MessageHandler
from .middleware import ConsumedRecord, MessageContext, Outcome, PausePartition, RetryLater
from .offsets import PartitionOffsets

__all__ = ["DeadLetterSink", "DeadLetterTooLargeError", "Engine", "WorkerStats"]

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]
#: Records one handler thread takes at once when it is the only one.
BATCH = 32
_AfterAttempt = Callable[[], None]


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
    timeouts: int = 0  # attempts that ended at a receiver's deadline (sync or async)


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
    """One attempt in progress on a handler thread; the handler's :class:`CallGuard`.

    ``_in_call`` holds one token while a receiver runs. Whoever takes it first wins: the
    handler when the receiver returns (``call_ended``), or the engine at the deadline
    (``overdue``); ``list.pop`` is atomic, so this needs no lock on the hot path.
    """

    __slots__ = ("_in_call", "abandoned", "awaited", "context", "deadline", "engine", "lane",
                 "receiver")  # fmt: skip

    def __init__(self, engine: Engine, lane: _Lane, context: MessageContext) -> None:
        self.engine = engine
        self.lane = lane
        self.context = context
        self.receiver: Callable[..., Any] | None = None
        self.deadline: float | None = None
        self.awaited = False
        self.abandoned = False
        self._in_call: list[bool] = []

    def call_started(
        self, receiver: Callable[..., Any], timeout: float | None, awaited: bool
    ) -> None:
        self.receiver = receiver
        self.awaited = awaited
        self.deadline = None if timeout is None else self.engine._clock() + timeout
        self._in_call.append(True)

    def call_ended(self) -> bool:
        try:
            self._in_call.pop()
        except IndexError:  # the engine took it: abandoned at the deadline
            return False
        self.deadline = None
        return True

    def overdue(self, now: float) -> bool:
        """Abandon this attempt if its receiver call is past its deadline (sync calls only:
        an awaited call is cancelled by the handler itself)."""
        deadline = self.deadline
        if deadline is None or self.awaited or now <= deadline:
            return False
        try:
            self._in_call.pop()
        except IndexError:  # returned meanwhile (or between two calls)
            return False
        self.abandoned = True
        return True


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
        #: With ``concurrency`` 1, the driver may let the handler thread read records
        #: itself: called (on that thread) whenever nothing is ready, it submits what it
        #: reads and returns. ``None`` (the default, and once the driver stops): the thread
        #: waits for :meth:`submit`.
        self.fetch: Callable[[], None] | None = None
        #: Attempts the handler threads finished (a sign of life for the driver).
        self.attempts_ended = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._partitions: dict[TopicPartition, _Partition] = {}
        # Lanes ready to run, oldest head record first: the work nearest each partition's
        # committed offset goes first, so little finished work waits behind unfinished.
        self._ready: list[tuple[int, _Lane]] = []
        self._idle = 0  # handler threads waiting for work
        self._arrivals = itertools.count()
        self._room = threading.Condition(self._lock)
        self._room_below: int | None = None
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
        partitions, arrivals = self._partitions, self._arrivals
        with self._lock:
            scheduled = len(self._ready)
            partition: _Partition | None = None
            for record in records:
                if partition is None or partition.key != (record.topic, record.partition):
                    key = (record.topic, record.partition)
                    partition = partitions.get(key)
                    if partition is None:
                        partition = partitions[key] = _Partition(key)
                context = MessageContext(record, next(arrivals))
                partition.offsets.taken(record.offset)
                lane_key: object = record.key
                if lane_key is None:
                    lane_key = ("no key", record.offset)
                lane = partition.lanes.get(lane_key)
                if lane is None:
                    lane = partition.lanes[lane_key] = _Lane(partition, lane_key)
                lane.queue.append(context)
                self._buffered += 1
                if not lane.busy:
                    self._schedule(lane, notify=False)
            scheduled = len(self._ready) - scheduled
            if scheduled > 0:
                self._work.notify(scheduled)

    def tick(self) -> None:
        """Run due timers (retries, pause ends, dead-letter re-sends) and enforce deadlines."""
        now = self._clock()
        due: list[Callable[[], None]] = []
        with self._lock:
            while self._timers and self._timers[0][0] <= now:
                due.append(heapq.heappop(self._timers)[2])
            timed_out = [attempt for attempt in self._running if attempt.overdue(now)]
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

    @property
    def dead_lettering(self) -> int:
        """Dead letters sent and not acknowledged yet."""
        return len(self._dead_lettering)

    def wait_for_room(self, below: int, timeout: float) -> None:
        """Wait until at most ``below`` records are unfinished, or ``timeout`` seconds."""
        with self._lock:
            if self._buffered > below:
                self._room_below = below
                self._room.wait(timeout)
                self._room_below = None

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
        # With one handler thread, it takes up to BATCH ready records per lock section
        # (each of another key), so that the lock and its GIL hand-offs are paid per batch;
        # with more, one at a time, so that no record waits behind another thread's batch.
        size = BATCH if self.concurrency == 1 else 1
        done: list[tuple[_Attempt, Outcome]] = []
        while True:
            afters: list[_AfterAttempt] = []
            fetch = self.fetch
            with self._lock:
                for attempt, outcome in done:
                    after = self._complete(attempt, outcome)
                    if after is not None:
                        afters.append(after)
                self.attempts_ended += len(done)
                done = []
                batch = [] if afters else self._next_attempts(size, wait=fetch is None)
                if batch is None:
                    return
            if afters:
                for after in afters:  # outside the lock, before waiting for more work
                    after()
                continue
            if not batch:  # nothing ready: this thread reads the next records itself
                assert fetch is not None
                fetch()
                continue
            for index, attempt in enumerate(batch):
                ended = self.handler.attempt(attempt.context, attempt)
                if ended is None:  # abandoned at a deadline; a replacement took over
                    self._abandoned_with(attempt, done, batch[index + 1 :])
                    return
                done.append((attempt, ended))

    def _abandoned_with(
        self,
        attempt: _Attempt,
        done: list[tuple[_Attempt, Outcome]],
        not_started: list[_Attempt],
    ) -> None:
        # The thread of ``attempt`` returned after its deadline: settle what it finished,
        # hand back what it had not started, and end.
        afters = []
        with self._lock:
            for finished, outcome in done:
                after = self._complete(finished, outcome)
                if after is not None:
                    afters.append(after)
            for waiting in not_started:
                self._running.discard(waiting)
                heapq.heappush(self._ready, (waiting.context.arrival, waiting.lane))
            if not_started:
                self._work.notify(len(not_started))
            self._abandoned_now -= 1
            self._threads -= 1
        for after in afters:
            after()
        log.warning(
            "receiver %s returned after its deadline at %s; its result is dropped",
            callable_name(attempt.receiver) if attempt.receiver else "?",
            attempt.context.position,
        )

    def _next_attempts(self, size: int, wait: bool = True) -> list[_Attempt] | None:
        # Under the lock: wait for lanes to run (unless not ``wait``: then [] when none is
        # ready), take up to ``size`` (None: closed).
        ready = self._ready
        while True:
            while not ready:
                if self._closed:
                    self._threads -= 1
                    return None
                if not wait:
                    return []
                self._idle += 1
                self._work.wait()
                self._idle -= 1
            batch: list[_Attempt] = []
            while ready and len(batch) < size:
                lane = heapq.heappop(ready)[1]
                if lane.partition.revoked or lane.partition.held or not lane.queue:
                    lane.busy = False
                    continue
                attempt = _Attempt(self, lane, lane.queue[0])
                self._running.add(attempt)
                batch.append(attempt)
            if batch:
                return batch

    def _schedule(self, lane: _Lane, notify: bool = True) -> None:
        # Under the lock.
        partition = lane.partition
        if (
            lane.busy
            or not lane.queue
            or not self._dispatching
            or partition.revoked
            or partition.held
            or (partition.paused_until and partition.paused_until > self._clock())
        ):
            if not lane.queue and not lane.busy:
                partition.lanes.pop(lane.key, None)
            return
        lane.busy = True
        heapq.heappush(self._ready, (lane.queue[0].arrival, lane))
        if notify and self._idle:
            self._work.notify()

    def _after_attempt(self, attempt: _Attempt, outcome: Outcome) -> None:
        with self._lock:
            after = self._complete(attempt, outcome)
        if after is not None:
            after()

    def _complete(self, attempt: _Attempt, outcome: Outcome) -> _AfterAttempt | None:
        # Under the lock: what the outcome means for the lane; returns what to do next
        # outside the lock (send a dead letter, report a finished record).
        context, lane = attempt.context, attempt.lane
        partition = lane.partition
        decision = context.decision
        self._running.discard(attempt)
        if partition.revoked:
            lane.busy = False
            return None
        if outcome is Outcome.HANDLED:
            lane.queue.popleft()
            if partition.infra:
                partition.infra.pop(context, None)
            self._finished(partition, context)
            lane.busy = False
            self._schedule(lane)
            on_finished = self.on_finished
            return None if on_finished is None else lambda: on_finished(context, None)
        if outcome is Outcome.DEAD_LETTERING:
            if context.failure is not None and context.failure.reason is Reason.TIMEOUT:
                self.stats.timeouts += 1
            lane.queue.popleft()
            self._dead_lettering[context] = partition
            lane.busy = False
            self._schedule(lane)
            return lambda: self._send_dead_letter(context, partition)
        # RETRYING came from a RetryLater, PAUSED from a PausePartition (MessageHandler.failed).
        assert isinstance(decision, RetryLater | PausePartition) and context.failure is not None
        if context.failure.reason is Reason.TIMEOUT:
            self.stats.timeouts += 1
        until = self._clock() + decision.delay
        if outcome is Outcome.PAUSED:
            partition.infra[context] = context.failure.describe()
            self._pause(partition, until)
        self._at(until, lambda: self._resume_lane(lane))
        return None

    def _finished(self, partition: _Partition, context: MessageContext) -> None:
        # Under the lock.
        partition.offsets.done(context.record.offset)
        self._buffered -= 1
        if self._room_below is not None and self._buffered <= self._room_below:
            self._room.notify_all()
        self.stats.handled += 1
        if context.attempts > 1:
            self.stats.retried += 1
        if (
            partition.paused_until
            and not partition.infra
            and partition.paused_until > self._clock()
        ):
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
        self._running.discard(attempt)
        self._abandoned_now += 1
        self.stats.abandoned += 1
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
            partition.infra[context] = f"dead-letter topic not writable ({type(error).__name__})"
            now = self._clock()
            self._pause(partition, now + delay)
            self._at(
                now + delay,
                lambda: self._send_dead_letter(context, partition, pointer, failures),
            )
