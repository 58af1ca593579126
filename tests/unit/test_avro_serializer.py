"""EventSerializer / EventDeserializer without a registry (single-object encoding) and with a
fake registry client; one test per typed decode error."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import RegisteredSchema, Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError as ClientError
from pydantic import BaseModel, Field, create_model

import flowbus.catalog  # noqa: F401  (defines the catalog's signals)
from flowbus.avro.framing import confluent_header
from flowbus.avro.registry import SchemaRegistry
from flowbus.avro.schema_dir import SchemaDirectory, default_schemas_dir
from flowbus.avro.serializer import EventDeserializer, EventSerializer, codec_for
from flowbus.errors import (
    DecodeError,
    SchemaMismatchError,
    SchemaRegistryError,
    TruncatedDataError,
    UnknownSchemaError,
    WrongMagicByteError,
)
from flowbus.signals import WorkflowSignal

EVENT_TYPE = "org.flowbus.test.evolution.changed.v1"


class FakeSignal:
    """The part of a WorkflowSignal the Avro layer uses; lets v1 and v2 of one event type
    exist side by side, as they do in two deployments."""

    def __init__(self, event_type: str, data: Mapping[str, Any]) -> None:
        self.event_type = event_type
        self.data = data
        self.doc = None


def item_v1() -> type[BaseModel]:
    return create_model("Item", __module__="evolution.models", id=(str, ...), size=(int, 0))


def item_v2() -> type[BaseModel]:
    return create_model(
        "Item",
        __module__="evolution.models",
        id=(str, ...),
        size=(int, 0),
        label=(str | None, None),
        tags=(list[str], Field(default_factory=list)),
    )


@pytest.fixture
def versions(tmp_path: Path) -> tuple[FakeSignal, FakeSignal, SchemaDirectory]:
    v1 = FakeSignal(EVENT_TYPE, {"item": item_v1()})
    v2 = FakeSignal(EVENT_TYPE, {"item": item_v2()})
    schema_dir = SchemaDirectory(tmp_path)
    schema_dir.generate([v1])
    schema_dir.generate([v2])
    assert [e.version for e in schema_dir.versions(EVENT_TYPE)] == [1, 2]
    return v1, v2, schema_dir


def post_complete_data(signal: WorkflowSignal) -> dict[str, Any]:
    now = datetime.now(UTC)
    return signal.validate_data(
        work_item={
            "id": uuid.uuid4(),
            "case_id": uuid.uuid4(),
            "task_slug": "review",
            "status": "ready",
            "created_at": now,
            "modified_at": now,
            "meta": {},
        },
        user={"username": "", "groups": []},
        context={"count": 0, "flag": False},
    )


def test_catalog_signal_round_trip_in_single_object_encoding() -> None:
    signal = WorkflowSignal.get_signal_by_type("org.flowbus.caluma.work_item.post_complete.v1")
    data = post_complete_data(signal)
    serialized = EventSerializer().serialize(signal, data, "events")
    assert serialized.value[:2] == b"\xc3\x01"
    assert serialized.dataschema == f"schemas/{signal.event_type}/2.avsc"
    decoded = EventDeserializer().deserialize(signal, serialized.value, "events")
    assert decoded == data
    assert signal.validate_data(**decoded) == data


def test_old_writer_new_reader_single_object(
    versions: tuple[FakeSignal, FakeSignal, SchemaDirectory],
) -> None:
    v1, v2, schema_dir = versions
    value = EventSerializer(schema_dir=schema_dir).serialize(
        v1, {"item": v1.data["item"](id="a")}, "t"
    )
    assert value.dataschema == f"schemas/{EVENT_TYPE}/1.avsc"
    decoded = EventDeserializer(schema_dir=schema_dir).deserialize(v2, value.value, "t")
    assert decoded == {"item": v2.data["item"](id="a", size=0, label=None, tags=[])}


def test_new_writer_old_reader_single_object(
    versions: tuple[FakeSignal, FakeSignal, SchemaDirectory],
) -> None:
    v1, v2, schema_dir = versions
    sent = {"item": v2.data["item"](id="b", size=3, label="x", tags=["t"])}
    value = EventSerializer(schema_dir=schema_dir).serialize(v2, sent, "t")
    assert value.dataschema == f"schemas/{EVENT_TYPE}/2.avsc"
    decoded = EventDeserializer(schema_dir=schema_dir).deserialize(v1, value.value, "t")
    assert decoded == {"item": v1.data["item"](id="b", size=3)}


def test_unreleased_schema_is_named_by_fingerprint(tmp_path: Path) -> None:
    signal = FakeSignal(EVENT_TYPE, {"n": int})
    serialized = EventSerializer(schema_dir=SchemaDirectory(tmp_path)).serialize(
        signal, {"n": 1}, "t"
    )
    assert serialized.dataschema.startswith(f"schemas/{EVENT_TYPE}/unreleased-")
    # The code that wrote it can read it back without the schema directory.
    decoded = EventDeserializer(schema_dir=SchemaDirectory(tmp_path)).deserialize(
        signal, serialized.value, "t"
    )
    assert decoded == {"n": 1}


def test_default_schema_dir_is_the_repository_schemas_dir() -> None:
    assert default_schemas_dir() == Path(__file__).parents[2] / "schemas"


# -- typed decode errors ------------------------------------------------------------------------


def test_error_truncated_data() -> None:
    signal = FakeSignal(EVENT_TYPE, {"s": str, "n": int})
    value = EventSerializer().serialize(signal, {"s": "hello", "n": 5}, "t").value
    deserializer = EventDeserializer()
    with pytest.raises(TruncatedDataError) as in_body:
        deserializer.deserialize(signal, value[:-2], "t")
    with pytest.raises(TruncatedDataError) as in_header:
        deserializer.deserialize(signal, value[:5], "t")
    assert in_body.value.reason and in_header.value.reason


def test_error_wrong_magic_byte() -> None:
    signal = FakeSignal(EVENT_TYPE, {"n": int})
    with pytest.raises(WrongMagicByteError) as caught:
        EventDeserializer().deserialize(signal, b'{"n": 1}', "t")
    assert caught.value.prefix == b'{"'


def test_error_unknown_fingerprint(
    versions: tuple[FakeSignal, FakeSignal, SchemaDirectory],
) -> None:
    v1, v2, schema_dir = versions
    value = EventSerializer(schema_dir=schema_dir).serialize(
        v2, {"item": v2.data["item"](id="c")}, "t"
    )
    empty_schema_dir = SchemaDirectory(schema_dir.directory / "nothing-here")
    with pytest.raises(UnknownSchemaError) as caught:
        EventDeserializer(schema_dir=empty_schema_dir).deserialize(v1, value.value, "t")
    assert caught.value.fingerprint == value.value[2:10]
    assert caught.value.schema_id is None


def test_error_unknown_schema_id_without_registry() -> None:
    signal = FakeSignal(EVENT_TYPE, {"n": int})
    with pytest.raises(UnknownSchemaError) as caught:
        EventDeserializer().deserialize(signal, confluent_header(12) + b"\x02", "t")
    assert caught.value.schema_id == 12


def test_error_body_not_matching_its_schema() -> None:
    signal = FakeSignal(EVENT_TYPE, {"n": int})
    header = EventSerializer().serialize(signal, {"n": 1}, "t").value[:10]
    with pytest.raises(SchemaMismatchError) as caught:
        EventDeserializer().deserialize(signal, header + b"\x02\x02\x02", "t")
    assert "left over" in caught.value.reason


def test_error_writer_that_is_another_event_type(tmp_path: Path) -> None:
    other = FakeSignal("org.flowbus.test.other.thing.v1", {"n": int})
    schema_dir = SchemaDirectory(tmp_path)
    schema_dir.generate([other])
    value = EventSerializer(schema_dir=schema_dir).serialize(other, {"n": 1}, "t").value
    reader = FakeSignal(EVENT_TYPE, {"n": int})
    with pytest.raises(SchemaMismatchError):
        EventDeserializer(schema_dir=schema_dir).deserialize(reader, value, "t")


def test_every_decode_error_is_a_decode_error() -> None:
    for error in (TruncatedDataError, WrongMagicByteError, UnknownSchemaError, SchemaMismatchError):
        assert issubclass(error, DecodeError)


# -- registry framing with a fake client ------------------------------------------------------


class FakeRegistryClient:
    """Answers like a registry until ``down`` is set; counts the calls."""

    def __init__(self) -> None:
        self.schemas: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}
        self.calls = 0
        self.down = False

    def _call(self) -> None:
        self.calls += 1
        if self.down:
            raise ConnectionError("registry down")

    def register_schema(self, subject: str, schema: Schema) -> int:
        self._call()
        known = {json.dumps(json.loads(text)): key for key, text in self.schemas.items()}
        schema_id = known.get(json.dumps(json.loads(schema.schema_str or "")))
        if schema_id is None:
            schema_id = len(self.schemas) + 1
            self.schemas[schema_id] = schema.schema_str or ""
        versions = self.subjects.setdefault(subject, [])
        if schema_id not in versions:
            versions.append(schema_id)
        return schema_id

    def lookup_schema(self, subject: str, schema: Schema) -> RegisteredSchema:
        self._call()
        for version, schema_id in enumerate(self.subjects.get(subject, []), start=1):
            if json.loads(self.schemas[schema_id]) == json.loads(schema.schema_str or ""):
                return RegisteredSchema(subject, version, schema_id, None, schema)
        raise ClientError(404, 40403, "not found")

    def get_schema(self, schema_id: int) -> Schema:
        self._call()
        if schema_id not in self.schemas:
            raise ClientError(404, 40403, "not found")
        return Schema(self.schemas[schema_id], "AVRO")


def registry_pair(
    client: FakeRegistryClient, *, auto_register: bool
) -> tuple[EventSerializer, EventDeserializer]:
    serializer = EventSerializer(
        registry_url="http://registry.invalid", auto_register=auto_register
    )
    deserializer = EventDeserializer(registry_url="http://registry.invalid")
    serializer.registry = SchemaRegistry("http://registry.invalid", client=client)
    deserializer.registry = SchemaRegistry("http://registry.invalid", client=client)
    return serializer, deserializer


def test_registry_framing_with_auto_registration() -> None:
    client = FakeRegistryClient()
    serializer, deserializer = registry_pair(client, auto_register=True)
    signal = FakeSignal(EVENT_TYPE, {"n": int})
    serialized = serializer.serialize(signal, {"n": 0}, "orders")
    assert serialized.value[:5] == confluent_header(1)
    assert serialized.dataschema == f"orders-{EVENT_TYPE}/1"
    assert client.subjects == {f"orders-{EVENT_TYPE}": [1]}
    assert deserializer.deserialize(signal, serialized.value, "orders") == {"n": 0}


def test_without_auto_registration_an_unregistered_schema_fails() -> None:
    serializer, _ = registry_pair(FakeRegistryClient(), auto_register=False)
    with pytest.raises(SchemaRegistryError, match="flowbus schemas register"):
        serializer.serialize(FakeSignal(EVENT_TYPE, {"n": int}), {"n": 1}, "orders")


def test_known_ids_keep_working_while_the_registry_is_down() -> None:
    client = FakeRegistryClient()
    serializer, deserializer = registry_pair(client, auto_register=True)
    signal = FakeSignal(EVENT_TYPE, {"n": int})
    first = serializer.serialize(signal, {"n": 1}, "orders")
    deserializer.deserialize(signal, first.value, "orders")
    client.down = True
    calls = client.calls
    again = serializer.serialize(signal, {"n": 2}, "orders")
    assert deserializer.deserialize(signal, again.value, "orders") == {"n": 2}
    assert client.calls == calls
    with pytest.raises(SchemaRegistryError, match="registry down"):
        serializer.serialize(signal, {"n": 3}, "another-topic")
    with pytest.raises(SchemaRegistryError):
        deserializer.deserialize(signal, confluent_header(99) + b"\x02", "orders")


def test_error_unknown_schema_id() -> None:
    _, deserializer = registry_pair(FakeRegistryClient(), auto_register=True)
    with pytest.raises(UnknownSchemaError) as caught:
        deserializer.deserialize(FakeSignal(EVENT_TYPE, {"n": int}), confluent_header(5), "t")
    assert caught.value.schema_id == 5


# --- body and frame apart (the transactional outbox) -------------------------------------


def test_body_then_frame_is_serialize_in_either_framing() -> None:
    signal = FakeSignal(EVENT_TYPE, {"n": int})
    client = FakeRegistryClient()
    registry_serializer, _ = registry_pair(client, auto_register=True)
    for serializer in (EventSerializer(), registry_serializer):
        body = serializer.encode_body(signal, {"n": 5})
        framed = serializer.frame(EVENT_TYPE, codec_for(signal).schema, "orders", body)
        assert framed == serializer.serialize(signal, {"n": 5}, "orders")


def test_frame_body_frames_the_prepared_body_as_serialize_would() -> None:
    signal = FakeSignal(EVENT_TYPE, {"n": int})
    registry_serializer, _ = registry_pair(FakeRegistryClient(), auto_register=True)
    for serializer in (EventSerializer(), registry_serializer):
        body = serializer.encode_body(signal, {"n": 5})
        # The writer schema is the signal's own: the body is framed, the data not read.
        framed = serializer.frame_body(signal, body, {}, "orders")
        assert framed == serializer.serialize(signal, {"n": 5}, "orders")


def test_encoding_a_body_needs_no_registry() -> None:
    client = FakeRegistryClient()
    client.down = True
    serializer, deserializer = registry_pair(client, auto_register=True)
    signal = FakeSignal(EVENT_TYPE, {"n": int})
    body = serializer.encode_body(signal, {"n": 7})
    assert client.calls == 0
    with pytest.raises(SchemaRegistryError):
        serializer.frame(EVENT_TYPE, codec_for(signal).schema, "orders", body)
    client.down = False  # the registry is back: the same body is framed and decodes
    framed = serializer.frame(EVENT_TYPE, codec_for(signal).schema, "orders", body)
    assert deserializer.deserialize(signal, framed.value, "orders") == {"n": 7}
