"""Kafka client configurations for the operator commands (``reset-offsets``, ``dlq``).

Built on :func:`~flowbus.broker.operator_client_config` (the broker address, the user's
librdkafka properties, never creating a topic, one log line for an unreachable broker),
then what the command needs.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from flowbus.broker import (
    PROBE_TIMEOUT_S,
    kafka_error_text,
    operator_client_config,
    probe_broker,
)
from flowbus.errors import FlowbusError, TopicNotFoundError
from flowbus.settings import FlowbusSettings


def reader_config(settings: FlowbusSettings) -> dict[str, Any]:
    """A consumer that only reads assigned partitions and never commits.

    librdkafka wants a group id even for manual assignment; a fresh one is used so no
    real group is touched, and with no commits and no subscription it never joins.
    """
    return {
        **operator_client_config(settings),
        "group.id": f"flowbus-ops-reader-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
    }


def republisher_config(settings: FlowbusSettings) -> dict[str, Any]:
    """Idempotent, acknowledged by all in-sync replicas (the user's properties may override)."""
    return {
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 0,
        **operator_client_config(settings),
    }


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
