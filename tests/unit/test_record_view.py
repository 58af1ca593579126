"""The operator's view of a record: decoded as the worker decodes it, or why not."""

from __future__ import annotations

import json

import sample_events

from flowbus import cloudevents
from flowbus.avro.serializer import EventDeserializer, EventSerializer
from flowbus.catalog import caluma
from flowbus.consumer.middleware import ConsumedRecord
from flowbus.consumer.record_view import view_record
from flowbus.errors import SchemaRegistryError
from flowbus.json_output import to_json_value

SIGNAL = caluma.WORK_ITEM_POST_COMPLETE


def encoded_record(value: bytes | None = None) -> tuple[ConsumedRecord, dict, object]:
    data = SIGNAL.validate_data(**sample_events.work_item_event())
    metadata = SIGNAL.generate_signal_metadata()
    body = EventSerializer().serialize(SIGNAL, data, "t").value  # single-object framing
    headers = cloudevents.to_headers(metadata, sender="app.views")
    record = ConsumedRecord("t", 2, 41, b"case-1", body if value is None else value, headers)
    return record, data, metadata


class UnreachableRegistry(EventDeserializer):
    def deserialize(self, signal, value, topic):
        raise SchemaRegistryError("registry unreachable: connection refused")


def test_a_decoded_record_shows_its_metadata_and_data():
    record, data, metadata = encoded_record()

    view = view_record(record, EventDeserializer(), timestamp_ms=1_700_000_000_000)

    shown = view.to_json()
    assert shown["data"] == to_json_value(data)
    assert (shown["id"], shown["event_type"], shown["sender"]) == (
        str(metadata.id), SIGNAL.event_type, "app.views",
    )  # fmt: skip
    assert (shown["partition"], shown["offset"], shown["key"]) == (2, 41, "case-1")
    assert shown["timestamp"] == "2023-11-14T22:13:20Z"
    assert shown["failure"] is None
    heading, data_line = view.text_lines()
    assert heading.startswith("t[2]@41  ") and str(metadata.id) in heading
    assert json.loads(data_line) == shown["data"]


def test_a_poison_value_is_shown_with_the_workers_reason():
    record, _, metadata = encoded_record(value=b"\xc3\x01" + b"\x00" * 8 + b"junk")

    view = view_record(record, EventDeserializer())

    assert view.data is None and view.failure is not None
    assert view.to_json()["failure"]["reason"] == "undecodable"
    assert view.to_json()["id"] == str(metadata.id)  # read from the headers as written
    assert view.text_lines()[1].startswith("    POISON undecodable (data failure): ")


def test_a_registry_outage_is_not_called_poison():
    record, _, _ = encoded_record()

    view = view_record(record, UnreachableRegistry())

    assert view.to_json()["failure"]["kind"] == "infrastructure"
    assert view.text_lines()[1].startswith("    NOT DECODED undecodable (infrastructure failure)")
