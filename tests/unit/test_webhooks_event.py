"""The webhook event and its CloudEvents structured-mode body."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http_event

from flowbus.consumer.webhooks.event import CLOUDEVENTS_JSON, WebhookEvent
from flowbus.errors import WebhookError
from flowbus.metadata import EventMetadata


def make_event(**overrides: object) -> WebhookEvent:
    values: dict[str, object] = {
        "id": "5f0c1c3e-0000-4000-8000-000000000001",
        "type": "org.flowbus.caluma.work_item.post_complete.v1",
        "source": "flowbus/caluma/app",
        "time": datetime(2024, 5, 1, 12, 30, tzinfo=timezone(timedelta(hours=2))),
        "data": {"work_item": {"task_slug": "review", "score": 2}},
        "minorversion": 1,
        "sourcehost": "node-1",
        "sourcelib": "0.1.0",
        "subject": "case-9",
    }
    values.update(overrides)
    return WebhookEvent(**values)  # type: ignore[arg-type]


def test_structured_body_is_a_valid_cloudevent_with_json_data() -> None:
    event = make_event()
    parsed = from_http_event(
        HTTPMessage(headers={"content-type": CLOUDEVENTS_JSON}, body=event.to_json_bytes())
    )
    assert parsed.get_id() == event.id
    assert parsed.get_type() == event.type
    assert parsed.get_source() == event.source
    assert parsed.get_subject() == "case-9"
    assert parsed.get_time() == datetime(2024, 5, 1, 10, 30, tzinfo=UTC)
    assert parsed.get_datacontenttype() == "application/json"
    assert parsed.get_data() == {"work_item": {"task_slug": "review", "score": 2}}
    assert parsed.get_extension("minorversion") == 1
    assert parsed.get_extension("sourcehost") == "node-1"
    assert parsed.get_extension("sourcelib") == "0.1.0"


def test_unset_optional_attributes_are_left_out() -> None:
    body = json.loads(make_event(subject=None, sourcehost=None).to_json_bytes())
    assert "subject" not in body
    assert "sourcehost" not in body
    assert "partitionkey" not in body
    assert body["time"] == "2024-05-01T10:30:00Z"


def test_from_metadata_turns_models_and_uuids_into_json() -> None:
    metadata = EventMetadata(
        id=UUID("5f0c1c3e-0000-4000-8000-000000000002"),
        event_type="org.flowbus.caluma.case.post_create.v1",
        source="flowbus/caluma/app",
        sourcehost="node-2",
        sourcelib=(0, 1, 0),
        time=datetime(2024, 5, 1, tzinfo=UTC),
    )
    event = WebhookEvent.from_metadata(
        metadata,
        {"case_id": UUID(int=7), "when": datetime(2024, 1, 1, tzinfo=UTC)},
        sender="caluma.Case",
        partitionkey="case-7",
    )
    assert event.id == "5f0c1c3e-0000-4000-8000-000000000002"
    assert event.sourcelib == "0.1.0"
    assert event.data == {
        "case_id": "00000000-0000-0000-0000-000000000007",
        "when": "2024-01-01T00:00:00Z",
    }
    body = json.loads(event.to_json_bytes())
    assert (body["sender"], body["partitionkey"]) == ("caluma.Case", "case-7")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"id": ""}, "id must be a non-empty string"),
        ({"type": None}, "type must be a non-empty string"),
        ({"time": datetime(2024, 1, 1)}, "timezone-aware"),
        ({"data": [1, 2]}, "JSON object"),
        ({"data": {"x": object()}}, "not JSON"),
        ({"data": {"x": float("nan")}}, "not JSON"),
        ({"minorversion": -1}, "minorversion"),
    ],
)
def test_invalid_events_are_rejected(overrides: dict[str, object], reason: str) -> None:
    with pytest.raises(WebhookError, match=reason):
        make_event(**overrides)
