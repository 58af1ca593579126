"""CloudEvents binary-mode headers: writing them, and reading them back strictly."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest

from flowbus import cloudevents
from flowbus.cloudevents import from_headers, header_pairs, to_headers
from flowbus.errors import EventHeaderError, MalformedHeaderError, MissingHeaderError
from flowbus.metadata import EventMetadata

EVENT_TYPE = "org.flowbus.caluma.work_item.post_complete.v1"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
REQUIRED = (
    "ce_specversion",
    "ce_id",
    "ce_source",
    "ce_type",
    "ce_time",
    "ce_minorversion",
    "ce_sourcehost",
    "ce_sourcelib",
)


def metadata(**changes: object) -> EventMetadata:
    fields: dict[str, object] = {
        "id": UUID("6dd391ea-e71c-11f1-922c-02fc00000001"),
        "event_type": EVENT_TYPE,
        "minorversion": 2,
        "source": "flowbus/caluma-api/app",
        "sourcehost": "caluma-api-7d9f",
        "sourcelib": (0, 1, 0),
        "time": datetime(2026, 11, 23, 9, 30, 15, 123456, tzinfo=UTC),
    }
    return EventMetadata(**(fields | changes))


def headers(**replace: str | None) -> list[tuple[str, str | bytes | None]]:
    """A full header list; ``replace`` sets (or with None, removes) single headers."""
    written = to_headers(
        metadata(), partitionkey="case-1", sender="caluma", dataschema="schemas/x/1.avsc"
    )
    out = [(name, value) for name, value in written if name not in replace]
    out.extend((name, value.encode()) for name, value in replace.items() if value is not None)
    return out


# --- writing --------------------------------------------------------------------------------


def test_to_headers_writes_every_attribute_in_binary_mode() -> None:
    written = to_headers(
        metadata(),
        partitionkey="8b1c1c4e-0d0e-4b49-9d0e-3f4f6f0b8a11",
        sender="caluma.workflow",
        dataschema="workflow-events-org.flowbus.caluma.work_item.post_complete.v1/3",
        traceparent=TRACEPARENT,
    )
    assert written == [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"6dd391ea-e71c-11f1-922c-02fc00000001"),
        ("ce_source", b"flowbus/caluma-api/app"),
        ("ce_type", EVENT_TYPE.encode()),
        ("ce_time", b"2026-11-23T09:30:15.123456Z"),
        ("content-type", b"application/avro"),
        ("ce_minorversion", b"2"),
        ("ce_sourcehost", b"caluma-api-7d9f"),
        ("ce_sourcelib", b"0.1.0"),
        ("ce_partitionkey", b"8b1c1c4e-0d0e-4b49-9d0e-3f4f6f0b8a11"),
        ("ce_sender", b"caluma.workflow"),
        ("ce_dataschema", b"workflow-events-org.flowbus.caluma.work_item.post_complete.v1/3"),
        ("traceparent", TRACEPARENT.encode()),
    ]


def test_optional_extensions_are_left_out_when_absent() -> None:
    names = [name for name, _ in to_headers(metadata())]
    assert names == [
        "ce_specversion",
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_time",
        "content-type",
        "ce_minorversion",
        "ce_sourcehost",
        "ce_sourcelib",
    ]


def test_time_is_written_in_utc_with_z() -> None:
    zurich = timezone(timedelta(hours=1))
    event = metadata(time=datetime(2026, 11, 23, 10, 0, tzinfo=zurich))
    assert dict(to_headers(event))["ce_time"] == b"2026-11-23T09:00:00Z"


def test_no_traceparent_without_an_active_trace_context() -> None:
    # opentelemetry is not installed (or no span is active): nothing to propagate.
    assert cloudevents.current_traceparent() is None


# --- reading --------------------------------------------------------------------------------


def test_round_trip_restores_metadata_and_extensions() -> None:
    original = metadata()
    envelope = from_headers(
        to_headers(
            original,
            partitionkey="case-1",
            sender="caluma.workflow",
            dataschema="schemas/x/1.avsc",
            traceparent=TRACEPARENT,
        )
    )
    assert envelope.metadata == original
    assert envelope.partitionkey == "case-1"
    assert envelope.sender == "caluma.workflow"
    assert envelope.dataschema == "schemas/x/1.avsc"
    assert envelope.traceparent == TRACEPARENT
    assert envelope.content_type == "application/avro"


def test_round_trip_of_default_metadata() -> None:
    original = EventMetadata(event_type=EVENT_TYPE)
    restored = from_headers(to_headers(original)).metadata
    assert restored == original
    assert restored.sourcehost == socket.gethostname()


def test_headers_may_be_a_mapping_of_strings() -> None:
    as_mapping = {name: value.decode() for name, value in headers()}
    assert from_headers(as_mapping).metadata == metadata()


def test_absent_extensions_read_as_none() -> None:
    envelope = from_headers(to_headers(metadata()))
    assert (envelope.sender, envelope.partitionkey, envelope.dataschema, envelope.traceparent) == (
        None,
        None,
        None,
        None,
    )


@pytest.mark.parametrize("name", REQUIRED)
def test_each_missing_required_header_is_named(name: str) -> None:
    with pytest.raises(MissingHeaderError) as caught:
        from_headers(headers(**{name: None}))
    assert caught.value.header == name
    assert name in str(caught.value)


def test_a_header_with_a_null_value_counts_as_missing() -> None:
    with pytest.raises(MissingHeaderError) as caught:
        from_headers([*headers(ce_id=None), ("ce_id", None)])
    assert caught.value.header == "ce_id"


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("ce_id", "work-item-42", "not a UUID"),
        ("ce_time", "yesterday", "not an RFC 3339 timestamp"),
        ("ce_time", "2026-11-23T09:30:15", "no UTC offset"),
        ("ce_minorversion", "-1", "not a non-negative integer"),
        ("ce_minorversion", "two", "not a non-negative integer"),
        ("ce_sourcelib", "0.1.x", "not dotted integers"),
        ("ce_specversion", "0.3", "1.0"),
        ("ce_type", "", "at least 1 character"),
        ("ce_source", "", "at least 1 character"),
    ],
)
def test_each_malformed_header_is_named(name: str, value: str, reason: str) -> None:
    with pytest.raises(MalformedHeaderError) as caught:
        from_headers(headers(**{name: value}))
    assert caught.value.header == name
    assert reason in caught.value.reason
    assert isinstance(caught.value, EventHeaderError)


def test_invalid_utf8_is_malformed() -> None:
    pairs = [(n, v) for n, v in headers() if n != "ce_source"] + [("ce_source", b"\xff\xfe")]
    with pytest.raises(MalformedHeaderError) as caught:
        from_headers(pairs)
    assert caught.value.header == "ce_source"
    assert "UTF-8" in caught.value.reason


def test_open_edx_header_names_are_accepted() -> None:
    pairs = headers(ce_sourcehost=None, ce_sourcelib=None)
    pairs += [("sourcehost", b"lms-worker-3"), ("sourcelib", b"9.5.1")]
    restored = from_headers(pairs).metadata
    assert restored.sourcehost == "lms-worker-3"
    assert restored.sourcelib == (9, 5, 1)
    assert restored.id == metadata().id


def test_the_ce_prefixed_name_wins_over_the_open_edx_one() -> None:
    pairs = [*headers(), ("sourcehost", b"elsewhere")]
    assert from_headers(pairs).metadata.sourcehost == "caluma-api-7d9f"


@pytest.mark.parametrize(
    "content_type", ["application/cloudevents+json", "application/cloudevents+json; charset=utf-8"]
)
def test_structured_mode_is_rejected(content_type: str) -> None:
    with pytest.raises(MalformedHeaderError) as caught:
        from_headers(headers(**{"content-type": content_type}))
    assert caught.value.header == "content-type"
    assert "structured-mode" in caught.value.reason


def test_duplicate_headers_with_different_values_are_rejected() -> None:
    pairs = [*headers(), ("ce_type", b"org.flowbus.caluma.case.post_complete.v1")]
    with pytest.raises(MalformedHeaderError) as caught:
        from_headers(pairs)
    assert caught.value.header == "ce_type"
    assert "twice" in caught.value.reason


def test_duplicate_headers_with_equal_values_are_accepted() -> None:
    pairs = [*headers(), ("ce_id", b"6dd391ea-e71c-11f1-922c-02fc00000001")]
    assert from_headers(pairs).metadata == metadata()


def test_header_pairs_normalizes_what_confluent_kafka_gives() -> None:
    assert header_pairs(None) == []
    assert header_pairs([("a", "x"), ("b", b"y"), ("c", None)]) == [("a", b"x"), ("b", b"y")]
    assert header_pairs({"a": "x"}) == [("a", b"x")]


# --- headers that are not CloudEvents ---------------------------------------------------------


def test_a_foreign_header_that_is_not_utf8_is_ignored() -> None:
    pairs = [*headers(), ("uber-trace-id", b"\xff\xfe\x00\x01"), ("X-App", b"\xc3\x28")]
    assert from_headers(pairs).metadata == metadata()


def test_a_ce_header_that_is_not_utf8_is_still_malformed() -> None:
    pairs = [*headers(ce_id=None), ("ce_id", b"\xff\xfe")]
    with pytest.raises(MalformedHeaderError) as caught:
        from_headers(pairs)
    assert caught.value.header == "ce_id"
    assert "UTF-8" in caught.value.reason


def test_a_foreign_header_present_twice_with_different_values_is_ignored() -> None:
    pairs = [*headers(), ("x-request-id", b"one"), ("x-request-id", b"two")]
    assert from_headers(pairs).metadata == metadata()


def test_content_type_and_traceparent_are_still_read() -> None:
    envelope = from_headers([*headers(), ("traceparent", TRACEPARENT.encode())])
    assert envelope.content_type == "application/avro"
    assert envelope.traceparent == TRACEPARENT


def test_an_unprefixed_header_that_is_read_is_still_checked() -> None:
    pairs = [*headers(), ("content-type", b"\xff")]
    with pytest.raises(MalformedHeaderError) as caught:
        from_headers(pairs)
    assert caught.value.header == "content-type"


def test_the_open_edx_sourcehost_alias_is_read_among_foreign_headers() -> None:
    pairs = [*headers(ce_sourcehost=None), ("x-b3", b"\x80"), ("sourcehost", b"lms-worker-3")]
    assert from_headers(pairs).metadata.sourcehost == "lms-worker-3"


# --- the remembered layouts: a second record of a producer is read the short way ---------


def _with(pairs: list[tuple[str, str | bytes | None]], name: str, value: bytes | None) -> list:
    """``pairs`` with ``name``'s value replaced in place (the names keep their order)."""
    return [(n, value if n == name else v) for n, v in pairs]


def test_a_record_with_known_constants_reads_as_a_cold_read_does() -> None:
    pairs = headers(traceparent=TRACEPARENT)
    cloudevents._LAYOUTS.clear()
    cold = from_headers(pairs)
    warm = from_headers(list(pairs))
    assert warm == cold
    layout = cloudevents._LAYOUTS[tuple(name for name, _ in pairs)]
    assert layout is not None and len(layout.known) == 1
    other = from_headers(_with(pairs, "ce_id", b"6dd391ea-e71c-11f1-922c-02fc00000002"))
    assert other.metadata.id == UUID("6dd391ea-e71c-11f1-922c-02fc00000002")
    assert other.metadata.time == cold.metadata.time
    assert other.traceparent == TRACEPARENT and other.partitionkey == "case-1"


@pytest.mark.parametrize(
    ("name", "value", "error", "reason"),
    [
        ("ce_id", b"work-item-42", MalformedHeaderError, "not a UUID"),
        ("ce_id", b"\xff", MalformedHeaderError, "UTF-8"),
        ("ce_id", None, MissingHeaderError, "ce_id"),
        ("ce_time", b"yesterday", MalformedHeaderError, "not an RFC 3339 timestamp"),
        ("ce_time", b"2026-11-23T09:30:15", MalformedHeaderError, "no UTC offset"),
        ("ce_partitionkey", b"\xfe", MalformedHeaderError, "UTF-8"),
        ("traceparent", b"\xfe", MalformedHeaderError, "UTF-8"),
        ("ce_sourcelib", b"0.1.x", MalformedHeaderError, "not dotted integers"),
        ("ce_type", b"", MalformedHeaderError, "at least 1 character"),
    ],
)
def test_a_known_layout_still_checks_every_header(
    name: str, value: bytes | None, error: type[EventHeaderError], reason: str
) -> None:
    pairs = headers(traceparent=TRACEPARENT)
    from_headers(pairs)  # the layout and its constants are known now
    with pytest.raises(error) as caught:
        from_headers(_with(pairs, name, value))
    assert caught.value.header == name
    assert reason in str(caught.value)


def test_a_layout_with_a_repeated_name_is_read_the_long_way() -> None:
    pairs = [*headers(), ("ce_source", b"flowbus/caluma-api/app")]
    assert from_headers(pairs).metadata.source == "flowbus/caluma-api/app"
    assert cloudevents._LAYOUTS[tuple(name for name, _ in pairs)] is None
    with pytest.raises(MalformedHeaderError, match="present twice"):
        from_headers([*pairs[:-1], ("ce_source", b"elsewhere")])


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 12, 2, 19, 40, 1, 123456, tzinfo=UTC),
        datetime(2026, 12, 2, 19, 40, 1, tzinfo=UTC),  # no fraction: isoformat() writes none
        datetime(2026, 12, 2, 19, 40, 1, 7, tzinfo=UTC),
        datetime(999, 1, 2, 3, 4, 5, 60, tzinfo=UTC),  # a year below 1000 keeps 4 digits
        datetime(2026, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=2))),  # the day before
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_ce_time_is_isoformat_in_utc_with_z(value: datetime) -> None:
    expected = value.astimezone(UTC).isoformat().removesuffix("+00:00") + "Z"
    assert cloudevents.format_time(value) == expected
