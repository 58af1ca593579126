"""Event sinks: where the forwarder hands an event, chosen per route.

Three sinks, each with its own delivery contract:

- ``direct``: :class:`~flowbus.producer.event_producer.EventProducer` produces at once,
  outside any transaction (see its module for the contract).
- ``on_commit``: :class:`~flowbus.producer.on_commit.OnCommitSink` produces after the
  caller's database transaction commits, nothing on rollback. A crash between the commit
  and the delivery loses the event.
- ``outbox``: :class:`~flowbus.producer.outbox.OutboxSink` writes the event into an outbox
  table in the caller's transaction (the connection bound with ``outbox.bind``, or Django's
  with the ``flowbus.producer.outbox.django`` app); a relay publishes it. Nothing
  committed is lost.

``FLOWBUS_PRODUCER_SINK`` is the default, a route's ``"sink"`` overrides it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, get_args

from flowbus.errors import ConfigurationError
from flowbus.settings import SinkName

if TYPE_CHECKING:
    from flowbus.metadata import EventMetadata
    from flowbus.signals import WorkflowSignal

    from .event_producer import EventProducer

__all__ = ["SINK_NAMES", "EventSink", "SinkName", "resolve_sink"]

SINK_NAMES: tuple[str, ...] = get_args(SinkName)


class EventSink(Protocol):
    """Takes one event of a signal for one topic; what happens next is the sink's contract.

    ``data`` is the signal's validated data; errors of the caller's data raise here.
    ``wire``: the route's wire profile (:mod:`flowbus.wire`; default: the signal's). The
    forwarder passes it only for routes that name one.
    """

    def send(
        self,
        signal: WorkflowSignal,
        metadata: EventMetadata,
        data: Mapping[str, Any],
        *,
        topic: str,
        key: str | None = None,
        sender: str | None = None,
        wire: str | None = None,
    ) -> object: ...


def resolve_sink(
    name: SinkName, producer: EventProducer, sinks: Mapping[str, EventSink], where: str
) -> EventSink:
    """The sink called ``name``: one given in ``sinks``, else the default one.

    ``direct`` defaults to ``producer``. ``on_commit`` needs its transaction hook, so it
    must be given. ``outbox`` defaults to ``OutboxSink.from_settings(producer.settings)``
    (imported only then). ``where`` names the configuration entry in errors.
    """
    if name in sinks:
        return sinks[name]
    if name == "direct":
        return producer
    if name == "on_commit":
        raise ConfigurationError(
            f"{where}: sink 'on_commit' needs to know the transactions: pass "
            "start_forwarding(..., sinks={'on_commit': OnCommitSink(producer, "
            "DjangoTransactions() | SQLAlchemyTransactions(session) | DBAPITransactions())})"
        )
    from .outbox import OutboxSink

    return OutboxSink.from_settings(producer.settings)
