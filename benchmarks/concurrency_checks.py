"""What the concurrency section checks, the same code on both sides (flowbus and FastStream).

Imports nothing but confluent-kafka: ``peer_faststream/bench_faststream.py`` runs in the
FastStream venv, which has no flowbus, and imports this file from the directory above it.

* :class:`KeyTracker`: the handler calls :meth:`~KeyTracker.start` when it begins an event
  and :meth:`~KeyTracker.finish` when it is done, with the event's key and sequence number.
  Under one lock it keeps a per-key in-flight counter (keys that ever had two events in
  flight at once), the per-key order of the sequence numbers as handling began and as it
  ended, when each event finished, and which records (partition, offset) are finished.
* :func:`offsets`: the group's committed offsets against the topic's end offsets once the
  consumer has stopped, and, with a tracker, the records committed without having been
  handled (lost to the group) and handled without being committed (would come again).
* :func:`read_positions` / :func:`write_positions`: the (key, sequence) -> (partition,
  offset) map of the prepared topic, passed to the peer as a JSON file.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

REQUEST_TIMEOUT_S = 10.0

#: (key, sequence number) -> (partition, offset) of each record of the prepared topic.
Positions = Mapping[tuple[str, int], tuple[int, int]]


def write_positions(path: Path, positions: Positions) -> None:
    rows = [[key, seq, partition, offset] for (key, seq), (partition, offset) in positions.items()]
    path.write_text(json.dumps(rows))


def read_positions(path: Path) -> dict[tuple[str, int], tuple[int, int]]:
    rows = json.loads(path.read_text())
    return {(key, seq): (partition, offset) for key, seq, partition, offset in rows}


class KeyTracker:
    """Per-key in-flight counter and sequence order of one consumer run; see the module doc.

    ``done`` is set once ``stop_after`` events (default: all) have finished.
    """

    def __init__(self, positions: Positions, stop_after: int | None = None) -> None:
        self.positions = positions
        self.expected = len(positions)
        self.stop_after = stop_after or self.expected
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = defaultdict(int)
        self._begun: dict[str, set[int]] = defaultdict(set)
        self._highest_begun: dict[str, int] = {}
        self._highest_finished: dict[str, int] = {}
        self._twice: set[str] = set()
        self._out_of_order_keys: set[str] = set()
        self._finished: set[tuple[int, int]] = set()
        self.order_violations = 0  # events begun after a later event of the same key
        self.finished_out_of_order = 0  # events finished after a later event of the same key
        self.duplicates = 0  # events whose (key, sequence) was begun before
        self.in_flight = 0
        self.max_in_flight = 0
        self.started = 0
        self.finished = 0
        self.first_finished_at = 0.0
        self.last_finished_at = 0.0

    def start(self, key: str, sequence: int) -> None:
        with self._lock:
            self.started += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self._in_flight[key] += 1
            if self._in_flight[key] > 1:
                self._twice.add(key)
            begun = self._begun[key]
            if sequence in begun:
                self.duplicates += 1
            elif sequence < self._highest_begun.get(key, -1):
                self.order_violations += 1
                self._out_of_order_keys.add(key)
            begun.add(sequence)
            self._highest_begun[key] = max(sequence, self._highest_begun.get(key, -1))

    def finish(self, key: str, sequence: int) -> None:
        now = time.perf_counter()
        position = self.positions[key, sequence]
        with self._lock:
            self._finished.add(position)
            self.in_flight -= 1
            self._in_flight[key] -= 1
            if sequence < self._highest_finished.get(key, -1):
                self.finished_out_of_order += 1
            self._highest_finished[key] = max(sequence, self._highest_finished.get(key, -1))
            self.finished += 1
            if self.finished == 1:
                self.first_finished_at = now
            self.last_finished_at = now
            if self.finished >= self.stop_after:
                self.done.set()

    def against(self, committed: Mapping[int, int]) -> dict[str, int]:
        """Records committed but never finished, and finished but not committed."""
        with self._lock:
            lost = again = 0
            for partition, offset in self.positions.values():
                below = offset < committed.get(partition, 0)
                finished = (partition, offset) in self._finished
                lost += below and not finished
                again += finished and not below
            return {"committed_not_handled": lost, "handled_not_committed": again}

    def summary(self, started_at: float) -> dict[str, Any]:
        """The run's figures; ``started_at`` is when the consumer was started."""
        with self._lock:
            span = self.last_finished_at - self.first_finished_at
            since_start = self.last_finished_at - started_at
            return {
                "events": self.expected,
                "started": self.started,
                "finished": self.finished,
                # (N - 1) / (1st -> Nth event finished), as the other consumer sections.
                "events_per_s": round((self.finished - 1) / span, 1) if span > 0 else None,
                "start_to_last_events_per_s": (
                    round(self.finished / since_start, 1) if since_start > 0 else None
                ),
                "keys": len(self._begun),
                "keys_in_flight_twice": len(self._twice),
                "order_violations": self.order_violations,
                "keys_out_of_order": len(self._out_of_order_keys),
                "finished_out_of_order": self.finished_out_of_order,
                "duplicates": self.duplicates,
                "max_in_flight": self.max_in_flight,
            }


def offsets(
    bootstrap: str, group: str, topic: str, tracker: KeyTracker | None = None
) -> dict[str, Any]:
    """The group's committed offsets against the topic's end offsets, per partition."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
    result = futures[group].result(timeout=REQUEST_TIMEOUT_S)
    committed = {
        tp.partition: max(tp.offset, 0) for tp in result.topic_partitions if tp.topic == topic
    }
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{group}-watermarks"})
    try:
        meta = probe.list_topics(topic, timeout=REQUEST_TIMEOUT_S).topics[topic]
        end = {
            partition: probe.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=REQUEST_TIMEOUT_S
            )[1]
            for partition in sorted(meta.partitions)
        }
    finally:
        probe.close()
    figures: dict[str, Any] = {
        "committed": sum(committed.get(p, 0) for p in end),
        "end": sum(end.values()),
        "committed_equals_end": all(committed.get(p, 0) == e for p, e in end.items()),
    }
    if tracker is not None:
        figures |= tracker.against(committed)
    return figures
