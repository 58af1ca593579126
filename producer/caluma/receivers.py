"""The module a Caluma service lists in ``EVENT_RECEIVER_MODULES``; importing it connects.

On import (Caluma imports it when its apps are ready) it starts forwarding every Caluma
catalog signal to ``FLOWBUS_CALUMA_TOPIC`` through ``FLOWBUS_CALUMA_SINK`` and connects
one receiver to each event of ``caluma.caluma_workflow.events`` with Caluma's
``raise_exception=True``. For each event the receiver builds the catalog data
(:mod:`~flowbus.producer.caluma.snapshots`) and sends the catalog signal with Caluma's
sender; it returns ``None`` (Caluma logs any other value as an error) and raises when the
event cannot be built or handed to its sink, so that the mutation rolls back (see
:mod:`flowbus.producer.caluma` for the contract).

``pre_create_case`` comes before the case exists. To give it the case's key, the receiver
assigns the new case's id in ``validated_data`` (Caluma's own id default, as a client may
pass ``id`` to ``saveCase``) unless one is there already; the case is then created with
that id, and the event carries it as ``case_id``.

Settings (environment, read once at import):

- ``FLOWBUS_CALUMA_TOPIC``: the topic (``FLOWBUS_TOPIC_PREFIX`` applies), default
  ``caluma-events``.
- ``FLOWBUS_CALUMA_SINK``: ``outbox`` (default), ``on_commit`` or ``direct``.
- ``FLOWBUS_OUTBOX_USING``: the Django connection alias of the outbox and of on-commit
  mode (default ``default``).
- flowbus's own ``KAFKA_BOOTSTRAP_SERVERS``, ``SCHEMA_REGISTRY_URL``, ``FLOWBUS_*``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict

from flowbus.catalog import caluma as catalog
from flowbus.errors import ConfigurationError
from flowbus.signals import WorkflowSignal

from ..event_producer import EventProducer
from ..forwarding import Forwarder, start_forwarding
from ..sinks import EventSink, SinkName
from .snapshots import case_snapshot, context_value, json_value, user_info, work_item_snapshot

try:
    from caluma.caluma_core.events import on
    from caluma.caluma_workflow import events as caluma_events
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ConfigurationError(
        "flowbus.producer.caluma.receivers runs inside a Caluma service (pip install caluma)"
    ) from exc

__all__ = ["CalumaSettings", "forwarder", "receive"]


class CalumaSettings(BaseSettings):
    """``FLOWBUS_CALUMA_*``: where Caluma's events go and through which sink."""

    model_config = SettingsConfigDict(env_prefix="FLOWBUS_CALUMA_", extra="ignore")

    topic: str = "caluma-events"
    sink: SinkName = "outbox"


def _start(settings: CalumaSettings) -> Forwarder:
    from ..outbox.django import outbox_alias

    alias = outbox_alias()
    producer = EventProducer()
    sinks: dict[str, EventSink] = {}
    if settings.sink == "outbox":
        from ..outbox.django import bind_django_connection

        bind_django_connection(alias)
    elif settings.sink == "on_commit":
        from ..on_commit import DjangoTransactions, OnCommitSink

        sinks["on_commit"] = OnCommitSink(producer, DjangoTransactions(alias))
    routes = {signal.event_type: [{"topic": settings.topic}] for signal in catalog.CALUMA_SIGNALS}
    return start_forwarding(producer, routes, sinks=sinks, default_sink=settings.sink)


def _work_item_data(event: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"work_item": work_item_snapshot(arguments["work_item"])}


def _pre_create_work_item_data(event: str, arguments: dict[str, Any]) -> dict[str, Any]:
    validated = arguments["validated_data"]
    return {
        "work_item": None,
        "case": case_snapshot(validated["case"]),
        "validated_data": json_value(validated, event, "validated_data"),
    }


def _case_data(event: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"case": case_snapshot(arguments["case"])}


def _reopen_case_data(event: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "case": case_snapshot(arguments["case"]),
        "work_items": [work_item_snapshot(item) for item in arguments["work_items"]],
    }


def _pre_create_case_data(event: str, arguments: dict[str, Any]) -> dict[str, Any]:
    from caluma.caluma_workflow.models import Case

    validated = arguments["validated_data"]
    if validated.get("id") is None:
        validated["id"] = Case._meta.get_field("id").get_default()
    return {
        "case": None,
        "case_id": validated["id"],
        "validated_data": json_value(validated, event, "validated_data"),
    }


DataBuilder = Callable[[str, dict[str, Any]], dict[str, Any]]
#: Caluma event name -> (catalog signal, what builds its data besides user and context).
EVENTS: dict[str, tuple[WorkflowSignal, DataBuilder]] = {}
for _phase in ("pre", "post"):
    for _action in catalog.WORK_ITEM_ACTIONS:
        _name = f"{_phase}_{_action}_work_item"
        EVENTS[_name] = (
            getattr(catalog, _name),
            _pre_create_work_item_data if _name == "pre_create_work_item" else _work_item_data,
        )
    for _action in catalog.CASE_ACTIONS:
        _name = f"{_phase}_{_action}_case"
        EVENTS[_name] = (
            getattr(catalog, _name),
            _pre_create_case_data
            if _name == "pre_create_case"
            else _reopen_case_data
            if _action == "reopen"
            else _case_data,
        )

settings = CalumaSettings()
#: The forwarder of the Caluma signals (``forwarder.disconnect()`` disconnects it).
forwarder = _start(settings)
_BY_SIGNAL: dict[object, str] = {getattr(caluma_events, name): name for name in EVENTS}


def receive(sender: object, signal: object, **arguments: Any) -> None:
    """The receiver of every Caluma event: send its catalog signal; raise if it cannot be
    built or forwarded (Caluma then rolls the mutation back)."""
    event = _BY_SIGNAL[signal]
    catalog_signal, build = EVENTS[event]
    data = build(event, arguments)
    data["user"] = user_info(arguments.get("user"))
    data["context"] = context_value(arguments.get("context"), event)
    for receiver, result in catalog_signal.send_event(sender=sender, **data):
        if receiver == forwarder.forward and isinstance(result, Exception):
            raise result


on(list(_BY_SIGNAL), raise_exception=True)(receive)
