"""Caluma's objects as the catalog's data: work items, cases, users, free-form values.

Duck-typed on Caluma 12.x's models (no import of Caluma here). The rules:

- ``name``/``description`` are ``LocalizedField`` values carrying every ``LANGUAGES`` key;
  the snapshot keeps only the languages that are set (not ``None``).
- ``validated_data`` and ``context`` become JSON: a model instance becomes its primary key
  (a workflow its slug, a case its id), datetimes ISO strings, UUIDs and decimals strings,
  querysets and tuples lists. Anything else raises :class:`CalumaEventError` naming the
  path and the type, never the value.
- ``context`` that is Caluma's own serializer context (``reopenCase`` passes it in Caluma
  12.x instead of the client's context) carries no client data: it becomes ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import JsonValue

from flowbus.catalog.models import CaseSnapshot, UserInfo, WorkItemSnapshot

from . import CalumaEventError

__all__ = ["case_snapshot", "context_value", "json_value", "localized", "user_info",
           "work_item_snapshot"]  # fmt: skip

_JSON_SCALARS = (str, int, float, bool, type(None))


def localized(value: Mapping[str, str | None] | None) -> dict[str, str]:
    """The languages of a ``LocalizedField`` value that are set."""
    return {lang: text for lang, text in (value or {}).items() if text is not None}


def work_item_snapshot(work_item: Any) -> WorkItemSnapshot:
    """A ``caluma_workflow.models.WorkItem`` as the catalog's snapshot."""
    return WorkItemSnapshot(
        id=work_item.pk,
        case_id=work_item.case_id,
        task_slug=work_item.task_id,
        status=work_item.status,
        name=localized(work_item.name),
        description=localized(work_item.description),
        assigned_users=list(work_item.assigned_users or ()),
        addressed_groups=list(work_item.addressed_groups or ()),
        controlling_groups=list(work_item.controlling_groups or ()),
        deadline=work_item.deadline,
        previous_work_item_id=work_item.previous_work_item_id,
        document_id=work_item.document_id,
        child_case_id=work_item.child_case_id,
        **_tracked(work_item),
    )


def case_snapshot(case: Any) -> CaseSnapshot:
    """A ``caluma_workflow.models.Case`` as the catalog's snapshot.

    ``parent_work_item_id`` reads the reverse one-to-one relation (one query, then cached
    on the instance)."""
    parent = getattr(case, "parent_work_item", None)  # Django raises an AttributeError
    return CaseSnapshot(
        id=case.pk,
        family_id=case.family_id or case.pk,
        workflow_slug=case.workflow_id,
        status=case.status,
        parent_work_item_id=None if parent is None else parent.pk,
        document_id=case.document_id,
        **_tracked(case),
    )


#: Fields of Caluma's ``BaseModel`` and of the closing fields, the same in both snapshots.
_TRACKED = (
    "created_at", "modified_at", "created_by_user", "created_by_group", "modified_by_user",
    "modified_by_group", "closed_at", "closed_by_user", "closed_by_group", "meta",
)  # fmt: skip


def _tracked(instance: Any) -> dict[str, Any]:
    return {name: getattr(instance, name) for name in _TRACKED}


def user_info(user: Any) -> UserInfo:
    """A Caluma user (``caluma_user.models.BaseUser``): name, groups and active group."""
    if user is None:
        return UserInfo(username=None)
    return UserInfo(
        username=getattr(user, "username", None),
        groups=list(getattr(user, "groups", None) or ()),
        group=getattr(user, "group", None),
    )


def context_value(context: Any, event: str) -> JsonValue:
    """Caluma's ``context`` argument as JSON (see the module docstring)."""
    if isinstance(context, Mapping) and "request" in context and "info" in context:
        return None  # the serializer's context, not the client's
    return json_value(context, event, "context")


def json_value(value: Any, event: str, where: str) -> JsonValue:
    """``value`` as JSON; raises :class:`CalumaEventError` for what JSON cannot hold."""
    if isinstance(value, _JSON_SCALARS):
        return value
    if _is_localized(value):
        return dict(localized(value))
    if isinstance(value, Mapping):
        result: dict[str, JsonValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise CalumaEventError(event, where, f"a key of type {type(key).__name__}")
            result[key] = json_value(item, event, f"{where}.{key}")
        return result
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    if hasattr(value, "_meta") and hasattr(value, "pk"):  # a Django model instance
        return json_value(value.pk, event, where)
    if isinstance(value, list | tuple | set | frozenset) or _is_queryset(value):
        return [json_value(item, event, f"{where}[{i}]") for i, item in enumerate(value)]
    raise CalumaEventError(event, where, f"cannot carry a {type(value).__name__} as JSON")


def _is_localized(value: Any) -> bool:
    return isinstance(value, dict) and type(value).__module__.startswith("localized_fields")


def _is_queryset(value: Any) -> bool:
    return type(value).__module__.startswith("django.db.models") and hasattr(value, "model")
