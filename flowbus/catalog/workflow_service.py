"""Workflow Service events: resource lifecycle and requests for user input.

Resource events are keyed by the resource id, so one resource's events keep their order;
user-input requests are keyed by their notification id.
"""

from __future__ import annotations

from pydantic import JsonValue

from flowbus.catalog.models import ResourceRef, UserInfo
from flowbus.signals import WorkflowSignal

__all__ = [
    "RESOURCE_CREATED",
    "RESOURCE_HARD_DELETED",
    "RESOURCE_SOFT_DELETED",
    "RESOURCE_UPDATED",
    "USER_INPUT_REQUESTED",
    "WORKFLOW_SERVICE_SIGNALS",
]

_RESOURCE_DATA = {"resource": ResourceRef, "user": UserInfo, "request_id": str | None}


def _resource_signal(action: str, doc: str) -> WorkflowSignal:
    return WorkflowSignal(
        f"org.flowbus.workflow_service.resource.{action}.v1",
        _RESOURCE_DATA,
        1,  # 1: UserInfo.group
        key_path="resource.id",
        doc=doc,
    )


RESOURCE_CREATED = _resource_signal("created", "A Workflow Service resource was created.")
RESOURCE_UPDATED = _resource_signal("updated", "A Workflow Service resource was updated.")
RESOURCE_SOFT_DELETED = _resource_signal(
    "soft_deleted", "A Workflow Service resource was marked deleted; it can be restored."
)
RESOURCE_HARD_DELETED = _resource_signal(
    "hard_deleted", "A Workflow Service resource was deleted for good."
)

USER_INPUT_REQUESTED = WorkflowSignal(
    "org.flowbus.workflow_service.user_input.requested.v1",
    {"notification_id": str, "url": str, "input_params": JsonValue},
    key_path="notification_id",
    doc="A workflow waits for user input: answer at `url` with the described `input_params`.",
)

#: Every Workflow Service signal.
WORKFLOW_SERVICE_SIGNALS: tuple[WorkflowSignal, ...] = (
    RESOURCE_CREATED,
    RESOURCE_UPDATED,
    RESOURCE_SOFT_DELETED,
    RESOURCE_HARD_DELETED,
    USER_INPUT_REQUESTED,
)
