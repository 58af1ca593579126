"""The Open edX event of the cross-bus tests, importable on both sides: in the Open edX
venv (``tests/openedx_peer/peer.py``) and in flowbus's (it needs only attrs).

Shaped like openedx-events' ``COURSE_ENROLLMENT_CREATED`` (attrs data classes, a nested
record, an optional datetime, a list), with a unique event subject so that it never
clashes with openedx-events' own signal of that name.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attr

EVENT_TYPE = "org.openedx.learning.flowbus_test.enrollment.created.v1"
KEY_FIELD = "enrollment.course.course_key"
MINOR_VERSION = 2


@attr.s(frozen=True)
class UserData:
    """A learner."""

    id = attr.ib(type=int)
    is_active = attr.ib(type=bool)
    username = attr.ib(type=str, default=None)


@attr.s(frozen=True)
class CourseData:
    """A course."""

    course_key = attr.ib(type=str)
    display_name = attr.ib(type=str, factory=str)
    start = attr.ib(type=datetime, default=None)


@attr.s(frozen=True)
class CourseEnrollmentData:
    """An enrollment."""

    user = attr.ib(type=UserData)
    course = attr.ib(type=CourseData)
    mode = attr.ib(type=str)
    is_active = attr.ib(type=bool)
    creation_date = attr.ib(type=datetime)
    tags = attr.ib(type=list[str])
    grade = attr.ib(type=float)


INIT_DATA: dict[str, Any] = {"enrollment": CourseEnrollmentData, "channel": str}


def enrollment(index: int, course_key: str) -> dict[str, Any]:
    """Send arguments of the ``index``-th event (every field of a different value)."""
    created = datetime(2025, 1, 2, 3, 4, 5, 600000 + index, tzinfo=UTC)
    return {
        "enrollment": CourseEnrollmentData(
            user=UserData(id=1000 + index, is_active=index % 2 == 0, username=f"learner{index}"),
            course=CourseData(
                course_key=course_key,
                display_name=f"Course {index}",
                start=created - timedelta(days=30) if index % 2 else None,
            ),
            mode="verified",
            is_active=True,
            creation_date=created,
            tags=["a", f"t{index}"],
            grade=0.25 * index,
        ),
        "channel": "web",
    }


def as_plain(value: Any) -> Any:
    """``value`` as JSON-ready data (attrs instances and pydantic models alike)."""
    if hasattr(value, "__attrs_attrs__"):
        return {a.name: as_plain(getattr(value, a.name)) for a in value.__attrs_attrs__}
    if hasattr(type(value), "model_fields"):
        return {name: as_plain(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, list | tuple):
        return [as_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: as_plain(item) for key, item in value.items()}
    return value
