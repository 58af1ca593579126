"""``flowbus demo``: show events travelling through a real broker and registry.

Uses the broker and registry from the environment when set; otherwise the local stack:
one that exists is started where it is not running and left running with its data; one the
demo creates is removed afterwards (``--keep-stack`` leaves it running).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import uuid
from collections.abc import Iterator

import click
from confluent_kafka.schema_registry import topic_subject_name_strategy

from flowbus.dev import devstack
from flowbus.exit_codes import ExitCode
from flowbus.settings import get_settings

# Name the subject strategy: the default asks the registry for topic associations,
# an endpoint Apicurio may leave unanswered.
_BY_TOPIC = {"subject.name.strategy": topic_subject_name_strategy}


@contextlib.contextmanager
def demo_stack(keep: bool) -> Iterator[tuple[str, str]]:
    """(bootstrap servers, registry URL): the configured ones, or a local stack."""
    settings = get_settings()
    if settings.kafka_bootstrap_servers and settings.schema_registry_url:
        click.echo(f"using the configured broker {settings.kafka_bootstrap_servers}")
        yield settings.kafka_bootstrap_servers, settings.schema_registry_url
        return
    stack = devstack.LocalStack(settings.state_dir, settings.cache_dir)
    # A stack that was there before is the user's, with their data: the demo starts what of
    # it is not running and leaves it all running. Only one it created goes down after it.
    existed = stack.info() is not None
    if not existed:
        click.echo("starting the local Kafka broker and schema registry ...")
    elif all(stack.health().values()):
        click.echo("reusing the running local stack")
    else:
        click.echo("starting what is not running of the local stack ...")
    info = stack.up()
    click.echo(
        f"Kafka {info.kafka_version} at {info.bootstrap_servers}, "
        f"Apicurio Registry {info.registry_version} at {info.schema_registry_url}"
    )
    try:
        yield info.bootstrap_servers, info.schema_registry_url
    finally:
        if not keep and not existed:
            stack.down()
            click.echo("stopped the local stack (use --keep-stack to leave it running)")


def pipes_round_trip(bootstrap: str, registry_url: str) -> None:
    """Create a topic, register a schema, produce one Avro record and read it back."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from flowbus.dev.demo_workflow import LIBRDKAFKA_LOG

    topic = f"flowbus-demo-pipes-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap}, logger=LIBRDKAFKA_LOG)
    admin.create_topics([NewTopic(topic, 1)])[topic].result(30)
    schema = (
        '{"type": "record", "name": "Hello", "namespace": "org.flowbus.demo",'
        ' "fields": [{"name": "greeting", "type": "string"}]}'
    )
    registry = SchemaRegistryClient({"url": registry_url})
    context = SerializationContext(topic, MessageField.VALUE)
    value = AvroSerializer(registry, schema)({"greeting": "hello, flowbus"}, context)
    producer = Producer({"bootstrap.servers": bootstrap}, logger=LIBRDKAFKA_LOG)
    producer.produce(topic, value=value)
    producer.flush(30)
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": topic, "auto.offset.reset": "earliest"},
        logger=LIBRDKAFKA_LOG,
    )
    consumer.subscribe([topic])
    try:
        for _ in range(30):
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                break
        else:
            raise click.ClickException(f"nothing came back from {topic}")
    finally:
        consumer.close()
    record = AvroDeserializer(registry, conf=_BY_TOPIC)(message.value(), context)
    click.echo(
        f"[pipes] {topic}[{message.partition()}]@{message.offset()}: {len(value)} bytes, "
        f"schema id {int.from_bytes(value[1:5], 'big')} -> {record}"
    )


@click.command()
@click.option("--keep-stack", is_flag=True, help="Leave a stack the demo started running.")
def demo(keep_stack: bool) -> None:
    """Show events travelling through a real broker."""
    if logging.getLogger().getEffectiveLevel() >= logging.WARNING:
        # The story prints what the warnings would (the dead letter, say) in its place;
        # errors still show, and -v or FLOWBUS_LOG_LEVEL brings the log back.
        logging.getLogger("flowbus").setLevel(logging.ERROR)
    try:
        with demo_stack(keep_stack) as (bootstrap, registry_url):
            pipes_round_trip(bootstrap, registry_url)
            # Every later component reads its settings from the environment.
            os.environ["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
            os.environ["SCHEMA_REGISTRY_URL"] = registry_url
            os.environ.setdefault("FLOWBUS_SCHEMA_AUTO_REGISTER", "true")
            get_settings.cache_clear()
            from flowbus.dev.demo_workflow import run_webhooks_demo, run_workflow_demo

            run_workflow_demo()
            run_webhooks_demo(bootstrap, registry_url)
    except devstack.DevStackError as exc:
        click.echo(f"flowbus demo: {exc}", err=True)
        sys.exit(ExitCode.BAD_INPUT)  # as `flowbus dev up`: the stack cannot run here
