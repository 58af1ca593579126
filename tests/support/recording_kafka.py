"""An :class:`EventProducer` whose librdkafka producer only records what it is given.

For tests of what the producer decides (what it produces, in which order, what it logs)
without a broker: everything above ``confluent_kafka.Producer`` is the real code.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from flowbus.producer.event_producer import EventProducer
from flowbus.settings import FlowbusSettings


class RecordingKafka:
    """Stands in for ``confluent_kafka.Producer``: ``produce`` records, delivery succeeds
    when ``deliver()`` is called."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def produce(self, topic: str, **kwargs: Any) -> None:
        self.records.append({"topic": topic, **kwargs})

    def poll(self, timeout: float = 0) -> int:
        time.sleep(timeout)  # the poller thread must not spin
        return 0

    def flush(self, timeout: float = 0) -> int:
        return 0

    def purge(self) -> None:
        pass

    def __len__(self) -> int:
        return 0


@contextlib.contextmanager
def recording_producer(settings: FlowbusSettings, **options: Any) -> Iterator[EventProducer]:
    """A real EventProducer (asynchronous unless ``synchronous=True``) recording its records
    in ``producer._producer.records``; closed at the end."""
    producer = EventProducer(settings=settings, install_exit_handlers=False, **options)
    real, producer._producer = producer._producer, RecordingKafka()  # type: ignore[assignment]
    try:
        yield producer
    finally:
        producer.close(timeout=0)
        real.flush(0)


def produced_ids(producer: EventProducer) -> list[str]:
    """The ``ce_id`` of every record produced, in produce order."""
    records = producer._producer.records  # type: ignore[attr-defined]
    return [dict(record["headers"])["ce_id"].decode() for record in records]
