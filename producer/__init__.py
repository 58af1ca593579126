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

from flowbus.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from .event_producer import DeliveryReport, EventProducer, ProducerStats
    from .forwarding import Forwarder, Route, parse_forwarding_config, start_forwarding
    from .on_commit import (
        DBAPITransactions,
        DjangoTransactions,
        OnCommitSink,
        SQLAlchemyTransactions,
        TransactionHook,
    )
    from .prepared import PreparedEvent, prepare_event
    from .sinks import EventSink

__all__ = [
    "DBAPITransactions",
    "DeliveryReport",
    "DjangoTransactions",
    "EventProducer",
    "EventSink",
    "Forwarder",
    "OnCommitSink",
    "PreparedEvent",
    "ProducerStats",
    "Route",
    "SQLAlchemyTransactions",
    "TransactionHook",
    "parse_forwarding_config",
    "prepare_event",
    "start_forwarding",
]

# Imported on first use: `flowbus produce --help` must not pay for confluent-kafka.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DeliveryReport": ".event_producer",
        "EventProducer": ".event_producer",
        "ProducerStats": ".event_producer",
        "Forwarder": ".forwarding",
        "Route": ".forwarding",
        "parse_forwarding_config": ".forwarding",
        "start_forwarding": ".forwarding",
        "DBAPITransactions": ".on_commit",
        "DjangoTransactions": ".on_commit",
        "OnCommitSink": ".on_commit",
        "SQLAlchemyTransactions": ".on_commit",
        "TransactionHook": ".on_commit",
        "PreparedEvent": ".prepared",
        "prepare_event": ".prepared",
        "EventSink": ".sinks",
    },
)
