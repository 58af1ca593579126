"""The benchmark event: Caluma's "work item completed", shaped like the Open edX peer's.

The same fields and values as ``peer_openedx/bench_openedx.py`` builds: a work item (ids,
slug, name, status, 3 assigned users, 2 addressed and 2 controlling groups, deadline,
timestamps, ``meta`` with 3 keys), the acting user, and a 3-key ``context``. flowbus's
snapshot has a few more optional fields (description, closing user...), left empty. Every
event gets its own work item id, case id (the Kafka key) and request id.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from flowbus.catalog.caluma import WORK_ITEM_POST_COMPLETE
from flowbus.catalog.models import UserInfo, WorkItemSnapshot, WorkItemStatus
from flowbus.signals import WorkflowSignal

SIGNAL: WorkflowSignal = WORK_ITEM_POST_COMPLETE
EVENT_TYPE = SIGNAL.event_type
KEY_PATH = "work_item.case_id"

_USER = UserInfo(username="alice.meier", groups=["building-authority", "fire-department"])


def event_data(
    index: int, now: datetime | None = None, *, case_id: uuid.UUID | None = None
) -> dict[str, Any]:
    """The ``send_event`` keyword arguments of event number ``index`` (a fresh case id, the
    Kafka key, unless ``case_id`` is given)."""
    now = now or datetime.now(UTC)
    created = now - timedelta(hours=3, seconds=index)
    work_item = WorkItemSnapshot(
        id=uuid.uuid4(),
        case_id=case_id or uuid.uuid4(),
        task_slug="review-building-permit",
        name={"en": "Review building permit application"},
        status=WorkItemStatus.COMPLETED,
        assigned_users=["alice.meier", "bruno.keller", "chantal.roth"],
        addressed_groups=["building-authority", "fire-department"],
        controlling_groups=["building-authority", "municipality-admin"],
        deadline=created + timedelta(days=14),
        created_at=created,
        modified_at=now,
        meta={"priority": "high", "channel": "e-portal", "form_version": 3},
    )
    context = {"request_id": str(uuid.uuid4()), "tenant": "municipality-42", "origin": "caluma"}
    return {"work_item": work_item, "user": _USER, "context": context}


def build_events(count: int) -> list[dict[str, Any]]:
    """``count`` distinct events (distinct ids and keys), built before any timing starts."""
    now = datetime.now(UTC)
    return [event_data(i, now) for i in range(count)]
