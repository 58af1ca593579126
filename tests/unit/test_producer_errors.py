"""Producer errors: lost events are named, the registry never raises into an asynchronous
caller, and what waits for its schema keeps each key's order within a bounded queue.

The registry is a stand-in serializer that fails while told to; librdkafka is either the
recording stand-in (``tests/support/recording_kafka.py``) or the real one pointed at a
port where nothing listens.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest
from recording_kafka import produced_ids, recording_producer

from flowbus.avro.serializer import EventSerializer, SerializedEvent
from flowbus.backoff import Backoff
from flowbus.errors import SchemaRegistryError
from flowbus.metadata import EventMetadata
from flowbus.producer.event_producer import EventProducer
from flowbus.settings import FlowbusSettings
from flowbus.signals import WorkflowSignal

SIGNAL = WorkflowSignal("org.flowbus.test.errors.sent.v1", {"case": str, "n": int}, key_path="case")
OTHER = WorkflowSignal("org.flowbus.test.errors.other.v1", {"case": str}, key_path="case")
# No registry, whatever the shell says: the cases that need one bring their stand-in.
NOWHERE = FlowbusSettings(kafka_bootstrap_servers="127.0.0.1:1", schema_registry_url=None)
FAST = Backoff(initial=0.01, maximum=0.05)


class FlakyRegistrySerializer:
    """A serializer with a registry that is down while ``down`` is set: as the real one,
    it needs the registry only for a writer schema it has not resolved before."""

    registry = object()  # the producer only asks whether there is one

    def __init__(self) -> None:
        self.down = threading.Event()
        self.calls = 0
        self._resolved: set[tuple[WorkflowSignal, str]] = set()
        self._real = EventSerializer()

    def encode_body(self, signal: WorkflowSignal, data: Mapping[str, Any]) -> bytes:
        return self._real.encode_body(signal, data)  # no registry call, as the real one

    def frame_body(
        self, signal: WorkflowSignal, body: bytes, data: Mapping[str, Any], topic: str
    ) -> SerializedEvent:
        if (signal, topic) not in self._resolved:
            self.calls += 1
            if self.down.is_set():
                raise SchemaRegistryError("registry unreachable: connection refused", subject=topic)
            self._resolved.add((signal, topic))
        return self._real.frame_body(signal, body, data, topic)

    def own_framing(self, signal: WorkflowSignal, topic: str) -> Any:
        return self._real.own_framing(signal, topic)  # resolved by frame_body, as the real one


def event(signal: WorkflowSignal = SIGNAL, case: str = "c-1", n: int = 0) -> tuple[Any, ...]:
    data = (
        signal.validate_data(case=case, n=n)
        if signal is SIGNAL
        else signal.validate_data(case=case)
    )
    return signal, signal.generate_signal_metadata(), data


def send(
    producer: EventProducer, signal: WorkflowSignal, metadata: EventMetadata, data: Any
) -> str:
    producer.send(signal, metadata, data, topic="events", key=data["case"])
    return str(metadata.id)


def wait_until(probe: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.01)


def test_registry_down_never_raises_nor_blocks_and_the_events_go_once_it_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    serializer = FlakyRegistrySerializer()
    serializer.down.set()
    with recording_producer(NOWHERE, serializer=serializer, registry_backoff=FAST) as producer:
        started = time.monotonic()
        sent = [send(producer, *event(n=n)) for n in range(5)]
        assert time.monotonic() - started < 0.5
        assert producer.pending == 5
        wait_until(lambda: serializer.calls >= 3)  # the preparing thread keeps trying
        assert produced_ids(producer) == []
        serializer.down.clear()
        wait_until(lambda: producer.pending == 0)
        assert produced_ids(producer) == sent
        # The type's schema is resolved now: the next event goes at once, from the caller.
        later = send(producer, *event(n=5))
        assert produced_ids(producer) == [*sent, later]
    waits = [
        r.getMessage() for r in caplog.records if "waits for the schema registry" in r.getMessage()
    ]
    assert waits and all(
        sent[0] in line and SIGNAL.event_type in line and "events" in line for line in waits
    )


def test_a_later_event_of_a_waiting_key_waits_behind_it_and_other_keys_do_not() -> None:
    serializer = FlakyRegistrySerializer()
    with recording_producer(NOWHERE, serializer=serializer, registry_backoff=FAST) as producer:
        send(producer, *event(OTHER, case="warm"))  # OTHER's schema gets resolved
        wait_until(lambda: producer.pending == 0)
        serializer.down.set()
        first = send(producer, *event(SIGNAL, case="c-1"))  # SIGNAL's schema: not resolved
        behind = send(producer, *event(OTHER, case="c-1"))  # ready, but its key waits
        elsewhere = send(producer, *event(OTHER, case="c-2"))  # ready, other key: at once
        assert produced_ids(producer)[1:] == [elsewhere]
        assert producer.pending == 2
        serializer.down.clear()
        wait_until(lambda: producer.pending == 0)
        assert produced_ids(producer)[1:] == [elsewhere, first, behind]


def test_a_full_pending_queue_drops_the_event_and_names_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    serializer = FlakyRegistrySerializer()
    serializer.down.set()
    with recording_producer(
        NOWHERE, serializer=serializer, registry_backoff=FAST, max_pending=2
    ) as producer:
        send(producer, *event(n=0))
        send(producer, *event(n=1))
        signal, metadata, data = event(n=2)
        send(producer, signal, metadata, data)  # no room: dropped, not raised
        assert (producer.pending, producer.stats.dropped) == (2, 1)
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert dropped == [
        f"event {metadata.id} ({SIGNAL.event_type}) for events dropped: "
        "2 events already wait for their schema"
    ]


def test_events_still_waiting_at_close_are_named_as_lost(caplog: pytest.LogCaptureFixture) -> None:
    serializer = FlakyRegistrySerializer()
    serializer.down.set()
    with recording_producer(NOWHERE, serializer=serializer, registry_backoff=FAST) as producer:
        lost = send(producer, *event())
        assert producer.close(timeout=0.1) == 1
        assert producer.stats.dropped == 1
    assert any(
        r.getMessage().startswith(f"event {lost} ({SIGNAL.event_type}) for events not sent")
        for r in caplog.records
    )


def test_synchronous_mode_raises_the_registry_error() -> None:
    serializer = FlakyRegistrySerializer()
    serializer.down.set()
    with recording_producer(NOWHERE, serializer=serializer, synchronous=True) as producer:
        with pytest.raises(SchemaRegistryError, match="registry unreachable"):
            send(producer, *event())
        assert produced_ids(producer) == []


def test_undelivered_events_are_logged_with_id_type_and_topic(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Nothing listens on port 1: librdkafka gives up on each record after message.timeout.ms.
    producer = EventProducer(
        settings=NOWHERE, kafka_config={"message.timeout.ms": 300}, install_exit_handlers=False
    )
    timed_out = send(producer, *event(n=1))
    wait_until(lambda: producer.stats.failed == 1)
    kept = send(producer, *event(n=2))
    assert producer.close(timeout=0) == 1  # the second one is purged at close
    assert producer.stats.failed == 2
    lines = [r.getMessage() for r in caplog.records if "not delivered" in r.getMessage()]
    assert len(lines) == 2
    for event_id, line in zip((timed_out, kept), lines, strict=True):
        assert re.match(
            rf"^event {event_id} \({re.escape(SIGNAL.event_type)}\) not delivered to events: ", line
        )
