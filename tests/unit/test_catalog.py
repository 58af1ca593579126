"""The workflow event catalog: Caluma, Workflow Service and Mistral signals."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest

import flowbus.catalog as catalog
from flowbus import SenderValidationError, WorkflowSignal
from flowbus.avro import schema_from_signal
from flowbus.catalog import caluma, mistral, workflow_service
from flowbus.catalog.models import (
    CaseSnapshot,
    CaseStatus,
    MistralState,
    ResourceRef,
    TaskExecutionSnapshot,
    UserInfo,
    WorkflowExecutionSnapshot,
    WorkItemSnapshot,
    WorkItemStatus,
)
from flowbus.signals import EVENT_TYPE_PATTERN
from flowbus.testing import capture_events, isolated_receivers

NOW = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
ALL_CATALOG = (
    *caluma.CALUMA_SIGNALS,
    *workflow_service.WORKFLOW_SERVICE_SIGNALS,
    *mistral.MISTRAL_SIGNALS,
)
WORK_ITEM_ACTIONS = ["create", "complete", "cancel", "skip", "suspend", "resume", "redo"]
CASE_ACTIONS = ["create", "complete", "cancel", "suspend", "resume", "reopen"]


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with isolated_receivers():
        yield


def case_snapshot(case_id: uuid.UUID, **overrides: Any) -> CaseSnapshot:
    values: dict[str, Any] = {
        "id": case_id,
        "family_id": case_id,
        "workflow_slug": "building-permit",
        "status": CaseStatus.RUNNING,
        "created_at": NOW,
        "modified_at": NOW,
    }
    values.update(overrides)
    return CaseSnapshot(**values)


def work_item_snapshot(case_id: uuid.UUID, **overrides: Any) -> WorkItemSnapshot:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "case_id": case_id,
        "task_slug": "review",
        "status": WorkItemStatus.READY,
        "name": {"en": "Review", "de": "Prüfung"},
        "assigned_users": ["alice"],
        "addressed_groups": ["reviewers"],
        "controlling_groups": ["office"],
        "deadline": NOW,
        "created_at": NOW,
        "modified_at": NOW,
        "meta": {"priority": 2, "tags": ["x"]},
    }
    values.update(overrides)
    return WorkItemSnapshot(**values)


USER = UserInfo(username="alice", groups=["reviewers"])


# -- Caluma ----------------------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["pre", "post"])
@pytest.mark.parametrize("action", WORK_ITEM_ACTIONS)
def test_every_caluma_work_item_event_exists(phase: str, action: str) -> None:
    signal = getattr(caluma, f"{phase}_{action}_work_item")
    assert signal is getattr(caluma, f"WORK_ITEM_{phase.upper()}_{action.upper()}")
    assert signal is getattr(catalog, f"{phase}_{action}_work_item")
    assert signal.event_type == f"org.flowbus.caluma.work_item.{phase}_{action}.v1"
    assert WorkflowSignal.get_signal_by_type(signal.event_type) is signal
    if (phase, action) == ("pre", "create"):
        assert list(signal.data) == ["work_item", "case", "user", "context", "validated_data"]
        assert signal.key_path == "case.id"
    else:
        assert list(signal.data) == ["work_item", "user", "context"]
        assert signal.data["work_item"] is WorkItemSnapshot
        assert signal.key_path == "work_item.case_id"


@pytest.mark.parametrize("phase", ["pre", "post"])
@pytest.mark.parametrize("action", CASE_ACTIONS)
def test_every_caluma_case_event_exists(phase: str, action: str) -> None:
    signal = getattr(caluma, f"{phase}_{action}_case")
    assert signal is getattr(caluma, f"CASE_{phase.upper()}_{action.upper()}")
    assert signal is getattr(catalog, f"{phase}_{action}_case")
    assert signal.event_type == f"org.flowbus.caluma.case.{phase}_{action}.v1"
    assert signal.minor_version == 1
    expected = ["case", "user", "context"]
    if (phase, action) == ("pre", "create"):
        expected += ["validated_data", "case_id"]  # keyed by the id the new case gets
        assert signal.key_path == "case_id"
    else:
        assert signal.key_path == "case.id"
    if action == "reopen":
        expected.append("work_items")
    assert list(signal.data) == expected


def test_minor_version_1_fields_have_defaults_so_version_0_data_still_validates() -> None:
    reopened = caluma.pre_reopen_case.validate_data(
        case=case_snapshot(uuid.uuid4()), user={"username": "u"}, context=None
    )
    assert reopened["work_items"] == []
    assert reopened["user"].group is None
    created = caluma.pre_create_case.validate_data(
        case=None, user={"username": "u"}, context=None, validated_data={}
    )
    assert created["case_id"] is None
    assert caluma.pre_create_case.resolve_key(created) is None


def test_caluma_signal_count() -> None:
    assert len(caluma.CALUMA_SIGNALS) == 2 * (len(WORK_ITEM_ACTIONS) + len(CASE_ACTIONS))
    assert len(set(caluma.CALUMA_SIGNALS)) == len(caluma.CALUMA_SIGNALS)


def test_events_of_one_completion_share_the_case_key_and_keep_their_order() -> None:
    case_id = uuid.uuid4()
    done = work_item_snapshot(case_id, status=WorkItemStatus.COMPLETED, closed_at=NOW)
    following = work_item_snapshot(case_id, task_slug="decide", previous_work_item_id=done.id)
    case = case_snapshot(case_id, status=CaseStatus.COMPLETED)
    with capture_events() as events:
        caluma.post_complete_work_item.send_event(work_item=done, user=USER, context={})
        caluma.post_create_work_item.send_event(work_item=following, user=USER, context=None)
        caluma.post_complete_case.send_event(case=case, user=USER, context={"via": "api"})
    assert [e.signal for e in events] == [
        caluma.post_complete_work_item,
        caluma.post_create_work_item,
        caluma.post_complete_case,
    ]
    keys = {e.signal.resolve_key(e.data) for e in events}
    assert keys == {str(case_id)}


def test_pre_create_events_are_keyed_by_their_case() -> None:
    case_id = uuid.uuid4()
    data = caluma.pre_create_work_item.validate_data(
        work_item=None,
        case=case_snapshot(case_id),
        user=USER,
        context={},
        validated_data={"task": "review", "case": str(case_id)},
    )
    assert caluma.pre_create_work_item.resolve_key(data) == str(case_id)
    # a case that does not exist yet has no id, as in Caluma
    new_case = caluma.pre_create_case.validate_data(
        case=None, user=USER, context={}, validated_data={"workflow": "building-permit"}
    )
    assert caluma.pre_create_case.resolve_key(new_case) is None


def test_snapshots_validate_from_plain_json() -> None:
    case_id, item_id = uuid.uuid4(), uuid.uuid4()
    data = caluma.post_complete_work_item.validate_data(
        work_item={
            "id": str(item_id),
            "case_id": str(case_id),
            "task_slug": "review",
            "status": "completed",
            "created_at": "2024-03-01T09:30:00Z",
            "modified_at": "2024-03-01T09:30:00+00:00",
        },
        user={"username": None},
        context={"anything": [1, "two", None]},
    )
    item = data["work_item"]
    assert item.id == item_id and item.status is WorkItemStatus.COMPLETED
    assert item.created_at == NOW
    assert item.assigned_users == [] and item.meta == {}
    assert data["user"] == UserInfo(username=None, groups=[])


def test_unknown_status_is_rejected_naming_the_argument() -> None:
    with pytest.raises(SenderValidationError, match=r"argument 'case'.*status"):
        caluma.post_cancel_case.validate_data(
            case={**case_snapshot(uuid.uuid4()).model_dump(), "status": "archived"},
            user=USER,
            context={},
        )


def test_snapshots_are_frozen_and_compare_by_value() -> None:
    case_id = uuid.uuid4()
    item = work_item_snapshot(case_id)
    copy = WorkItemSnapshot.model_validate(item.model_dump(mode="json"))
    assert copy == item
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        item.task_slug = "other"  # type: ignore[misc]


# -- Workflow Service ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signal", "action"),
    [
        (workflow_service.RESOURCE_CREATED, "created"),
        (workflow_service.RESOURCE_UPDATED, "updated"),
        (workflow_service.RESOURCE_SOFT_DELETED, "soft_deleted"),
        (workflow_service.RESOURCE_HARD_DELETED, "hard_deleted"),
    ],
)
def test_resource_events(signal: WorkflowSignal, action: str) -> None:
    assert signal.event_type == f"org.flowbus.workflow_service.resource.{action}.v1"
    assert list(signal.data) == ["resource", "user", "request_id"]
    data = signal.validate_data(
        resource={"type": "workflow", "id": "wf-1"}, user=USER, request_id=None
    )
    assert data["resource"] == ResourceRef(type="workflow", id="wf-1")
    assert signal.resolve_key(data) == "wf-1"


def test_user_input_event() -> None:
    signal = workflow_service.USER_INPUT_REQUESTED
    data = signal.validate_data(
        notification_id="n-7",
        url="https://workflows.example/inputs/n-7",
        input_params={"approve": {"type": "boolean"}},
    )
    assert signal.resolve_key(data) == "n-7"
    assert data["input_params"] == {"approve": {"type": "boolean"}}


# -- Mistral ---------------------------------------------------------------------------------


@pytest.mark.parametrize("event", sorted(mistral.MISTRAL_EVENTS))
def test_every_mistral_notification_has_a_signal(event: str) -> None:
    signal = mistral.signal_for_mistral_event(event)
    kind, _, action = event.partition("_")
    subject = "workflow_execution" if kind == "WORKFLOW" else "task_execution"
    assert signal.event_type == f"org.flowbus.mistral.{subject}.{action.lower()}.v1"


def test_unknown_mistral_event_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="WORKFLOW_EXPLODED"):
        mistral.signal_for_mistral_event("WORKFLOW_EXPLODED")


def test_execution_and_task_events_of_one_execution_share_a_key() -> None:
    execution = WorkflowExecutionSnapshot(
        id="ex-1", workflow_name="deploy", state=MistralState.ERROR, error="task failed"
    )
    task = TaskExecutionSnapshot(
        id="t-1",
        name="build",
        workflow_execution_id="ex-1",
        workflow_name="deploy",
        state=MistralState.ERROR,
        error="exit 1",
    )
    failed = mistral.WORKFLOW_EXECUTION_FAILED
    task_failed = mistral.TASK_EXECUTION_FAILED
    assert failed.resolve_key(failed.validate_data(execution=execution)) == "ex-1"
    assert task_failed.resolve_key(task_failed.validate_data(task=task)) == "ex-1"


def test_mistral_state_from_notification_payload() -> None:
    data = mistral.TASK_EXECUTION_SUCCEEDED.validate_data(
        task={
            "id": "t-2",
            "name": "notify",
            "workflow_execution_id": "ex-2",
            "workflow_name": "deploy",
            "state": "SUCCESS",
        }
    )
    assert data["task"].state is MistralState.SUCCESS
    assert data["task"].error is None


# -- whole catalog ---------------------------------------------------------------------------


@pytest.mark.parametrize("signal", ALL_CATALOG, ids=lambda s: s.event_type)
def test_every_catalog_signal_travels(signal: WorkflowSignal) -> None:
    assert EVENT_TYPE_PATTERN.match(signal.event_type)
    assert signal.key_path is not None
    signal.validate_key_path(signal.key_path)
    schema = schema_from_signal(signal)
    assert schema["name"] == signal.event_type
    assert [f["name"] for f in schema["fields"]] == list(signal.data)
    assert signal.doc


def test_catalog_package_reexports_everything() -> None:
    for name in (*caluma.__all__, *mistral.__all__, *workflow_service.__all__):
        assert getattr(catalog, name) is getattr(
            next(m for m in (caluma, mistral, workflow_service) if name in m.__all__), name
        )
    assert catalog.WorkItemSnapshot is WorkItemSnapshot


def _sample_data() -> list[tuple[WorkflowSignal, dict[str, Any]]]:
    case_id = uuid.uuid4()
    case = case_snapshot(case_id, meta={"nested": {"list": [1, None, "x", 1.5]}})
    item = work_item_snapshot(case_id)
    task = TaskExecutionSnapshot(
        id="t-1",
        name="build",
        workflow_execution_id="ex-1",
        workflow_name="deploy",
        state=MistralState.ERROR,
        error="exit 1",
    )
    return [
        (caluma.post_complete_work_item, {"work_item": item, "user": USER, "context": [0, ""]}),
        (
            caluma.pre_create_work_item,
            {
                "work_item": None,
                "case": case,
                "user": USER,
                "context": None,
                "validated_data": {"task": "review"},
            },
        ),
        (
            caluma.pre_create_case,
            {"case": None, "user": UserInfo(username=None), "context": {}, "validated_data": {}},
        ),
        (caluma.post_reopen_case, {"case": case, "user": USER, "context": {"why": "appeal"}}),
        (
            workflow_service.RESOURCE_UPDATED,
            {"resource": ResourceRef(type="workflow", id="wf-1"), "user": USER, "request_id": "r"},
        ),
        (
            workflow_service.USER_INPUT_REQUESTED,
            {"notification_id": "n-1", "url": "https://x.example/n-1", "input_params": {}},
        ),
        (mistral.TASK_EXECUTION_FAILED, {"task": task}),
    ]


@pytest.mark.parametrize(
    ("signal", "kwargs"), _sample_data(), ids=lambda v: getattr(v, "event_type", "")
)
def test_catalog_data_survives_avro_and_revalidation(
    signal: WorkflowSignal, kwargs: dict[str, Any]
) -> None:
    from flowbus.avro.codec import EventCodec
    from flowbus.avro.schema import analyze_data

    data = signal.validate_data(**kwargs)
    codec = EventCodec(analyze_data(signal.event_type, signal.data, doc=signal.doc))
    received = signal.validate_data(**codec.decode(codec.encode(data)))
    assert received == data
    assert signal.resolve_key(received) == signal.resolve_key(data)


def _status_enum(schema: dict) -> dict:
    [work_item] = [f for f in schema["fields"] if f["name"] == "work_item"]
    [status] = [f for f in work_item["type"]["fields"] if f["name"] == "status"]
    return status["type"]


def test_a_status_added_later_stays_full_transitive_compatible():
    """The catalog's enums carry an Avro default, so a new state is a compatible change."""
    import copy

    from flowbus.avro.compat import CompatibilityMode, check_mode
    from flowbus.catalog import caluma

    released = copy.deepcopy(schema_from_signal(caluma.WORK_ITEM_POST_COMPLETE))
    evolved = copy.deepcopy(released)
    assert _status_enum(released)["default"] == "unknown"
    _status_enum(evolved)["symbols"].append("escalated")
    assert check_mode([released, evolved], CompatibilityMode.FULL_TRANSITIVE) == []

    # The same change without the default: old readers could not read the new state.
    for schema in (released, evolved):
        del _status_enum(schema)["default"]
    assert check_mode([released, evolved], CompatibilityMode.FULL_TRANSITIVE) != []
