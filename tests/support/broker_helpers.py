"""Helpers of integration tests: read a topic to its end, run a worker on a thread, mend a
file a killed worker was writing."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from flowbus.consumer.worker import Worker
from flowbus.settings import get_settings

#: librdkafka settings for a worker a test SIGKILLs: the broker drops the dead member from its
#: group after 6 s instead of librdkafka's default 45 s, which the next worker's join would
#: wait for (the broker's minimum session timeout is 6 s).
SHORT_SESSION_CONFIG = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}


def read_to_end(topic: str, timeout: float = 60.0) -> list:
    """Every record of every partition of ``topic``, read up to the end (no group commits)."""
    consumer = Consumer(
        {
            "bootstrap.servers": get_settings().kafka_bootstrap_servers,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    messages, at_end = [], set()
    deadline = time.monotonic() + timeout
    try:
        while len(at_end) < len(partitions):
            assert time.monotonic() < deadline, f"{topic} not read to its end in {timeout}s"
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:
                assert message.error().code() == KafkaError._PARTITION_EOF
                at_end.add(message.partition())
                continue
            messages.append(message)
    finally:
        consumer.close()
    return messages


@contextlib.contextmanager
def running_worker(topic: str, group: str, **options: Any) -> Iterator[Worker]:
    """A :class:`Worker` on ``topic`` running on a thread; stopped (and checked) at exit."""
    worker = Worker([topic], group, poll_timeout=0.2, **options)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker.run(install_signal_handlers=False)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(60)
    assert not thread.is_alive(), "worker did not stop"
    assert not errors, errors


def drop_torn_tail(path: Path) -> None:
    """Cut an unfinished last line from a file a SIGKILLed process was appending to.

    Linux may stop a write at a page boundary when the writer gets SIGKILL, leaving half a
    line; the receiver that wrote it had not returned, so its record was not handled.
    """
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])
