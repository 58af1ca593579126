"""The pipes: a real broker and a real registry with confluent-kafka's own Avro serdes."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

# Name the subject strategy: the default asks the registry for topic associations,
# an endpoint Apicurio may leave unanswered.
_BY_TOPIC = {"subject.name.strategy": topic_subject_name_strategy}

SCHEMA = """{
  "type": "record", "name": "Ping", "namespace": "org.flowbus.test",
  "fields": [{"name": "id", "type": "string"}, {"name": "count", "type": "long"}]
}"""


def test_avro_record_through_real_broker_and_registry(kafka_stack, unique_topic, unique_group):
    topic = unique_topic(partitions=3)
    admin = AdminClient({"bootstrap.servers": kafka_stack.bootstrap_servers})
    assert len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == 3

    registry = SchemaRegistryClient({"url": kafka_stack.schema_registry_url})
    serializer = AvroSerializer(registry, SCHEMA)
    deserializer = AvroDeserializer(registry, conf=_BY_TOPIC)
    record = {"id": str(uuid.uuid4()), "count": 0}
    value = serializer(record, SerializationContext(topic, MessageField.VALUE))
    assert value[0] == 0  # Confluent wire format: magic byte, then the schema id

    producer = Producer({"bootstrap.servers": kafka_stack.bootstrap_servers})
    producer.produce(topic, key=record["id"], value=value)
    assert producer.flush(30) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_stack.bootstrap_servers,
            "group.id": unique_group,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    try:
        message = None
        for _ in range(60):
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                break
        assert message is not None and message.error() is None
    finally:
        consumer.close()

    assert message.key() == record["id"].encode()
    decoded = deserializer(message.value(), SerializationContext(topic, MessageField.VALUE))
    assert decoded == record
    subject = f"{topic}-value"
    assert subject in registry.get_subjects()
    schema_id = int.from_bytes(value[1:5], "big")
    assert registry.get_latest_version(subject).schema_id == schema_id
