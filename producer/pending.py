"""Events waiting for their writer schema: a bounded first-in first-out queue.

An asynchronous producer never lets the schema registry block or fail its caller. An event
whose writer schema is not resolved yet (the first of its event type and topic, or any
while the registry is unreachable) waits here, and the producer's preparing thread takes
the events in order, resolves their schema with backoff, and produces them. A later event
with the same topic and key as a waiting one waits behind it too, so one key's events keep
their order. The queue is bounded: an event that finds it full is not queued (the producer
logs and counts it as dropped).
"""

from __future__ import annotations

import collections
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .prepared import PreparedEvent

__all__ = ["PendingEvents"]


class PendingEvents:
    """The waiting events, in send order, and how many wait per (topic, key)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("the pending queue needs room for at least one event")
        self.capacity = capacity
        self._events: collections.deque[PreparedEvent] = collections.deque()
        self._keys: collections.Counter[tuple[str, str]] = collections.Counter()
        self._changed = threading.Condition()

    def __len__(self) -> int:
        return len(self._events)

    def holds_key(self, topic: str, key: str | None) -> bool:
        """Whether an event of ``topic`` with ``key`` waits (keyless events have no order)."""
        if key is None or not self._events:
            return False
        with self._changed:
            return (topic, key) in self._keys

    def put(self, event: PreparedEvent) -> bool:
        """Queue ``event`` at the end; ``False`` (nothing queued) when the queue is full."""
        with self._changed:
            if len(self._events) >= self.capacity:
                return False
            self._events.append(event)
            if event.key is not None:
                self._keys[(event.topic, event.key)] += 1
            self._changed.notify_all()
            return True

    def first(self, stop: threading.Event) -> PreparedEvent | None:
        """The oldest waiting event (left in the queue), waiting for one; None once ``stop``
        is set."""
        with self._changed:
            while not self._events:
                if stop.is_set():
                    return None
                self._changed.wait(0.5)
            return self._events[0]

    def done(self, event: PreparedEvent) -> None:
        """Remove ``event``, the oldest one, once it was produced or given up (a no-op when
        :meth:`take_all` took it meanwhile)."""
        with self._changed:
            if not self._events or self._events[0] is not event:
                return
            self._events.popleft()
            if event.key is not None:
                key = (event.topic, event.key)
                self._keys[key] -= 1
                if not self._keys[key]:
                    del self._keys[key]
            self._changed.notify_all()

    def take_all(self) -> list[PreparedEvent]:
        """Remove and return every waiting event (when the producer closes)."""
        with self._changed:
            events = list(self._events)
            self._events.clear()
            self._keys.clear()
            self._changed.notify_all()
            return events

    def wait_empty(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the queue to empty; whether it did."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._events:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def wake(self) -> None:
        """Wake a thread waiting in :meth:`first` (to see that it should stop)."""
        with self._changed:
            self._changed.notify_all()
