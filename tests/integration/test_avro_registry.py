"""Avro with a real Confluent-API schema registry: evolution, interop with confluent-kafka's
own Avro serializers, cached ids, typed errors, ``flowbus schemas register``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka.schema_registry import (
    SchemaRegistryClient,
    topic_record_subject_name_strategy,
    topic_subject_name_strategy,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from pydantic import BaseModel, Field, JsonValue, create_model

from flowbus.avro import schema_from_signal
from flowbus.avro.codec import parse_schema
from flowbus.avro.compat import CompatibilityMode
from flowbus.avro.registry import SchemaRegistry, subject_name
from flowbus.avro.schema import derive_record_schema
from flowbus.avro.schema_dir import SchemaDirectory, format_schema
from flowbus.avro.serializer import EventDeserializer, EventSerializer
from flowbus.errors import SchemaRegistryError, UnknownSchemaError
from flowbus.schemas_cli import schemas
from flowbus.settings import get_settings

# Name the subject strategy: the default asks the registry for topic associations,
# an endpoint Apicurio may leave unanswered.
_BY_TOPIC = {"subject.name.strategy": topic_subject_name_strategy}

pytestmark = pytest.mark.integration

EVENT_TYPE = "org.flowbus.test.registry.evolved.v1"


class FakeSignal:
    """v1 and v2 of one event type side by side, as in two deployments."""

    def __init__(self, event_type: str, data: Mapping[str, Any]) -> None:
        self.event_type = event_type
        self.data = data
        self.doc = None


def item_v1() -> type[BaseModel]:
    return create_model("Item", __module__="registry.models", id=(str, ...), size=(int, 0))


def item_v2() -> type[BaseModel]:
    return create_model(
        "Item",
        __module__="registry.models",
        id=(str, ...),
        size=(int, 0),
        label=(str | None, None),
        tags=(list[str], Field(default_factory=list)),
    )


@pytest.fixture
def topic() -> str:
    # Subjects are <topic>-<event type>; the registry cannot delete, so every test gets its own.
    return f"avro-registry-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def url(kafka_stack: Any) -> str:
    return str(kafka_stack.schema_registry_url)


def test_evolution_through_the_registry_both_directions(url: str, topic: str) -> None:
    v1 = FakeSignal(EVENT_TYPE, {"item": item_v1(), "n": int})
    v2 = FakeSignal(EVENT_TYPE, {"item": item_v2(), "n": int})
    SchemaRegistry(url).set_compatibility(
        subject_name(topic, EVENT_TYPE), CompatibilityMode.FULL_TRANSITIVE
    )
    old_bytes = EventSerializer(registry_url=url, auto_register=True).serialize(
        v1, {"item": v1.data["item"](id="a", size=1), "n": 0}, topic
    )
    new_bytes = EventSerializer(registry_url=url, auto_register=True).serialize(
        v2, {"item": v2.data["item"](id="b", size=2, label="x", tags=["t"]), "n": 5}, topic
    )
    assert old_bytes.dataschema == f"{topic}-{EVENT_TYPE}/1"
    assert new_bytes.dataschema == f"{topic}-{EVENT_TYPE}/2"
    assert old_bytes.value[0] == 0 and new_bytes.value[0] == 0

    new_reader = EventDeserializer(registry_url=url)
    assert new_reader.deserialize(v2, old_bytes.value, topic) == {
        "item": v2.data["item"](id="a", size=1, label=None, tags=[]),
        "n": 0,
    }
    old_reader = EventDeserializer(registry_url=url)
    assert old_reader.deserialize(v1, new_bytes.value, topic) == {
        "item": v1.data["item"](id="b", size=2),
        "n": 5,
    }


def test_registry_rejects_an_incompatible_version(url: str, topic: str) -> None:
    v1 = FakeSignal(EVENT_TYPE, {"n": int})
    broken = FakeSignal(EVENT_TYPE, {"n": str, "required": str})
    SchemaRegistry(url).set_compatibility(
        subject_name(topic, EVENT_TYPE), CompatibilityMode.FULL_TRANSITIVE
    )
    EventSerializer(registry_url=url, auto_register=True).serialize(v1, {"n": 1}, topic)
    with pytest.raises(SchemaRegistryError) as caught:
        EventSerializer(registry_url=url, auto_register=True).serialize(
            broken, {"n": "x", "required": "y"}, topic
        )
    assert caught.value.subject == subject_name(topic, EVENT_TYPE)


def test_use_latest_version_writes_with_the_latest_registered_schema(url: str, topic: str) -> None:
    v1 = FakeSignal(EVENT_TYPE, {"item": item_v1()})
    v2 = FakeSignal(EVENT_TYPE, {"item": item_v2()})
    registered_v2 = EventSerializer(registry_url=url, auto_register=True).serialize(
        v2, {"item": v2.data["item"](id="x")}, topic
    )
    latest = EventSerializer(registry_url=url, use_latest_version=True).serialize(
        v1, {"item": v1.data["item"](id="y", size=3)}, topic
    )
    assert latest.value[:5] == registered_v2.value[:5]  # same schema id: v2's
    assert latest.dataschema == registered_v2.dataschema
    decoded = EventDeserializer(registry_url=url).deserialize(v2, latest.value, topic)
    assert decoded == {"item": v2.data["item"](id="y", size=3, label=None, tags=[])}


def test_without_auto_registration_schemas_must_be_registered(url: str, topic: str) -> None:
    signal = FakeSignal(EVENT_TYPE, {"n": int})
    serializer = EventSerializer(registry_url=url, auto_register=False)
    with pytest.raises(SchemaRegistryError, match="not registered"):
        serializer.serialize(signal, {"n": 1}, topic)
    SchemaRegistry(url).register(
        subject_name(topic, EVENT_TYPE), parse_schema(schema_from_signal(signal))
    )
    serialized = EventSerializer(registry_url=url, auto_register=False).serialize(
        signal, {"n": 1}, topic
    )
    assert serialized.dataschema == f"{topic}-{EVENT_TYPE}/1"


# -- interop with confluent-kafka's own Avro serializers ---------------------------------------


class Address(BaseModel):
    street: str
    zip: str | None = None


INTEROP_DATA: dict[str, Any] = {"address": Address, "count": int, "extra": JsonValue}


def test_flowbus_bytes_decode_with_confluent_avro_deserializer(url: str, topic: str) -> None:
    signal = FakeSignal("org.flowbus.test.interop.out.v1", INTEROP_DATA)
    sent = {"address": Address(street="Main 1"), "count": 0, "extra": {"k": [1]}}
    value = EventSerializer(registry_url=url, auto_register=True).serialize(signal, sent, topic)
    confluent = AvroDeserializer(SchemaRegistryClient({"url": url}), conf=_BY_TOPIC)
    decoded = confluent(value.value, SerializationContext(topic, MessageField.VALUE))
    assert decoded == {
        "address": {"street": "Main 1", "zip": None},
        "count": 0,
        "extra": '{"k":[1]}',
    }


def test_confluent_avro_serializer_bytes_decode_with_flowbus(url: str, topic: str) -> None:
    signal = FakeSignal("org.flowbus.test.interop.in.v1", INTEROP_DATA)
    confluent = AvroSerializer(
        SchemaRegistryClient({"url": url}),
        json.dumps(schema_from_signal(signal)),
        conf={
            "auto.register.schemas": True,
            "subject.name.strategy": topic_record_subject_name_strategy,
        },
    )
    datum = {"address": {"street": "Elm 2", "zip": "8000"}, "count": 7, "extra": "[true]"}
    value = confluent(datum, SerializationContext(topic, MessageField.VALUE))
    decoded = EventDeserializer(registry_url=url).deserialize(signal, value, topic)
    assert decoded == {"address": Address(street="Elm 2", zip="8000"), "count": 7, "extra": [True]}
    assert SchemaRegistryClient({"url": url}).get_latest_version(
        f"{topic}-org.flowbus.test.interop.in.v1"
    )


# -- ids and errors ------------------------------------------------------------------------------


def test_known_ids_keep_working_while_the_registry_is_down(url: str, topic: str) -> None:
    signal = FakeSignal(EVENT_TYPE, {"n": int})
    serializer = EventSerializer(registry_url=url, auto_register=True)
    deserializer = EventDeserializer(registry_url=url)
    first = serializer.serialize(signal, {"n": 1}, topic)
    deserializer.deserialize(signal, first.value, topic)
    unreachable = SchemaRegistryClient({"url": "http://127.0.0.1:9", "max.retries": 0})
    assert serializer.registry is not None and deserializer.registry is not None
    serializer.registry._client = unreachable
    deserializer.registry._client = unreachable
    again = serializer.serialize(signal, {"n": 2}, topic)
    assert deserializer.deserialize(signal, again.value, topic) == {"n": 2}
    with pytest.raises(SchemaRegistryError):
        serializer.serialize(signal, {"n": 3}, f"{topic}-other")


def test_unknown_schema_id(url: str, topic: str) -> None:
    signal = FakeSignal(EVENT_TYPE, {"n": int})
    unknown = 2**31 - 7
    with pytest.raises(UnknownSchemaError) as caught:
        EventDeserializer(registry_url=url).deserialize(
            signal, b"\x00" + unknown.to_bytes(4, "big") + b"\x02", topic
        )
    assert caught.value.schema_id == unknown


# -- flowbus schemas register ---------------------------------------------------------------------


def test_schemas_register_reports_the_registry_verdict(
    url: str, topic: str, tmp_path: Path
) -> None:
    schema_dir = SchemaDirectory(tmp_path)
    schema_dir.generate([FakeSignal(EVENT_TYPE, {"n": int})])
    schema_dir.generate([FakeSignal(EVENT_TYPE, {"n": int, "note": str | None})])
    args = ["register", "--dir", str(tmp_path), "--topic", topic, "--registry-url", url]
    result = CliRunner().invoke(schemas, args)
    assert result.exit_code == 0, result.output
    subject = subject_name(topic, EVENT_TYPE)
    assert f"{subject}: ok (FULL_TRANSITIVE)" in result.output
    client = SchemaRegistryClient({"url": url})
    assert client.get_compatibility(subject) == "FULL_TRANSITIVE"
    assert client.get_latest_version(subject).version == 2
    # Registering again changes nothing.
    assert CliRunner().invoke(schemas, args).exit_code == 0
    assert client.get_latest_version(subject).version == 2

    broken = derive_record_schema(EVENT_TYPE, {"n": str})
    (tmp_path / EVENT_TYPE / "3.avsc").write_text(format_schema(broken))
    rejected = CliRunner().invoke(schemas, args)
    assert rejected.exit_code == 1
    assert f"{subject}: REJECTED (FULL_TRANSITIVE)" in rejected.output
    assert client.get_latest_version(subject).version == 2


def test_schemas_register_applies_the_topic_prefix_and_sums_up_what_it_skipped(
    url: str, topic: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema_dir = SchemaDirectory(tmp_path)
    routed, others = EVENT_TYPE, [f"{EVENT_TYPE}.other{i}" for i in range(4)]
    for event_type in (routed, *others):
        schema_dir.generate([FakeSignal(event_type, {"n": int})])
    monkeypatch.setenv("FLOWBUS_TOPIC_PREFIX", "staging.")
    monkeypatch.setenv("FLOWBUS_PRODUCER_CONFIG", json.dumps({routed: [{"topic": topic}]}))
    get_settings.cache_clear()
    try:
        args = ["register", "--dir", str(tmp_path), "--registry-url", url]
        routes = CliRunner().invoke(schemas, args)
        given = CliRunner().invoke(schemas, [*args, "--topic", topic])
    finally:
        get_settings.cache_clear()
    assert routes.exit_code == 0, routes.output
    lines = routes.output.splitlines()
    assert lines[0].startswith(f"{subject_name('staging.' + topic, routed)}: ok")
    assert lines[1:] == [
        "skipped 4 event type(s) without a topic (pass --topic or route them in "
        f"FLOWBUS_PRODUCER_CONFIG): {', '.join(sorted(others)[:3])} and 1 more"
    ]
    assert given.exit_code == 0, given.output
    assert f"{subject_name('staging.' + topic, others[0])}: ok" in given.output
    assert "skipped" not in given.output


def test_schemas_register_json_reports_each_subject_and_what_it_skipped(
    url: str, topic: str, tmp_path: Path
) -> None:
    schema_dir = SchemaDirectory(tmp_path)
    schema_dir.generate([FakeSignal(EVENT_TYPE, {"n": int})])
    args = ["register", "--dir", str(tmp_path), "--topic", topic, "--registry-url", url]
    result = CliRunner().invoke(schemas, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    [subject] = report["subjects"]
    assert subject["subject"] == subject_name(topic, EVENT_TYPE) and subject["ok"] is True
    assert [v["version"] for v in subject["versions"]] == [1]
    assert subject["versions"][0]["schema_id"] > 0 and subject["error"] is None
    assert report["skipped"] == []
