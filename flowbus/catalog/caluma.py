"""Caluma's workflow events: pre and post events for work items and cases.

Each event's data is a snapshot (``work_item`` or ``case``), the acting ``user`` and the
free-form ``context`` Caluma passes along; the pre-create events add ``validated_data``,
the reopen events the ``work_items`` being reopened. :mod:`flowbus.producer.caluma` sends
them from a Caluma service.

**Keys and order.** Every event of one case is keyed by the case id, so one case's events
share a partition and arrive in the order Caluma emits them. What Caluma 12.x emits:

- starting a case: ``pre_create_case``, ``post_create_case``, then ``post_create_work_item``
  for each start task;
- completing (or skipping) a work item that has successors: ``pre_complete_work_item``,
  ``post_complete_work_item``, then ``post_create_work_item`` for each successor;
- completing (or skipping) the last open work item: ``pre_complete_work_item``,
  ``post_complete_work_item``, then ``post_complete_case``, whose sender is
  ``"post_complete_work_item"`` (``"post_skip_work_item"`` after a skip), not a mutation;
- cancelling, suspending or resuming a case: the case's ``pre_`` event, the ``pre_``/
  ``post_`` pair of each affected work item (a sub-workflow's case in between, under its own
  key), then the case's ``post_`` event;
- ``pre_reopen_case``, ``post_reopen_case``; creating a multiple-instance work item:
  ``pre_create_work_item``, ``post_create_work_item``.

Senders travel as Caluma names them: mostly the event's own name (``"pre_cancel_case"``),
``"case_post_create"`` for the start tasks' ``post_create_work_item``, and the mutation
class (``"caluma.caluma_workflow.schema.CreateWorkItem"``) for ``createWorkItem``.

The module-level lower-case names are Caluma's own (``pre_create_work_item``,
``post_complete_case``, ...), for users coming from Caluma's ``caluma_workflow.events``.

Two pre-create events differ from Caluma's arguments: ``pre_create_work_item`` carries the
``case`` the work item is being created in (Caluma has it inside ``validated_data``) so that
it is keyed like every other event of that case, and ``pre_create_case`` carries the
``case_id`` the case will get (``case`` is ``None``, as in Caluma: the case does not exist
yet) and is keyed by it.

**Minor version 1** (every Caluma signal): the user's active ``group``, the work item's
``child_case_id``, ``modified_by_user``/``modified_by_group`` on work items and cases,
``work_items`` on the reopen events, ``case_id`` (and with it a key) on ``pre_create_case``.
All with defaults, so version 0 and 1 read each other's events.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from pydantic import Field, JsonValue

from flowbus.catalog.models import CaseSnapshot, UserInfo, WorkItemSnapshot
from flowbus.signals import WorkflowSignal

WORK_ITEM_ACTIONS = ("create", "complete", "cancel", "skip", "suspend", "resume", "redo")
CASE_ACTIONS = ("create", "complete", "cancel", "suspend", "resume", "reopen")
#: Minor version of every Caluma signal (see the module docstring).
MINOR_VERSION = 1


def _work_item_data(*, pre_create: bool = False) -> dict[str, Any]:
    if pre_create:
        return {
            "work_item": WorkItemSnapshot | None,
            "case": CaseSnapshot,
            "user": UserInfo,
            "context": JsonValue,
            "validated_data": JsonValue,
        }
    return {"work_item": WorkItemSnapshot, "user": UserInfo, "context": JsonValue}


def _case_data(action: str, *, pre_create: bool = False) -> dict[str, Any]:
    if pre_create:
        return {
            "case": CaseSnapshot | None,
            "user": UserInfo,
            "context": JsonValue,
            "validated_data": JsonValue,
            "case_id": Annotated[
                UUID | None, Field(default=None, description="The id the new case gets.")
            ],
        }
    data: dict[str, Any] = {"case": CaseSnapshot, "user": UserInfo, "context": JsonValue}
    if action == "reopen":
        data["work_items"] = Annotated[
            list[WorkItemSnapshot],
            Field(default_factory=list, description="The work items being reopened."),
        ]
    return data


def _work_item_signal(phase: str, action: str) -> WorkflowSignal:
    pre_create = phase == "pre" and action == "create"
    return WorkflowSignal(
        f"org.flowbus.caluma.work_item.{phase}_{action}.v1",
        _work_item_data(pre_create=pre_create),
        MINOR_VERSION,
        key_path="case.id" if pre_create else "work_item.case_id",
        doc=f"Caluma {phase}_{action}_work_item: "
        + ("before" if phase == "pre" else "after")
        + f" a work item is {_PAST[action]}.",
    )


def _case_signal(phase: str, action: str) -> WorkflowSignal:
    pre_create = phase == "pre" and action == "create"
    return WorkflowSignal(
        f"org.flowbus.caluma.case.{phase}_{action}.v1",
        _case_data(action, pre_create=pre_create),
        MINOR_VERSION,
        key_path="case_id" if pre_create else "case.id",
        doc=f"Caluma {phase}_{action}_case: "
        + ("before" if phase == "pre" else "after")
        + f" a case is {_PAST[action]}.",
    )


_PAST = {
    "create": "created",
    "complete": "completed",
    "cancel": "canceled",
    "skip": "skipped",
    "suspend": "suspended",
    "resume": "resumed",
    "redo": "redone",
    "reopen": "reopened",
}

# Work items
WORK_ITEM_PRE_CREATE = _work_item_signal("pre", "create")
WORK_ITEM_POST_CREATE = _work_item_signal("post", "create")
WORK_ITEM_PRE_COMPLETE = _work_item_signal("pre", "complete")
WORK_ITEM_POST_COMPLETE = _work_item_signal("post", "complete")
WORK_ITEM_PRE_CANCEL = _work_item_signal("pre", "cancel")
WORK_ITEM_POST_CANCEL = _work_item_signal("post", "cancel")
WORK_ITEM_PRE_SKIP = _work_item_signal("pre", "skip")
WORK_ITEM_POST_SKIP = _work_item_signal("post", "skip")
WORK_ITEM_PRE_SUSPEND = _work_item_signal("pre", "suspend")
WORK_ITEM_POST_SUSPEND = _work_item_signal("post", "suspend")
WORK_ITEM_PRE_RESUME = _work_item_signal("pre", "resume")
WORK_ITEM_POST_RESUME = _work_item_signal("post", "resume")
WORK_ITEM_PRE_REDO = _work_item_signal("pre", "redo")
WORK_ITEM_POST_REDO = _work_item_signal("post", "redo")

# Cases
CASE_PRE_CREATE = _case_signal("pre", "create")
CASE_POST_CREATE = _case_signal("post", "create")
CASE_PRE_COMPLETE = _case_signal("pre", "complete")
CASE_POST_COMPLETE = _case_signal("post", "complete")
CASE_PRE_CANCEL = _case_signal("pre", "cancel")
CASE_POST_CANCEL = _case_signal("post", "cancel")
CASE_PRE_SUSPEND = _case_signal("pre", "suspend")
CASE_POST_SUSPEND = _case_signal("post", "suspend")
CASE_PRE_RESUME = _case_signal("pre", "resume")
CASE_POST_RESUME = _case_signal("post", "resume")
CASE_PRE_REOPEN = _case_signal("pre", "reopen")
CASE_POST_REOPEN = _case_signal("post", "reopen")

# Caluma's names
pre_create_work_item = WORK_ITEM_PRE_CREATE
post_create_work_item = WORK_ITEM_POST_CREATE
pre_complete_work_item = WORK_ITEM_PRE_COMPLETE
post_complete_work_item = WORK_ITEM_POST_COMPLETE
pre_cancel_work_item = WORK_ITEM_PRE_CANCEL
post_cancel_work_item = WORK_ITEM_POST_CANCEL
pre_skip_work_item = WORK_ITEM_PRE_SKIP
post_skip_work_item = WORK_ITEM_POST_SKIP
pre_suspend_work_item = WORK_ITEM_PRE_SUSPEND
post_suspend_work_item = WORK_ITEM_POST_SUSPEND
pre_resume_work_item = WORK_ITEM_PRE_RESUME
post_resume_work_item = WORK_ITEM_POST_RESUME
pre_redo_work_item = WORK_ITEM_PRE_REDO
post_redo_work_item = WORK_ITEM_POST_REDO
pre_create_case = CASE_PRE_CREATE
post_create_case = CASE_POST_CREATE
pre_complete_case = CASE_PRE_COMPLETE
post_complete_case = CASE_POST_COMPLETE
pre_cancel_case = CASE_PRE_CANCEL
post_cancel_case = CASE_POST_CANCEL
pre_suspend_case = CASE_PRE_SUSPEND
post_suspend_case = CASE_POST_SUSPEND
pre_resume_case = CASE_PRE_RESUME
post_resume_case = CASE_POST_RESUME
pre_reopen_case = CASE_PRE_REOPEN
post_reopen_case = CASE_POST_REOPEN

#: Every Caluma signal, work items first, in Caluma's order of actions.
CALUMA_SIGNALS: tuple[WorkflowSignal, ...] = (
    WORK_ITEM_PRE_CREATE,
    WORK_ITEM_POST_CREATE,
    WORK_ITEM_PRE_COMPLETE,
    WORK_ITEM_POST_COMPLETE,
    WORK_ITEM_PRE_CANCEL,
    WORK_ITEM_POST_CANCEL,
    WORK_ITEM_PRE_SKIP,
    WORK_ITEM_POST_SKIP,
    WORK_ITEM_PRE_SUSPEND,
    WORK_ITEM_POST_SUSPEND,
    WORK_ITEM_PRE_RESUME,
    WORK_ITEM_POST_RESUME,
    WORK_ITEM_PRE_REDO,
    WORK_ITEM_POST_REDO,
    CASE_PRE_CREATE,
    CASE_POST_CREATE,
    CASE_PRE_COMPLETE,
    CASE_POST_COMPLETE,
    CASE_PRE_CANCEL,
    CASE_POST_CANCEL,
    CASE_PRE_SUSPEND,
    CASE_POST_SUSPEND,
    CASE_PRE_RESUME,
    CASE_POST_RESUME,
    CASE_PRE_REOPEN,
    CASE_POST_REOPEN,
)

__all__ = [
    "CALUMA_SIGNALS",
    "CASE_ACTIONS",
    "CASE_POST_CANCEL",
    "CASE_POST_COMPLETE",
    "CASE_POST_CREATE",
    "CASE_POST_REOPEN",
    "CASE_POST_RESUME",
    "CASE_POST_SUSPEND",
    "CASE_PRE_CANCEL",
    "CASE_PRE_COMPLETE",
    "CASE_PRE_CREATE",
    "CASE_PRE_REOPEN",
    "CASE_PRE_RESUME",
    "CASE_PRE_SUSPEND",
    "WORK_ITEM_ACTIONS",
    "WORK_ITEM_POST_CANCEL",
    "WORK_ITEM_POST_COMPLETE",
    "WORK_ITEM_POST_CREATE",
    "WORK_ITEM_POST_REDO",
    "WORK_ITEM_POST_RESUME",
    "WORK_ITEM_POST_SKIP",
    "WORK_ITEM_POST_SUSPEND",
    "WORK_ITEM_PRE_CANCEL",
    "WORK_ITEM_PRE_COMPLETE",
    "WORK_ITEM_PRE_CREATE",
    "WORK_ITEM_PRE_REDO",
    "WORK_ITEM_PRE_RESUME",
    "WORK_ITEM_PRE_SKIP",
    "WORK_ITEM_PRE_SUSPEND",
    "post_cancel_case",
    "post_cancel_work_item",
    "post_complete_case",
    "post_complete_work_item",
    "post_create_case",
    "post_create_work_item",
    "post_redo_work_item",
    "post_reopen_case",
    "post_resume_case",
    "post_resume_work_item",
    "post_skip_work_item",
    "post_suspend_case",
    "post_suspend_work_item",
    "pre_cancel_case",
    "pre_cancel_work_item",
    "pre_complete_case",
    "pre_complete_work_item",
    "pre_create_case",
    "pre_create_work_item",
    "pre_redo_work_item",
    "pre_reopen_case",
    "pre_resume_case",
    "pre_resume_work_item",
    "pre_skip_work_item",
    "pre_suspend_case",
    "pre_suspend_work_item",
]
