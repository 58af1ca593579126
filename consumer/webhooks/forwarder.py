"""A signal receiver that hands every event it gets to a :class:`DeliveryEngine`.

The consumer worker re-sends each consumed event to the local receivers of its signal;
connecting a :class:`WebhookForwarder` makes webhooks one of them::

    engine = DeliveryEngine.from_settings().start()
    forwarder = WebhookForwarder(engine).connect()   # every signal defined so far
    Worker(topics, group).run()                      # each event -> engine.submit
    forwarder.disconnect(); engine.stop()

The forwarder returns only after the deliveries are stored, so the worker stores the
offset after they are durable; if storing fails, the receiver raises and the worker's
retry / dead-letter policy applies.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flowbus.metadata import EventMetadata
from flowbus.signals import WorkflowSignal, sender_name

from .delivery import DeliveryEngine
from .event import WebhookEvent
from .models import Delivery

__all__ = ["WebhookForwarder"]


class WebhookForwarder:
    """Receiver ``(sender, *, signal, metadata, from_event_bus, **data)`` -> ``engine.submit``."""

    def __init__(self, engine: DeliveryEngine) -> None:
        self.engine = engine
        self._connected: list[WorkflowSignal] = []

    def __call__(
        self,
        sender: object,
        *,
        signal: WorkflowSignal,
        metadata: EventMetadata,
        from_event_bus: bool = False,
        **data: Any,
    ) -> list[Delivery]:
        event = WebhookEvent.from_metadata(
            metadata,
            data,
            sender=sender_name(sender),
            partitionkey=signal.resolve_key(data),
        )
        return self.engine.submit(event)

    def connect(self, signals: Iterable[WorkflowSignal] | None = None) -> WebhookForwarder:
        """Connect to ``signals`` (default: every signal defined so far)."""
        for signal in WorkflowSignal.all_signals() if signals is None else signals:
            if signal not in self._connected:
                signal.connect(self)
                self._connected.append(signal)
        return self

    def disconnect(self) -> None:
        """Disconnect from every signal :meth:`connect` connected to."""
        for signal in self._connected:
            signal.disconnect(self)
        self._connected.clear()
