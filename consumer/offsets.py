"""Which offset of a partition may be committed while its messages finish out of order.

Messages of one partition are handled concurrently (different keys), so they finish in any
order. The committable offset is the first one not yet done: everything before it was
handled, and a crash redoes it and what follows, never less.
"""

from __future__ import annotations

from collections import deque

__all__ = ["PartitionOffsets"]


class PartitionOffsets:
    """The offsets taken from one partition and not yet committable. Not thread-safe."""

    __slots__ = ("_done", "_low", "_pending")

    def __init__(self) -> None:
        self._pending: deque[int] = deque()  # offsets in the order they were taken
        self._done: set[int] = set()  # finished offsets not yet at the head
        self._low: int | None = None  # the offset after the last finished head

    def __len__(self) -> int:
        return len(self._pending)

    def taken(self, offset: int) -> None:
        """Note that ``offset`` was handed to handling (offsets arrive in increasing order)."""
        self._pending.append(offset)

    def done(self, offset: int) -> None:
        """Note that ``offset`` is finished (handled, or dead-lettered and acknowledged)."""
        pending = self._pending
        if pending and pending[0] == offset:
            pending.popleft()
            self._low = offset + 1
            done = self._done
            while pending and pending[0] in done:
                head = pending.popleft()
                done.discard(head)
                self._low = head + 1
        else:
            self._done.add(offset)

    def committable(self) -> int | None:
        """The offset to commit (first not done, or one past the last done), or ``None``."""
        return self._pending[0] if self._pending else self._low
