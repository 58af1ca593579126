"""Realistic data for catalog events, shared by tests and the demo's expectations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from flowbus.catalog.models import (
    CaseSnapshot,
    CaseStatus,
    UserInfo,
    WorkItemSnapshot,
    WorkItemStatus,
)

BASE_TIME = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def user(name: str = "alice") -> UserInfo:
    return UserInfo(username=name, groups=["reviewers", "staff"])


def work_item(
    case_id: uuid.UUID, task: str = "review", status: WorkItemStatus = WorkItemStatus.READY
) -> WorkItemSnapshot:
    return WorkItemSnapshot(
        id=uuid.uuid4(),
        case_id=case_id,
        task_slug=task,
        status=status,
        name={"en": task.title(), "de": task.title()},
        assigned_users=["alice", "bob", "carol"],
        addressed_groups=["reviewers", "legal"],
        controlling_groups=["staff"],
        deadline=BASE_TIME + timedelta(days=3),
        created_at=BASE_TIME,
        modified_at=BASE_TIME + timedelta(minutes=5),
        meta={"priority": 2, "tags": ["urgent"], "source": "portal"},
    )


def case(case_id: uuid.UUID, status: CaseStatus = CaseStatus.RUNNING) -> CaseSnapshot:
    return CaseSnapshot(
        id=case_id,
        family_id=case_id,
        workflow_slug="building-permit",
        status=status,
        created_at=BASE_TIME,
        modified_at=BASE_TIME,
        meta={"municipality": "Bern"},
    )


def work_item_event(case_id: uuid.UUID | None = None, **changes: Any) -> dict[str, Any]:
    """Send kwargs of a Caluma work item post-* event."""
    item = work_item(case_id or uuid.uuid4())
    if changes:
        item = item.model_copy(update=changes)
    return {"work_item": item, "user": user(), "context": {"request": "r-1", "n": 0}}


def case_event(case_id: uuid.UUID | None = None) -> dict[str, Any]:
    """Send kwargs of a Caluma case post-* event."""
    return {"case": case(case_id or uuid.uuid4()), "user": user(), "context": {}}
