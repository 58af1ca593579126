"""The Caluma snapshot rules without Caluma: stand-ins with the attributes of Caluma 12.x's
models (the real Caluma is tested in tests/integration/test_caluma.py)."""

from __future__ import annotations

import types
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from flowbus.producer.caluma import CalumaEventError
from flowbus.producer.caluma.snapshots import (
    case_snapshot,
    context_value,
    json_value,
    localized,
    user_info,
    work_item_snapshot,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)


class Model:
    """A Django model instance, as far as the snapshots look: ``_meta`` and ``pk``."""

    _meta = object()

    def __init__(self, pk: object, **attributes: object) -> None:
        self.pk = pk
        self.__dict__.update(attributes)


class LocalizedValue(dict):  # type: ignore[type-arg]
    """Like localized_fields' value: every language key, unset ones None."""


LocalizedValue.__module__ = "localized_fields.value"


def test_localized_keeps_only_the_languages_that_are_set() -> None:
    value = LocalizedValue({"en": "Review", "de": "Prüfen", "fr": None, "it": ""})
    assert localized(value) == {"en": "Review", "de": "Prüfen", "it": ""}
    assert localized(None) == {}


def test_work_item_and_case_snapshots_take_every_field() -> None:
    case_id, item_id, child_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    item = Model(
        item_id, case_id=case_id, task_id="review", status="completed",
        name=LocalizedValue({"en": "Review", "de": None}), description=LocalizedValue(),
        assigned_users=["ann"], addressed_groups=["clerks"], controlling_groups=[],
        deadline=NOW, previous_work_item_id=None, document_id=None, child_case_id=child_id,
        created_at=NOW, modified_at=NOW, created_by_user="ann", created_by_group="clerks",
        modified_by_user="bob", modified_by_group="building", closed_at=NOW,
        closed_by_user="bob", closed_by_group="building", meta={"a": 1},
    )  # fmt: skip
    snapshot = work_item_snapshot(item)
    assert snapshot.name == {"en": "Review"}
    assert snapshot.child_case_id == child_id
    assert (snapshot.modified_by_user, snapshot.modified_by_group) == ("bob", "building")
    assert snapshot.task_slug == "review"

    parent = Model(item_id)
    case = Model(
        case_id, family_id=None, workflow_id="permit", status="running", parent_work_item=parent,
        document_id=None, created_at=NOW, modified_at=NOW, created_by_user=None,
        created_by_group=None, modified_by_user="bob", modified_by_group="building",
        closed_at=None, closed_by_user=None, closed_by_group=None, meta={},
    )  # fmt: skip
    snapshot_case = case_snapshot(case)
    assert snapshot_case.family_id == case_id  # a root case is its own family
    assert snapshot_case.parent_work_item_id == item_id
    assert snapshot_case.modified_by_group == "building"


def test_user_info_carries_the_active_group() -> None:
    user = types.SimpleNamespace(username="ann", groups=["clerks", "admins"], group="clerks")
    assert user_info(user).model_dump() == {
        "username": "ann",
        "groups": ["clerks", "admins"],
        "group": "clerks",
    }
    assert user_info(None).username is None


def test_validated_data_model_instances_become_their_ids() -> None:
    case_id = uuid.uuid4()
    data = {
        "workflow": Model("permit"),
        "case": Model(case_id),
        "deadline": NOW,
        "fee": Decimal("1.50"),
        "groups": ("a", "b"),
        "name": LocalizedValue({"en": "x", "de": None}),
        "nested": {"ids": [Model(7)], "none": None},
    }
    assert json_value(data, "pre_create_case", "validated_data") == {
        "workflow": "permit",
        "case": str(case_id),
        "deadline": NOW.isoformat(),
        "fee": "1.50",
        "groups": ["a", "b"],
        "name": {"en": "x"},
        "nested": {"ids": [7], "none": None},
    }


def test_a_value_json_cannot_hold_raises_naming_the_path_not_the_value() -> None:
    class Secret:
        def __repr__(self) -> str:
            return "s3cr3t"

    with pytest.raises(CalumaEventError) as raised:
        json_value({"a": [1, Secret()]}, "post_complete_work_item", "context")
    assert raised.value.event == "post_complete_work_item"
    assert raised.value.where == "context.a[1]"
    assert "Secret" in str(raised.value)
    assert "s3cr3t" not in str(raised.value)


def test_caluma_serializer_context_is_not_client_data() -> None:
    serializer_context = {"request": object(), "info": object(), "mutation": type}
    assert context_value(serializer_context, "pre_reopen_case") is None
    assert context_value({"answer": "yes"}, "post_complete_work_item") == {"answer": "yes"}
    assert context_value(None, "post_complete_work_item") is None
