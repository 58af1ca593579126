"""Serializable snapshots shared by the catalog's events.

Events carry snapshots, not live objects: what a work item, case or user looked like when
the event happened, in types that travel as Avro (ids, slugs, string enums, timestamps and
free-form JSON for ``meta``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, JsonValue

__all__ = [
    "CaseSnapshot",
    "CaseStatus",
    "MistralState",
    "ResourceRef",
    "TaskExecutionSnapshot",
    "UserInfo",
    "WorkItemSnapshot",
    "WorkItemStatus",
    "WorkflowExecutionSnapshot",
]


class _Snapshot(BaseModel):
    # Frozen: every receiver of an event gets the same objects; none may change them for
    # the next. Extra fields are ignored so that data from a newer minor version validates.
    model_config = ConfigDict(frozen=True)


class WorkItemStatus(StrEnum):
    """Caluma's work item states.

    ``unknown`` is what a reader gets for a state added in a later version (Avro's enum
    default): new states stay compatible in both directions.
    """

    __avro_default__ = "unknown"

    UNKNOWN = "unknown"
    READY = "ready"
    COMPLETED = "completed"
    CANCELED = "canceled"
    SKIPPED = "skipped"
    SUSPENDED = "suspended"
    REDO = "redo"


class CaseStatus(StrEnum):
    """Caluma's case states (``unknown``: a state added in a later version)."""

    __avro_default__ = "unknown"

    UNKNOWN = "unknown"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELED = "canceled"
    SUSPENDED = "suspended"


class UserInfo(_Snapshot):
    """Who caused the event. ``username`` is ``None`` for anonymous or system actions.

    ``group`` is the user's active group: what Caluma writes into ``created_by_group``,
    ``modified_by_group`` and ``closed_by_group`` (since minor version 1; ``None`` before).
    """

    username: str | None
    groups: list[str] = Field(default_factory=list)
    group: str | None = None


class WorkItemSnapshot(_Snapshot):
    """A Caluma work item. ``name`` and ``description`` map language codes to text (only
    the languages that are set).

    ``child_case_id`` (the case of a sub-workflow), ``modified_by_user`` and
    ``modified_by_group`` were added in minor version 1 (``None`` in older events).
    """

    id: UUID
    case_id: UUID
    task_slug: str
    status: WorkItemStatus
    name: dict[str, str] = Field(default_factory=dict)
    description: dict[str, str] = Field(default_factory=dict)
    assigned_users: list[str] = Field(default_factory=list)
    addressed_groups: list[str] = Field(default_factory=list)
    controlling_groups: list[str] = Field(default_factory=list)
    deadline: datetime | None = None
    previous_work_item_id: UUID | None = None
    document_id: UUID | None = None
    created_at: datetime
    modified_at: datetime
    created_by_user: str | None = None
    created_by_group: str | None = None
    closed_at: datetime | None = None
    closed_by_user: str | None = None
    closed_by_group: str | None = None
    meta: JsonValue = Field(default_factory=dict)
    child_case_id: UUID | None = None
    modified_by_user: str | None = None
    modified_by_group: str | None = None


class CaseSnapshot(_Snapshot):
    """A Caluma case. ``family_id`` is the root case's id (the case's own id for a root).

    ``modified_by_user`` and ``modified_by_group`` were added in minor version 1.
    """

    id: UUID
    family_id: UUID
    workflow_slug: str
    status: CaseStatus
    parent_work_item_id: UUID | None = None
    document_id: UUID | None = None
    created_at: datetime
    modified_at: datetime
    created_by_user: str | None = None
    created_by_group: str | None = None
    closed_at: datetime | None = None
    closed_by_user: str | None = None
    closed_by_group: str | None = None
    meta: JsonValue = Field(default_factory=dict)
    modified_by_user: str | None = None
    modified_by_group: str | None = None


class ResourceRef(_Snapshot):
    """A Workflow Service resource: its type (e.g. ``"workflow"``) and id."""

    type: str
    id: str


class MistralState(StrEnum):
    """Mistral's workflow and task execution states (``UNKNOWN``: one added later)."""

    __avro_default__ = "UNKNOWN"

    UNKNOWN = "UNKNOWN"
    IDLE = "IDLE"
    WAITING = "WAITING"
    RUNNING = "RUNNING"
    RUNNING_DELAYED = "RUNNING_DELAYED"
    PAUSED = "PAUSED"
    SUCCESS = "SUCCESS"
    CANCELLED = "CANCELLED"
    ERROR = "ERROR"


class WorkflowExecutionSnapshot(_Snapshot):
    """A Mistral workflow execution. ``error`` is Mistral's ``state_info`` when it failed."""

    id: str
    workflow_name: str
    workflow_id: str | None = None
    root_execution_id: str | None = None
    state: MistralState
    error: str | None = None


class TaskExecutionSnapshot(_Snapshot):
    """A Mistral task execution. ``error`` is Mistral's ``state_info`` when it failed."""

    id: str
    name: str
    workflow_execution_id: str
    workflow_name: str
    state: MistralState
    error: str | None = None
