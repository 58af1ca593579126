"""How the project starts flowbus: one producer, forwarding with the configured sink."""

from __future__ import annotations

from collections.abc import Callable

from flowbus.producer.event_producer import EventProducer
from flowbus.producer.forwarding import Forwarder, start_forwarding
from flowbus.producer.on_commit import DjangoTransactions, OnCommitSink
from flowbus.producer.sinks import EventSink
from permits import signals  # noqa: F401  (defines the project's signal)

#: The sinks this project builds itself, by FLOWBUS_PRODUCER_SINK name. ``outbox`` needs no
#: entry: forwarding builds it, and the outbox app binds it to Django's connection.
SINKS: dict[str, Callable[[EventProducer], EventSink]] = {
    "on_commit": lambda producer: OnCommitSink(producer, DjangoTransactions()),
}

producer: EventProducer | None = None
forwarder: Forwarder | None = None


def start() -> None:
    global producer, forwarder
    producer = EventProducer()
    sink = producer.settings.producer_sink
    sinks = {sink: SINKS[sink](producer)} if sink in SINKS else {}
    forwarder = start_forwarding(producer, sinks=sinks)
