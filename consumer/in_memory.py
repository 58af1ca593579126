"""Running the engine without Kafka: dead letters kept in memory, records fed by hand.

For ``flowbus dlq replay --locally`` (handle dead letters here, once more) and the
in-memory test bus (:mod:`flowbus.consumer.testing`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from .dead_letter import DeadLetter, DeadLetterRecordParts
from .engine import Engine
from .middleware import ConsumedRecord, MessageContext

__all__ = ["Finished", "InMemoryDeadLetterSink", "run_until_finished"]


class InMemoryDeadLetterSink:
    """Keeps dead-letter records as ``(topic, parts)``; ``fail`` decides refusals (tests)."""

    def __init__(
        self, fail: Callable[[str, DeadLetterRecordParts], Exception | None] | None = None
    ):
        self.records: list[tuple[str, DeadLetterRecordParts]] = []
        self.fail = fail
        self._lock = threading.Lock()

    def send(
        self, topic: str, parts: DeadLetterRecordParts, done: Callable[[Exception | None], None]
    ) -> None:
        error = self.fail(topic, parts) if self.fail is not None else None
        if error is None:
            with self._lock:
                self.records.append((topic, parts))
        done(error)


class Finished:
    """The records an engine finished, in the order it finished them (thread-safe)."""

    def __init__(self) -> None:
        self.contexts: list[MessageContext] = []
        self.dead_letters: dict[tuple[str, int, int], DeadLetter] = {}
        self._lock = threading.Lock()

    def __call__(self, context: MessageContext, letter: DeadLetter | None) -> None:
        with self._lock:
            self.contexts.append(context)
            if letter is not None:
                record = context.record
                self.dead_letters[(record.topic, record.partition, record.offset)] = letter


def run_until_finished(
    engine: Engine, records: Iterable[ConsumedRecord], timeout: float | None = None
) -> bool:
    """Submit ``records`` and drive the engine's timers until nothing is left to do;
    ``False`` if ``timeout`` seconds passed first."""
    engine.submit(records)
    deadline = None if timeout is None else time.monotonic() + timeout
    while engine.buffered or engine.busy():
        if engine.fatal is not None or (deadline is not None and time.monotonic() > deadline):
            return False
        engine.tick()
        next_timer = engine.next_timer()
        time.sleep(min(0.005, next_timer) if next_timer is not None else 0.005)
    return True
