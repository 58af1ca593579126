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

A failed write of an ``outbox`` or ``on_commit`` route (nothing bound, the table missing,
a database error, an event that cannot be prepared) raises from ``send_event`` into the
caller, whatever ``send_robust`` says, so that the caller's transaction fails with it
instead of committing without its event: the forwarder connects those routes as a
*required* receiver (``Forwarder.forward_in_transaction``), called before the ``direct``
routes' receiver (``Forwarder.forward``), which keeps ``send_robust``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flowbus.avro.signal_schemas import signal_analysis
from flowbus.errors import ConfigurationError, SignalDefinitionError
from flowbus.metadata import EventMetadata
from flowbus.signals import EventReceiver, WorkflowSignal
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
        signal_analysis(signal, get_profile(wire))
    except (ConfigurationError, SignalDefinitionError) as exc:
        raise ConfigurationError(f"{entry}: wire {wire!r}: {exc}") from exc


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


class RouteReceiver(EventReceiver):
    """A receiver that hands each event to the sinks of its event type's routes; it
    returns how many routes it handed the event to."""

    def __init__(self, routes: Mapping[str, Sequence[tuple[Route, EventSink]]]) -> None:
        self.routes = routes
        # What each event needs of its routes, taken once: the sink's ``send``, the topic,
        # the key path and the keyword arguments (``wire`` only for a route that names one:
        # custom sinks may not take it).
        self._calls = {
            event_type: tuple(
                (sink.send, route.topic, route.key_path,
                 {} if route.wire is None else {"wire": route.wire})
                for route, sink in event_routes
            )
            for event_type, event_routes in routes.items()
        }  # fmt: skip

    def receive(
        self,
        sender: object,
        name: str | None,
        signal: WorkflowSignal,
        metadata: EventMetadata,
        data: Mapping[str, Any],
        from_event_bus: bool,
    ) -> int:
        if from_event_bus:
            return 0  # re-sent by a consumer: it already travelled
        calls = self._calls.get(signal.event_type, ())
        if not calls:
            return 0
        for send, topic, key_path, extra in calls:
            send(
                signal,
                metadata,
                data,
                topic=topic,
                key=signal.resolve_key(data, key_path),
                sender=name,
                **extra,
            )
        return len(calls)


class Forwarder:
    """Connects the configured signals to their sinks: :meth:`connect`, :meth:`disconnect`
    (the verbs of the signals, and of the webhooks' ``WebhookForwarder``).

    ``sinks`` names the sinks routes may choose (``direct`` defaults to ``producer``);
    ``default_sink`` is the sink of routes that name none (default:
    ``FLOWBUS_PRODUCER_SINK``). Two receivers: :attr:`forward_in_transaction`, the
    required one of the ``outbox`` and ``on_commit`` routes, connected first, and
    :attr:`forward`, the one of the ``direct`` routes (see the module docstring).
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
        direct: dict[str, list[tuple[Route, EventSink]]] = {}
        in_transaction: dict[str, list[tuple[Route, EventSink]]] = {}
        for event_type, routes in config.items():
            direct[event_type], in_transaction[event_type] = [], []
            for index, route in enumerate(routes):
                name = route.sink or default
                if not route.enabled:
                    continue
                if name not in resolved:
                    where = f"FLOWBUS_PRODUCER_CONFIG[{event_type!r}][{index}]"
                    resolved[name] = resolve_sink(name, producer, given, where)
                chosen = direct if name == "direct" else in_transaction
                chosen[event_type].append((route, resolved[name]))
        self.forward = RouteReceiver(direct)
        self.forward_in_transaction = RouteReceiver(in_transaction)
        self._signals = [WorkflowSignal.get_signal_by_type(t) for t in config]

    def connect(self) -> Forwarder:
        """Connect the receivers to the configured signals."""
        for signal in self._signals:
            transactional = bool(self.forward_in_transaction.routes[signal.event_type])
            if transactional:
                signal.connect(self.forward_in_transaction, required=True)
            if self.forward.routes[signal.event_type] or not transactional:
                signal.connect(self.forward)  # also with no route enabled: it answers 0
        return self

    def disconnect(self) -> None:
        """Disconnect what :meth:`connect` connected."""
        for signal in self._signals:
            signal.disconnect(self.forward_in_transaction)
            signal.disconnect(self.forward)

    #: The first name of :meth:`disconnect`, kept for callers of ``forwarder.stop()``.
    stop = disconnect


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
    ).connect()
