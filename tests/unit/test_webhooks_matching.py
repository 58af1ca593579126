"""Event type patterns and property filters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from flowbus.consumer.webhooks.event import WebhookEvent
from flowbus.consumer.webhooks.matching import (
    EventTypePattern,
    PropertyFilter,
    filters_to_json,
    matches,
    parse_filters,
)
from flowbus.errors import InvalidSubscriptionError


def event(
    type_: str = "org.flowbus.caluma.work_item.post_complete.v1", **data: Any
) -> WebhookEvent:
    return WebhookEvent(
        id="e1",
        type=type_,
        source="flowbus/caluma/app",
        time=datetime(2024, 5, 1, tzinfo=UTC),
        data=data,
        sourcehost="host-a",
        subject="case-1",
    )


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [
        ("org.flowbus.caluma.work_item.*", "org.flowbus.caluma.work_item.post_complete.v1", True),
        ("org.flowbus.caluma.work_item.*", "org.flowbus.caluma.case.post_create.v1", False),
        ("*.post_complete.v1", "org.flowbus.caluma.work_item.post_complete.v1", True),
        ("*.post_complete.v1", "org.flowbus.caluma.work_item.post_complete.v2", False),
        ("*", "anything.at.all", True),
        ("org.flowbus.*.work_item.*.v1", "org.flowbus.caluma.work_item.post_create.v1", True),
        (
            "org.flowbus.caluma.work_item.post_complete.v?",
            "org.flowbus.caluma.work_item.post_complete.v3",
            True,
        ),
        (
            "org.flowbus.caluma.work_item.post_complete.v?",
            "org.flowbus.caluma.work_item.post_complete.v10",
            False,
        ),
        (
            "org.flowbus.caluma.work_item.post_complete.v1",
            "org.flowbus.caluma.work_item.post_complete.v1",
            True,
        ),
        # dots are literal, matching is case-sensitive and anchored
        ("org.flowbus.caluma", "orgXflowbus.caluma", False),
        ("org.flowbus.Caluma.*", "org.flowbus.caluma.case.x.v1", False),
        ("caluma", "org.flowbus.caluma.case.x.v1", False),
    ],
)
def test_event_type_patterns(pattern: str, event_type: str, expected: bool) -> None:
    assert EventTypePattern(pattern).matches(event_type) is expected


@pytest.mark.parametrize("pattern", ["", "org flowbus", "org.[ab]", "org/*", "a+b"])
def test_bad_event_patterns_are_rejected(pattern: str) -> None:
    with pytest.raises(InvalidSubscriptionError, match="event pattern"):
        EventTypePattern(pattern)


WORK_ITEM = {
    "work_item": {"task_slug": "review-permit", "status": "READY", "deadline": None},
    "resource": {"type": "itemsvc.document", "id": 42, "tags": ["urgent", "legal"]},
    "flag": True,
    "score": 1.5,
}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"resource.type": "itemsvc.*", "work_item.task_slug": "review-*"}, True),
        ({"resource.type": "itemsvc.*", "work_item.task_slug": "submit-*"}, False),
        ({"work_item.task_slug": ["submit-*", "review-*"]}, True),
        ({"work_item.task_slug": "review-permi?"}, True),
        ({"work_item.task_slug": "review"}, False),
        ({"resource.id": "42"}, True),
        ({"resource.id": "4*"}, True),
        ({"resource.tags": "leg*"}, True),
        ({"resource.tags": "other"}, False),
        ({"flag": "true"}, True),
        ({"score": "1.5"}, True),
        ({"work_item.deadline": "null"}, True),
        ({"work_item": "*"}, False),  # objects never match
        ({"missing.path": "*"}, False),
        ({"work_item.task_slug.deeper": "*"}, False),
        ({"$source": "flowbus/caluma/*"}, True),
        ({"$sourcehost": "host-b"}, False),
        ({"$subject": "case-?"}, True),
        ({"$partitionkey": "*"}, False),  # attribute not set
        ({"$type": "*.post_complete.v1"}, True),
    ],
)
def test_property_filters(filters: dict[str, Any], expected: bool) -> None:
    parsed = parse_filters(filters)
    assert matches(EventTypePattern("*"), parsed, event(**WORK_ITEM)) is expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"$nope": "x"}, "unknown attribute key"),
        ({"a..b": "x"}, "dotted data path"),
        ({"": "x"}, "dotted data path"),
        ({"a": ""}, "non-empty"),
        ({"a": []}, "no patterns"),
        ({"a": 3}, "pattern or a list"),
        ({"a": ["x", 3]}, "pattern or a list"),
    ],
)
def test_bad_filters_are_rejected(raw: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidSubscriptionError, match=reason):
        parse_filters(raw)


def test_filters_round_trip_through_json_form() -> None:
    raw = {"b.c": ["x*", "y"], "a": "z"}
    parsed = parse_filters(raw)
    assert [f.key for f in parsed] == ["a", "b.c"]
    assert parse_filters(filters_to_json(parsed)) == parsed
    assert PropertyFilter("a", ("z",)) in parsed
