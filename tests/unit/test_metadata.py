"""EventMetadata: defaults, validation, JSON round trip."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID, uuid4

import pydantic
import pytest

import flowbus
from flowbus.metadata import EventMetadata, default_source, flowbus_version_tuple, new_metadata
from flowbus.settings import get_settings


@pytest.fixture
def service_name(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("FLOWBUS_SERVICE_NAME", "caluma-api")
    get_settings.cache_clear()
    yield "caluma-api"
    get_settings.cache_clear()


def test_defaults_fill_every_field(service_name: str) -> None:
    before = datetime.now(UTC)
    metadata = EventMetadata(event_type="org.flowbus.test.thing.happened.v1")
    assert isinstance(metadata.id, UUID) and metadata.id.version == 1
    assert metadata.event_type == "org.flowbus.test.thing.happened.v1"
    assert metadata.minorversion == 0
    assert metadata.source == "flowbus/caluma-api/app"
    assert metadata.sourcehost == socket.gethostname()
    assert metadata.sourcelib == flowbus_version_tuple(flowbus.__version__)
    assert all(isinstance(part, int) for part in metadata.sourcelib)
    assert metadata.time.tzinfo is not None and metadata.time.utcoffset() == timedelta(0)
    assert before <= metadata.time <= datetime.now(UTC)
    assert metadata.specversion == "1.0"


def test_two_events_get_different_ids() -> None:
    first = EventMetadata(event_type="org.flowbus.test.thing.happened.v1")
    second = EventMetadata(event_type="org.flowbus.test.thing.happened.v1")
    assert first.id != second.id


def test_default_source_reads_the_service_name(service_name: str) -> None:
    assert default_source() == f"flowbus/{service_name}/app"


def test_fields_are_exactly_the_documented_ones() -> None:
    assert list(EventMetadata.model_fields) == [
        "id",
        "event_type",
        "minorversion",
        "source",
        "sourcehost",
        "sourcelib",
        "time",
        "specversion",
    ]


def test_naive_time_is_rejected() -> None:
    with pytest.raises(pydantic.ValidationError, match="time"):
        EventMetadata(event_type="org.flowbus.test.thing.happened.v1", time=datetime(2024, 1, 1))


def test_aware_time_is_stored_in_utc() -> None:
    local = datetime(2024, 5, 1, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    metadata = EventMetadata(event_type="org.flowbus.test.thing.happened.v1", time=local)
    assert metadata.time == local
    assert metadata.time.tzinfo == UTC
    assert metadata.time.hour == 12


def test_metadata_is_frozen() -> None:
    metadata = EventMetadata(event_type="org.flowbus.test.thing.happened.v1")
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        metadata.minorversion = 3  # type: ignore[misc]


def test_unknown_fields_and_other_spec_versions_are_rejected() -> None:
    with pytest.raises(pydantic.ValidationError, match="extra"):
        EventMetadata(event_type="org.flowbus.test.thing.happened.v1", colour="red")  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError, match="specversion"):
        EventMetadata(event_type="org.flowbus.test.thing.happened.v1", specversion="0.3")


def test_negative_minor_version_is_rejected() -> None:
    with pytest.raises(pydantic.ValidationError, match="minorversion"):
        EventMetadata(event_type="org.flowbus.test.thing.happened.v1", minorversion=-1)


def test_json_round_trip_keeps_every_field() -> None:
    metadata = EventMetadata(
        id=uuid4(),
        event_type="org.flowbus.test.thing.happened.v2",
        minorversion=7,
        source="flowbus/elsewhere/worker",
        sourcehost="host-1",
        sourcelib=(3, 1, 4),
        time=datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=UTC),
    )
    text = metadata.to_json()
    assert '"minorversion":7' in text
    restored = EventMetadata.from_json(text)
    assert restored == metadata
    assert restored.model_dump() == metadata.model_dump()
    assert EventMetadata.model_validate_json(metadata.model_dump_json()) == metadata


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("0.1.0", (0, 1, 0)),
        ("1.2.3.4", (1, 2, 3, 4)),
        ("2.0rc1", (2, 0)),
        ("1.4.0.dev3", (1, 4, 0)),
        ("0.0.0", (0, 0, 0)),
    ],
)
def test_version_tuple(version: str, expected: tuple[int, ...]) -> None:
    assert flowbus_version_tuple(version) == expected


def test_new_metadata_is_what_validation_builds(service_name: str) -> None:
    before = datetime.now(UTC)
    made = new_metadata("org.flowbus.test.thing.happened.v1", 2)
    validated = EventMetadata(event_type="org.flowbus.test.thing.happened.v1", minorversion=2)
    assert made.model_fields_set == validated.model_fields_set
    assert EventMetadata.model_validate(made.model_dump()) == made
    for field in ("event_type", "minorversion", "source", "sourcehost", "sourcelib", "specversion"):
        assert getattr(made, field) == getattr(validated, field)
    assert made.source == "flowbus/caluma-api/app"
    assert made.id.version == 1 and made.id != new_metadata(made.event_type, 2).id
    assert made.time.tzinfo is UTC and before <= made.time <= datetime.now(UTC)


def test_new_metadata_rejects_what_validation_rejects() -> None:
    with pytest.raises(pydantic.ValidationError, match="minorversion"):
        new_metadata("org.flowbus.test.thing.happened.v1", -1)
