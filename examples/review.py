import uuid
from datetime import UTC, datetime

from flowbus.catalog import post_complete_work_item
from flowbus.catalog.models import UserInfo, WorkItemSnapshot, WorkItemStatus


def review_work_item(case_id: uuid.UUID) -> WorkItemSnapshot:
    now = datetime.now(UTC)
    return WorkItemSnapshot(
        id=uuid.uuid4(),
        case_id=case_id,
        task_slug="review",
        status=WorkItemStatus.COMPLETED,
        created_at=now,
        modified_at=now,
    )


def complete_review(case_id: uuid.UUID) -> None:
    """What a service does when its review is done: Caluma's post_complete_work_item."""
    post_complete_work_item.send_event(
        work_item=review_work_item(case_id),
        user=UserInfo(username="alice"),
        context={},
        sender="review",
    )
