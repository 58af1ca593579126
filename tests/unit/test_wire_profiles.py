"""Wire profiles: the openedx profile's schema, datetimes, headers and refusals; one
deserializer reading both profiles; Open edX signals as flowbus signals."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

import attr
import fastavro
import pytest
from pydantic import BaseModel, Field, JsonValue

from flowbus import cloudevents
from flowbus.avro import schema_from_signal, signal_schemas
from flowbus.avro.serializer import EventDeserializer, EventSerializer, codec_for
from flowbus.errors import ConfigurationError, UnsupportedDataTypeError
from flowbus.openedx import signal_from_openedx
from flowbus.producer.forwarding import parse_forwarding_config
from flowbus.signals import WorkflowSignal
from flowbus.wire import FLOWBUS, OPENEDX, get_profile


def unique_type(prefix: str = "com.acme") -> str:
    return f"{prefix}.billing.x{uuid.uuid4().hex[:8]}.paid.v1"


class Payer(BaseModel):
    name: str
    since: datetime
    nickname: str | None = None
    tags: list[str] = []


def test_openedx_schema_is_schema_from_signal_layout() -> None:
    event_type = unique_type()
    signal = WorkflowSignal(event_type, {"payer": Payer, "cents": int}, wire="openedx")
    schema = codec_for(signal, OPENEDX).schema.schema
    assert schema["name"] == f"{event_type}.CloudEvent"
    payer = schema["fields"][0]["type"]
    assert payer["name"] == f"{event_type}.Payer"  # the class name in the event's namespace
    assert [f["type"] for f in payer["fields"]] == [
        "string",
        "string",  # datetimes are ISO strings
        ["null", "string"],
        {"type": "array", "items": "string"},
    ]
    # The flowbus profile of the same signal is untouched: the schema directory keeps its schema.
    assert codec_for(signal).schema.schema["name"] == event_type
    assert schema_from_signal(signal) == codec_for(signal).schema.schema


def test_each_profile_analyses_the_data_once(monkeypatch: pytest.MonkeyPatch) -> None:
    analysed: list[str] = []
    analyze_data = signal_schemas.analyze_data

    def counting(event_type: str, data: Any, **kwargs: Any) -> Any:
        analysed.append(kwargs["naming"].name)
        return analyze_data(event_type, data, **kwargs)

    monkeypatch.setattr(signal_schemas, "analyze_data", counting)
    signal = WorkflowSignal(unique_type(), {"payer": Payer, "cents": int}, wire="openedx")
    assert analysed == ["flowbus", "openedx"]  # the definition checks both profiles
    codec_for(signal)
    codec_for(signal, OPENEDX)
    schema_from_signal(signal)
    schema_from_signal(signal, OPENEDX)
    assert analysed == ["flowbus", "openedx"]


def test_openedx_datetimes_are_iso_text_read_back_aware_utc() -> None:
    signal = WorkflowSignal(unique_type(), {"payer": Payer, "cents": int}, wire="openedx")
    codec = codec_for(signal, OPENEDX)
    since = datetime(2025, 3, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    data = signal.validate_data(payer=Payer(name="a", since=since), cents=0)
    body = codec.encode(data)
    reference = io.BytesIO()
    fastavro.schemaless_writer(reference, codec.schema.parsed, codec.to_datum(data))
    assert body == reference.getvalue()  # generated encoder == reference path
    assert b"2025-03-01T12:30:15.123456+02:00" in body
    decoded = codec.decode(body)
    assert decoded["payer"].since == since
    assert decoded["payer"].since.tzinfo is UTC
    # Open edX may write naive datetimes (isoformat() of a naive value): read as UTC.
    naive = io.BytesIO()
    datum = {"payer": {"name": "a", "since": "2025-03-01T12:30:15", "nickname": None, "tags": []}}
    fastavro.schemaless_writer(naive, codec.schema.parsed, {**datum, "cents": 1})
    assert codec.decode(naive.getvalue())["payer"].since == datetime(
        2025, 3, 1, 12, 30, 15, tzinfo=UTC
    )


class Colour(StrEnum):
    RED = "red"


class Other(BaseModel):
    x: int


class WithRequiredOptional(BaseModel):
    x: str | None = "set"


@pytest.mark.parametrize(
    ("tp", "reason"),
    [
        (Colour, "enums have no Open edX type"),
        (Annotated[Decimal, Field(max_digits=5, decimal_places=2)], "Decimal"),
        (date, "date has no Open edX type"),
        (uuid.UUID, "declare it str"),
        (JsonValue, "JsonValue"),
        (str | None, "cannot be None in Open edX"),
        (list[Other], "lists and dicts hold only"),
        (dict[str, list[str]], "lists and dicts hold only"),
        (Payer | Other, "unions of models"),
        (WithRequiredOptional, "needs the default None"),
    ],
)
def test_openedx_refuses_what_open_edx_cannot_carry(tp: Any, reason: str) -> None:
    with pytest.raises(UnsupportedDataTypeError, match="openedx wire profile") as raised:
        WorkflowSignal(unique_type(), {"value": tp}, wire="openedx")
    assert reason in raised.value.reason
    assert raised.value.field.startswith("value")
    WorkflowSignal(unique_type(), {"value": tp})  # the flowbus profile carries it


def test_unknown_wire_profile_is_a_definition_error() -> None:
    with pytest.raises(Exception, match="unknown wire profile 'kafka'"):
        WorkflowSignal(unique_type(), {"x": int}, wire="kafka")
    with pytest.raises(ConfigurationError, match="profiles: flowbus, openedx"):
        get_profile("kafka")


def test_route_wire_is_checked_against_the_data() -> None:
    event_type = unique_type()
    WorkflowSignal(event_type, {"colour": Colour})
    with pytest.raises(ConfigurationError, match=r"\[0\]: wire 'openedx': .*enums"):
        parse_forwarding_config({event_type: [{"topic": "t", "wire": "openedx"}]})
    (route,) = parse_forwarding_config({event_type: [{"topic": "t"}]})[event_type]
    assert route.wire is None


def test_one_deserializer_reads_both_profiles(tmp_path: Any) -> None:
    signal = WorkflowSignal(unique_type(), {"payer": Payer, "cents": int}, wire="openedx")
    data = signal.validate_data(payer=Payer(name="b", since=datetime.now(UTC)), cents=7)
    serializer = EventSerializer(schema_dir=None)
    deserializer = EventDeserializer()
    for profile in (FLOWBUS, OPENEDX):
        value = serializer.serialize(signal, data, "topic", profile).value
        assert deserializer.deserialize(signal, value, "topic") == data


def test_openedx_headers_as_edx_event_bus_kafka_writes_them() -> None:
    signal = WorkflowSignal(unique_type(), {"x": int})
    metadata = signal.generate_signal_metadata()
    headers = dict(cloudevents.to_headers(metadata, openedx=True))
    assert headers["sourcehost"] == metadata.sourcehost.encode()
    assert headers["sourcelib"] == ".".join(map(str, metadata.sourcelib)).encode()
    assert "ce_sourcehost" not in headers and "ce_sourcelib" not in headers
    assert headers["ce_datacontenttype"] == b"application/avro"
    assert headers["ce_time"].endswith(b"+00:00")
    assert cloudevents.from_headers(list(headers.items())).metadata == metadata
    flowbus_headers = dict(cloudevents.to_headers(metadata))
    assert flowbus_headers["ce_time"].endswith(b"Z") and "sourcehost" not in flowbus_headers


def test_openedx_keys_need_a_registry() -> None:
    with pytest.raises(ConfigurationError, match="SCHEMA_REGISTRY_URL"):
        EventSerializer().frame_key("topic", "key", OPENEDX)


@attr.s(frozen=True)
class CourseData:
    """A course, as openedx-events declares it."""

    course_key = attr.ib(type=str)
    display_name = attr.ib(type=str)
    start = attr.ib(type=datetime, default=None)


@attr.s(frozen=True)
class EnrollmentData:
    user_id = attr.ib(type=int)
    course = attr.ib(type=CourseData)
    mode = attr.ib(type=str)
    is_active = attr.ib(type=bool)
    creation_date = attr.ib(type=datetime)
    groups = attr.ib(type=list[str], factory=list)


class FakeKey:
    """Stands for an opaque key class (openedx-events writes it as its text)."""

    @classmethod
    def from_string(cls, text: str) -> FakeKey:
        return cls()


class OpenEdxLikeSignal:
    def __init__(self, event_type: str, init_data: dict[str, Any], minor_version: int) -> None:
        self.event_type = event_type
        self.init_data = init_data
        self.minor_version = minor_version


def test_signal_from_openedx() -> None:
    event_type = f"org.openedx.learning.x{uuid.uuid4().hex[:8]}.enrollment.created.v1"
    source = OpenEdxLikeSignal(event_type, {"enrollment": EnrollmentData, "key": FakeKey}, 3)
    signal = signal_from_openedx(source, key_path="enrollment.course.course_key")
    assert (signal.event_type, signal.minor_version, signal.wire) == (event_type, 3, "openedx")
    model = signal.data["enrollment"]
    assert model.__name__ == "EnrollmentData"
    assert signal.data["key"] is str
    fields = model.model_fields
    assert fields["course"].annotation.__name__ == "CourseData"
    assert fields["user_id"].is_required()
    assert fields["groups"].default_factory is list
    course = fields["course"].annotation.model_fields
    assert course["start"].default is None and not course["start"].is_required()
    names = [f["name"] for f in codec_for(signal, OPENEDX).schema.schema["fields"]]
    assert names == ["enrollment", "key"]


def test_signal_from_openedx_refuses_unmapped_types() -> None:
    source = OpenEdxLikeSignal(unique_type("org.openedx"), {"when": date}, 0)
    with pytest.raises(UnsupportedDataTypeError, match="'when'"):
        signal_from_openedx(source)
