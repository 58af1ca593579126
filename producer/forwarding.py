"""Forwarding: which signals go to which topics, with which key.

``FLOWBUS_PRODUCER_CONFIG`` is a JSON object mapping an event type to a list of routes::

    {"org.flowbus.workflow.work_item.completed.v1": [
        {"topic": "workflow-events", "key_path": "work_item.case_id", "enabled": true}
    ]}

``key_path`` defaults to the signal's own key path; ``enabled`` to true; ``wire`` (a wire
profile of :mod:`flowbus.wire`: ``flowbus`` or ``openedx``) to the signal's; ``sink``
(``direct``, ``on_commit`` or ``outbox``, see :mod:`flowbus.producer.sinks`) to
``FLOWBUS_PRODUCER_SINK`` (itself ``direct`` by default). The whole configuration is
validated when forwarding starts: an unknown event type, a key path that cannot exist in
the signal's data, a wire profile that cannot carry the signal's data (naming the field
and why) or a sink that is not available is an error naming the entry. Events a
consumer re-sent (``from_event_bus=True``) are never forwarded again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flowbus.errors import ConfigurationError, SignalDefinitionError
from flowbus.metadata import EventMetadata
from flowbus.signals import WorkflowSignal, sender_name
from flowbus.wire import get_profile

from .event_producer import EventProducer
from .sinks import EventSink, SinkName, resolve_sink

log = logging.getLogger(__name__)


class Route(BaseModel):
    """One topic an event type is forwarded to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str = Field(min_length=1)
    key_path: str | None = Field(default=None, min_length=1)
    enabled: bool = True
    #: The sink of this route; ``None``: ``FLOWBUS_PRODUCER_SINK``.
    sink: SinkName | None = None
    #: The wire profile of this route (:mod:`flowbus.wire`); ``None``: the signal's.
    wire: str | None = None


ForwardingConfig = dict[str, list[Route]]


def parse_forwarding_config(raw: str | Mapping[str, Any]) -> ForwardingConfig:
    """Parse and validate a forwarding configuration (JSON text or a mapping)."""
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"FLOWBUS_PRODUCER_CONFIG is not valid JSON: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ConfigurationError("FLOWBUS_PRODUCER_CONFIG must be a JSON object")
    config: ForwardingConfig = {}
    for event_type, routes in data.items():
        if isinstance(routes, Mapping):
            routes = [routes]
        try:
            signal = WorkflowSignal.get_signal_by_type(event_type)
        except KeyError:
            raise ConfigurationError(
                f"FLOWBUS_PRODUCER_CONFIG[{event_type!r}]: unknown event type"
            ) from None
        parsed = []
        for index, route in enumerate(routes if isinstance(routes, list) else [routes]):
            entry = f"FLOWBUS_PRODUCER_CONFIG[{event_type!r}][{index}]"
            try:
                parsed_route = Route.model_validate(route)
            except ValidationError as exc:
                raise ConfigurationError(f"{entry}: {_first_error(exc)}") from exc
            key_path = parsed_route.key_path or signal.key_path
            if key_path is not None:
                try:
                    signal.validate_key_path(key_path)
                except ConfigurationError as exc:
                    raise ConfigurationError(f"{entry}: key_path {key_path!r}: {exc}") from exc
            if parsed_route.wire is not None:
                _check_wire(entry, signal, parsed_route.wire)
            parsed.append(parsed_route)
        config[event_type] = parsed
    return config


def _check_wire(entry: str, signal: WorkflowSignal, wire: str) -> None:
    try:
        get_profile(wire).check_data(signal.event_type, signal.data, signal.doc)
    except (ConfigurationError, SignalDefinitionError) as exc:
        raise ConfigurationError(f"{entry}: wire {wire!r}: {exc}") from exc


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


class Forwarder:
    """Connects the configured signals to their sinks; ``stop()`` disconnects them.

    ``sinks`` names the sinks routes may choose (``direct`` defaults to ``producer``);
    ``default_sink`` is the sink of routes that name none (default:
    ``FLOWBUS_PRODUCER_SINK``).
    """

    def __init__(
        self,
        producer: EventProducer,
        config: ForwardingConfig,
        *,
        sinks: Mapping[str, EventSink] | None = None,
        default_sink: SinkName | None = None,
    ) -> None:
        self.producer = producer
        self.config = config
        default = default_sink or producer.settings.producer_sink
        given = dict(sinks or {})
        resolved: dict[str, EventSink] = {}
        #: Per event type: each enabled route, its sink, and the extra arguments it passes
        #: (``wire`` only for a route that names one: custom sinks may not take it).
        self._routes: dict[str, list[tuple[Route, EventSink, dict[str, str]]]] = {}
        for event_type, routes in config.items():
            chosen = []
            for index, route in enumerate(routes):
                name = route.sink or default
                if route.enabled and name not in resolved:
                    where = f"FLOWBUS_PRODUCER_CONFIG[{event_type!r}][{index}]"
                    resolved[name] = resolve_sink(name, producer, given, where)
                if route.enabled:
                    extra = {} if route.wire is None else {"wire": route.wire}
                    chosen.append((route, resolved[name], extra))
            self._routes[event_type] = chosen
        self._signals = [WorkflowSignal.get_signal_by_type(t) for t in config]

    def start(self) -> Forwarder:
        for signal in self._signals:
            signal.connect(self.forward)
        return self

    def stop(self) -> None:
        for signal in self._signals:
            signal.disconnect(self.forward)

    def forward(
        self,
        sender: object,
        *,
        signal: WorkflowSignal,
        metadata: EventMetadata,
        from_event_bus: bool = False,
        **data: Any,
    ) -> int:
        """The receiver: hand the event to each enabled route's sink; returns how many."""
        if from_event_bus:
            return 0  # re-sent by a consumer: it already travelled
        routes = self._routes.get(signal.event_type, ())
        if not routes:
            return 0
        name = sender_name(sender)
        for route, sink, extra in routes:
            sink.send(
                signal,
                metadata,
                data,
                topic=route.topic,
                key=signal.resolve_key(data, route.key_path),
                sender=name,
                **extra,
            )
        return len(routes)


def start_forwarding(
    producer: EventProducer,
    config: str | Mapping[str, Any] | None = None,
    *,
    sinks: Mapping[str, EventSink] | None = None,
    default_sink: SinkName | None = None,
) -> Forwarder:
    """Validate the configuration (default: ``FLOWBUS_PRODUCER_CONFIG``) and connect it.

    ``sinks`` and ``default_sink``: see :class:`Forwarder`.
    """
    if config is None:
        config = producer.settings.producer_config
    return Forwarder(
        producer, parse_forwarding_config(config), sinks=sinks, default_sink=default_sink
    ).start()
