"""The producer side: send workflow signals to Kafka.

::

    from flowbus.producer import EventProducer, start_forwarding

    producer = EventProducer()
    start_forwarding(producer)   # every routed signal's send_event now reaches Kafka

Sinks other than the producer: :class:`OnCommitSink` (send after the caller's transaction
commits) and the transactional outbox, :mod:`flowbus.producer.outbox`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowbus.lazy_exports import lazy_exports_by_module

# Type checkers do not run __getattr__: they read the names here (`X as X` re-exports them).
if TYPE_CHECKING:
    from .event_producer import DeliveryReport as DeliveryReport
    from .event_producer import EventProducer as EventProducer
    from .event_producer import ProducerStats as ProducerStats
    from .forwarding import Forwarder as Forwarder
    from .forwarding import Route as Route
    from .forwarding import parse_forwarding_config as parse_forwarding_config
    from .forwarding import start_forwarding as start_forwarding
    from .on_commit import DBAPITransactions as DBAPITransactions
    from .on_commit import DjangoTransactions as DjangoTransactions
    from .on_commit import OnCommitSink as OnCommitSink
    from .on_commit import SQLAlchemyTransactions as SQLAlchemyTransactions
    from .on_commit import TransactionHook as TransactionHook
    from .prepared import PreparedEvent as PreparedEvent
    from .prepared import prepare_event as prepare_event
    from .sinks import EventSink as EventSink

# Imported on first use: `flowbus produce --help` must not pay for confluent-kafka.
__all__, __getattr__, __dir__ = lazy_exports_by_module(
    __name__,
    {
        ".event_producer": ["DeliveryReport", "EventProducer", "ProducerStats"],
        ".forwarding": ["Forwarder", "Route", "parse_forwarding_config", "start_forwarding"],
        ".on_commit": [
            "DBAPITransactions",
            "DjangoTransactions",
            "OnCommitSink",
            "SQLAlchemyTransactions",
            "TransactionHook",
        ],
        ".prepared": ["PreparedEvent", "prepare_event"],
        ".sinks": ["EventSink"],
    },
)
