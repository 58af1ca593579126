"""``flowbus produce``: validate one event against its signal and send it synchronously."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from flowbus.errors import InputError
from flowbus.json_output import echo_json, json_option
from flowbus.settings import get_settings


def _load_data(data: str) -> dict[str, Any]:
    """``--data``: a JSON object, or ``@file`` holding one."""
    if data.startswith("@"):
        try:
            text = Path(data[1:]).read_text()
        except OSError as exc:
            raise InputError(
                f"Invalid value for --data: cannot read {data[1:]!r}: {exc.strerror or exc}"
            ) from None
    else:
        text = data
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"Invalid value for --data: not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise InputError(
            "Invalid value for --data: must be a JSON object of the signal's arguments"
        )
    return parsed


@click.command()
@click.argument("event_type")
@click.option("--data", "data", required=True, help="The event's arguments: JSON, or @file.")
@click.option("--topic", help="Topic (default: the routes in FLOWBUS_PRODUCER_CONFIG).")
@click.option("--key", help="Record key (default: the value at the signal's key path).")
@click.option("--sender", help="Sender name carried in the ce_sender header.")
@json_option("One JSON object per topic: topic, partition, offset, event_id, event_type, key.")
def produce(
    event_type: str,
    data: str,
    topic: str | None,
    key: str | None,
    sender: str | None,
    as_json: bool,
) -> None:
    """Validate an event against its signal, send it, print where it landed."""
    import flowbus.catalog  # noqa: F401  (registers the catalog's signals)
    from flowbus.receivers import import_receiver_modules
    from flowbus.signals import WorkflowSignal

    from .event_producer import EventProducer
    from .forwarding import parse_forwarding_config

    import_receiver_modules()  # they may define signals of their own
    settings = get_settings()
    try:
        signal = WorkflowSignal.get_signal_by_type(event_type)
    except KeyError:
        raise click.BadParameter(
            f"unknown event type {event_type!r}", param_hint="EVENT_TYPE"
        ) from None
    validated = signal.validate_data(**_load_data(data))
    if topic:
        routes = [(topic, key if key is not None else signal.resolve_key(validated))]
    else:
        config = parse_forwarding_config(settings.producer_config)
        routes = [
            (route.topic, key if key is not None else signal.resolve_key(validated, route.key_path))
            for route in config.get(event_type, [])
            if route.enabled
        ]
        if not routes:
            raise click.UsageError(
                f"no topic: pass --topic or route {event_type} in FLOWBUS_PRODUCER_CONFIG"
            )
    metadata = signal.generate_signal_metadata()
    with EventProducer(synchronous=True, install_exit_handlers=False) as producer:
        producer.check_broker()
        for route_topic, route_key in routes:
            report = producer.send(
                signal, metadata, validated, topic=route_topic, key=route_key, sender=sender
            )
            assert report is not None  # synchronous mode always reports
            if as_json:
                echo_json(
                    {
                        "topic": report.topic,
                        "partition": report.partition,
                        "offset": report.offset,
                        "event_id": report.event_id,
                        "event_type": event_type,
                        "key": route_key,
                    }
                )
                continue
            click.echo(
                f"{report.topic}[{report.partition}]@{report.offset} "
                f"id={report.event_id} key={route_key}"
            )
