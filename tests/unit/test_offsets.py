"""The committable offset of a partition whose messages finish out of order."""

from __future__ import annotations

import random

from flowbus.consumer.offsets import PartitionOffsets


def test_nothing_taken_nothing_to_commit():
    assert PartitionOffsets().committable() is None


def test_the_first_unfinished_offset_holds_the_commit():
    offsets = PartitionOffsets()
    for offset in (10, 11, 12, 13):
        offsets.taken(offset)
    assert offsets.committable() == 10
    offsets.done(12)
    offsets.done(11)
    assert offsets.committable() == 10 and len(offsets) == 4
    offsets.done(10)
    assert offsets.committable() == 13 and len(offsets) == 1
    offsets.done(13)
    assert offsets.committable() == 14 and len(offsets) == 0


def test_gaps_in_offsets_compacted_topics_and_transactions():
    offsets = PartitionOffsets()
    for offset in (3, 7, 20):
        offsets.taken(offset)
    offsets.done(7)
    assert offsets.committable() == 3
    offsets.done(3)
    assert offsets.committable() == 20
    offsets.done(20)
    assert offsets.committable() == 21


def test_random_completion_order_never_commits_past_an_unfinished_offset():
    rng = random.Random(7)
    for _ in range(50):
        offsets = PartitionOffsets()
        taken = list(range(100, 100 + rng.randint(1, 60)))
        for offset in taken:
            offsets.taken(offset)
        finished: set[int] = set()
        for offset in rng.sample(taken, len(taken)):
            offsets.done(offset)
            finished.add(offset)
            first_unfinished = next((o for o in taken if o not in finished), taken[-1] + 1)
            assert offsets.committable() == first_unfinished
