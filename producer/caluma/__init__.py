"""Caluma integration: a Caluma service forwards every workflow event, nothing to write.

A Caluma (PyPI ``caluma``, 12.x) service lists one module in its environment::

    EVENT_RECEIVER_MODULES=flowbus.producer.caluma.receivers

and :mod:`~flowbus.producer.caluma.receivers` connects to every event of
``caluma.caluma_workflow.events``, turns Caluma's arguments into the catalog's data
(:mod:`flowbus.catalog.caluma`, built by :mod:`~flowbus.producer.caluma.snapshots`) and
sends the catalog signal, which forwards it to ``FLOWBUS_CALUMA_TOPIC``.

**Delivery contract.** By default (``FLOWBUS_CALUMA_SINK=outbox``) each event is written
into the outbox table on Caluma's own database connection, inside the transaction of the
mutation that caused it (:mod:`flowbus.producer.outbox`): a mutation that rolls back takes
its events with it, and ``python -m flowbus.producer.caluma outbox relay`` publishes every
committed one, in commit order per case. ``on_commit`` produces after the commit instead
(a crash in between loses events); ``direct`` produces at once, rolled-back work included.

**No event disappears without trace.** The receivers are connected with Caluma's
``raise_exception=True``: when flowbus cannot build an event's data (a value it cannot
represent) or cannot write it into the outbox, the receiver raises, Caluma raises
``SignalHandlingError`` and the mutation's transaction rolls back. The client gets an
error, the log names the Caluma event and the reason (never the values), and Caluma's
data never holds a change whose event is missing. Caluma's Python API is not atomic by
itself: call it inside ``transaction.atomic()`` to get the same guarantee.

Caluma is an optional dependency: nothing here is imported by flowbus itself.
"""

from __future__ import annotations

from flowbus.errors import FlowbusError

__all__ = ["CalumaEventError"]


class CalumaEventError(FlowbusError):
    """A Caluma event whose data flowbus cannot build; ``event`` is Caluma's event name,
    ``where`` the argument path, ``reason`` what is wrong (never the value)."""

    def __init__(self, event: str, where: str, reason: str) -> None:
        self.event = event
        self.where = where
        self.reason = reason
        super().__init__(f"Caluma event {event}: {where}: {reason}")
