"""Kafka client configurations for the operator commands (``flowbus replay``, ``flowbus dlq``).

Built from the settings like the producer's: the broker address, then the user's
librdkafka properties (``FLOWBUS_KAFKA_CONFIG``: SASL/SSL...), then what the command needs.
These clients never create topics: a mistyped name is an error, not a new topic. Their
``logger`` is a :class:`~flowbus.broker.BrokerLog`: an unreachable broker is one line.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from flowbus.broker import PROBE_TIMEOUT_S, BrokerLog, kafka_error_text, probe_broker
from flowbus.errors import ConfigurationError, FlowbusError, TopicNotFoundError
from flowbus.settings import FlowbusSettings


def base_config(settings: FlowbusSettings) -> dict[str, Any]:
    """Broker address and the user's librdkafka properties; raises if no broker is set."""
    bootstrap = settings.kafka_bootstrap_servers or settings.kafka_config.get("bootstrap.servers")
    if not bootstrap:
        raise ConfigurationError("no broker configured: set KAFKA_BOOTSTRAP_SERVERS")
    return {
        "bootstrap.servers": bootstrap,
        "client.id": f"flowbus-{settings.service_name}-ops",
        **settings.kafka_config,
        # Asking for a topic's metadata must never create it (brokers default to
        # auto.create.topics.enable=true, and producer-type clients to asking for it).
        "allow.auto.create.topics": False,
        **BrokerLog().client_config(),
    }


def reader_config(settings: FlowbusSettings) -> dict[str, Any]:
    """A consumer that only reads assigned partitions and never commits.

    librdkafka wants a group id even for manual assignment; a fresh one is used so no
    real group is touched, and with no commits and no subscription it never joins.
    """
    return {
        **base_config(settings),
        "group.id": f"flowbus-ops-reader-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
    }


def republisher_config(settings: FlowbusSettings) -> dict[str, Any]:
    """Idempotent, acknowledged by all in-sync replicas (the user's properties may override)."""
    return {"enable.idempotence": True, "acks": "all", "linger.ms": 0, **base_config(settings)}


def topic_partitions(
    client: Any, topic: str, timeout: float, error: type[FlowbusError], config: Mapping[str, Any]
) -> list[int]:
    """The partitions of ``topic`` by asking ``client`` (a consumer, producer or admin) built
    from ``config``.

    Raises :class:`~flowbus.errors.BrokerUnreachableError` (naming KAFKA_BOOTSTRAP_SERVERS)
    when the broker does not answer within ``PROBE_TIMEOUT_S`` (or ``timeout``, if shorter),
    :class:`TopicNotFoundError` when the topic does not exist, and ``error`` when the
    metadata is unusable.
    """
    probe_broker(client, config, timeout=min(timeout, PROBE_TIMEOUT_S))
    try:
        metadata = client.list_topics(topic, timeout=timeout)
    except KafkaException as exc:  # it answered the probe, then stopped answering
        raise error(
            f"cannot read metadata of '{topic}' within {timeout:.0f}s ({kafka_error_text(exc)})"
        ) from exc
    found = metadata.topics.get(topic)
    if found is None or (
        found.error is not None and found.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    ):
        raise TopicNotFoundError(topic)
    if found.error is not None:
        raise error(f"cannot read metadata of '{topic}': {found.error}")
    return sorted(found.partitions)
