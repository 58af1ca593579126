"""Event ids: version 1 UUIDs that stay unique across threads and forked processes."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import threading
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from flowbus import event_ids
from flowbus.event_ids import new_event_id

GREGORIAN_EPOCH = datetime(1582, 10, 15, tzinfo=UTC)


def _created_at(event_id: UUID) -> datetime:
    return GREGORIAN_EPOCH + timedelta(microseconds=event_id.time // 10)


def test_ids_are_rfc_version_1_with_a_multicast_node() -> None:
    event_id = new_event_id()
    assert event_id.version == 1
    assert event_id.variant == "specified in RFC 4122"
    assert event_id.node & (1 << 40), "a random node must carry the multicast bit"


def test_ids_carry_their_creation_time() -> None:
    before = datetime.now(UTC)
    created = _created_at(new_event_id())
    after = datetime.now(UTC)
    assert before - timedelta(microseconds=1) <= created <= after


def test_timestamps_strictly_increase_within_a_process() -> None:
    times = [new_event_id().time for _ in range(20_000)]
    assert all(later > earlier for earlier, later in itertools.pairwise(times))


def test_ids_from_concurrent_threads_are_unique() -> None:
    found: list[list[UUID]] = [[] for _ in range(4)]

    def generate(into: list[UUID]) -> None:
        into.extend(new_event_id() for _ in range(20_000))

    threads = [threading.Thread(target=generate, args=(ids,)) for ids in found]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [event_id for ids in found for event_id in ids]
    assert len(every) == 80_000
    assert len(set(every)) == 80_000


def _child_id(queue: multiprocessing.Queue[str]) -> None:
    queue.put(str(new_event_id()))


def test_a_forked_child_draws_its_own_node_and_clock_sequence() -> None:
    parent = new_event_id()
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[str] = context.Queue()
    child = context.Process(target=_child_id, args=(queue,))
    child.start()
    child_id = UUID(queue.get(timeout=30))
    child.join(timeout=30)
    assert child.exitcode == 0
    # 48 + 14 random bits: equal by chance with probability 2**-62.
    assert (child_id.node, child_id.clock_seq) != (parent.node, parent.clock_seq)


def test_a_child_forked_without_at_fork_hooks_is_recognised_by_its_pid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """uWSGI forks its workers from C, where Python's at-fork hooks do not run."""
    before = new_event_id()
    monkeypatch.setattr(event_ids._ids, "_pid", -1)  # as if this process were a fresh child
    after = new_event_id()
    assert (after.node, after.clock_seq) != (before.node, before.clock_seq)
    assert event_ids._ids._pid == os.getpid()
