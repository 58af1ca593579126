"""The Open edX side of ``tests/integration/test_openedx_bus.py``, run in the Open edX venv
(openedx-events + edx-event-bus-kafka, never flowbus). One command a run; its JSON report
is the last line on stdout.

    peer.py produce --topic T --count N [--course-key K]...
        edx-event-bus-kafka's producer sends N events of ``openedx_sample``'s signal;
        reports each event's metadata and data.
    peer.py consume --topic T --count N [--timeout S]
        edx-event-bus-kafka's consumer (a new group, positioned at the topic's start) re-emits
        N events; reports what its receiver got and every warning the libraries logged.
    peer.py register --subject S --schema FILE
        registers a schema as the Open edX side would (confluent-kafka's client).

Settings come from the environment: KAFKA_BOOTSTRAP_SERVERS, SCHEMA_REGISTRY_URL.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import os
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

import openedx_sample


class Captured(logging.Handler):
    """Every WARNING and above the libraries log."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.levelname} {record.name}: {record.getMessage()[:500]}")


def configure() -> Any:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        DATABASES={},
        INSTALLED_APPS=["openedx_events", "edx_event_bus_kafka"],
        EVENTS_SERVICE_NAME="openedx-peer",
        EVENT_BUS_PRODUCER="edx_event_bus_kafka.create_producer",
        EVENT_BUS_CONSUMER="edx_event_bus_kafka.KafkaEventConsumer",
        EVENT_BUS_KAFKA_BOOTSTRAP_SERVERS=os.environ["KAFKA_BOOTSTRAP_SERVERS"],
        EVENT_BUS_KAFKA_SCHEMA_REGISTRY_URL=os.environ["SCHEMA_REGISTRY_URL"],
        OPENEDX_TELEMETRY=[],
    )
    django.setup()
    from openedx_events.tooling import OpenEdxPublicSignal

    return OpenEdxPublicSignal(
        event_type=openedx_sample.EVENT_TYPE,
        data=openedx_sample.INIT_DATA,
        minor_version=openedx_sample.MINOR_VERSION,
    )


def metadata_json(metadata: Any) -> dict[str, Any]:
    return {
        "id": str(metadata.id),
        "event_type": metadata.event_type,
        "time": metadata.time.isoformat(),
        "source": metadata.source,
        "sourcehost": metadata.sourcehost,
        "sourcelib": list(metadata.sourcelib),
        "minorversion": metadata.minorversion,
    }


def produce(args: argparse.Namespace, signal: Any) -> dict[str, Any]:
    from openedx_events.event_bus import get_producer

    producer = get_producer()
    sent = []
    for index in range(args.count):
        keys = args.course_key or [f"course-v1:flowbus+{index}"]
        data = openedx_sample.enrollment(index, keys[index % len(keys)])
        metadata = signal.generate_signal_metadata()
        producer.send(
            signal=signal,
            topic=args.topic,
            event_key_field=openedx_sample.KEY_FIELD,
            event_data=data,
            event_metadata=metadata,
        )
        sent.append({"metadata": metadata_json(metadata), "data": openedx_sample.as_plain(data)})
    producer.prepare_for_shutdown()
    return {"sent": sent}


def position_at_start(topic: str, group: str) -> None:
    """A new group starts at the latest offset in edx-event-bus-kafka: commit the starts."""
    from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4().hex}"})
    partitions = probe.list_topics(topic, timeout=30).topics[topic].partitions
    starts = [
        TopicPartition(
            topic, p, probe.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[0]
        )
        for p in partitions
    ]
    probe.close()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, starts)]
    ).values():
        future.result(timeout=30)


def consume(args: argparse.Namespace, signal: Any) -> dict[str, Any]:
    from openedx_events.event_bus import make_single_consumer

    group = f"openedx-peer-{uuid.uuid4().hex[:8]}"
    position_at_start(args.topic, group)
    consumer = make_single_consumer(topic=args.topic, group_id=group)
    received: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        metadata = kwargs.pop("metadata")
        kwargs.pop("signal", None)
        from_event_bus = kwargs.pop("from_event_bus", None)
        received.append(
            {
                "sender": sender,
                "from_event_bus": from_event_bus,
                "metadata": metadata_json(metadata),
                "data": openedx_sample.as_plain(kwargs),
                "types": {name: type(value).__name__ for name, value in kwargs.items()},
            }
        )
        if len(received) >= args.count:
            consumer._shut_down()  # the loop's own exit flag

    signal.connect(receiver, weak=False)
    timer = threading.Timer(args.timeout, consumer._shut_down)
    timer.daemon = True
    timer.start()
    consumer.consume_indefinitely()
    timer.cancel()
    return {"received": received}


def register(args: argparse.Namespace) -> dict[str, Any]:
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    client = SchemaRegistryClient({"url": os.environ["SCHEMA_REGISTRY_URL"]})
    text = Path(args.schema).read_text()
    try:
        schema_id = client.register_schema(args.subject, Schema(text, "AVRO"))
    except Exception as exc:  # the verdict is the report
        return {"registered": False, "error": str(exc)[:500]}
    return {"registered": True, "id": schema_id}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=("produce", "consume", "register"))
    parser.add_argument("--topic")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--course-key", action="append")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--subject")
    parser.add_argument("--schema")
    args = parser.parse_args()
    faulthandler.dump_traceback_later(args.timeout + 30, exit=True)  # a hang tells where
    captured = Captured()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger().addHandler(captured)
    signal = configure()
    if args.command == "register":
        report = register(args)
    else:
        report = produce(args, signal) if args.command == "produce" else consume(args, signal)
    import edx_event_bus_kafka
    import openedx_events

    report["versions"] = {
        "python": sys.version.split()[0],
        "openedx-events": openedx_events.__version__,
        "edx-event-bus-kafka": getattr(edx_event_bus_kafka, "__version__", "?"),
    }
    report["warnings"] = captured.messages
    print(json.dumps(report, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
