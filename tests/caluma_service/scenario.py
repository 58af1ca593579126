"""The Caluma scenario of ``tests/integration/test_caluma.py``, run in the Caluma venv.

Usage: python scenario.py <output.json>, with Caluma's environment (``DATABASE_*``,
``EVENT_RECEIVER_MODULES=flowbus.producer.caluma.receivers,veto``) on a migrated database.

Runs Caluma's real GraphQL schema and Python API step by step. Around each step it reads
every case and work item with raw SQL (not through flowbus, not through the ORM's objects)
and the ids of the outbox rows the step left, and writes them all to ``output.json``:
``{"ids": {label: id}, "steps": [{"name", "errors", "before", "after", "outbox_ids"}]}``.
"""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from typing import Any
from uuid import UUID

import django

django.setup()

from caluma.caluma_user.models import OIDCUser  # noqa: E402
from caluma.caluma_workflow import api, models  # noqa: E402
from caluma.schema import schema  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import RequestFactory  # noqa: E402
from graphql_relay import from_global_id  # noqa: E402

ALICE = OIDCUser(token="alice", claims={"sub": "alice", "caluma_groups": ["clerks", "admins"]})
BOB = OIDCUser(token="bob", claims={"sub": "bob", "caluma_groups": ["building"]})
ids: dict[str, str] = {}
steps: list[dict[str, Any]] = []

WORK_ITEMS = """SELECT id, case_id, task_id AS task_slug, status,
    hstore_to_json(name) AS name, hstore_to_json(description) AS description,
    assigned_users, addressed_groups, controlling_groups, deadline, previous_work_item_id,
    document_id, child_case_id, created_at, modified_at, created_by_user, created_by_group,
    modified_by_user, modified_by_group, closed_at, closed_by_user, closed_by_group, meta
    FROM caluma_workflow_workitem"""
CASES = """SELECT c.id, c.family_id, c.workflow_id AS workflow_slug, c.status,
    (SELECT w.id FROM caluma_workflow_workitem w WHERE w.child_case_id = c.id)
        AS parent_work_item_id,
    c.document_id, c.created_at, c.modified_at, c.created_by_user, c.created_by_group,
    c.modified_by_user, c.modified_by_group, c.closed_at, c.closed_by_user,
    c.closed_by_group, c.meta
    FROM caluma_workflow_case c"""


#: Columns holding JSON; Django's psycopg setup leaves jsonb as text for its fields to parse.
JSON_COLUMNS = ("meta", "name", "description")


def rows(sql: str) -> dict[str, dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        names = [column.name for column in cursor.description]
        found = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    for row in found:
        for column in JSON_COLUMNS:
            if isinstance(row.get(column), str):
                row[column] = json.loads(row[column])
    return {str(row["id"]): row for row in found}


def database_state() -> dict[str, Any]:
    return {"work_items": rows(WORK_ITEMS), "cases": rows(CASES)}


def last_outbox_seq() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(seq), 0) FROM flowbus_outbox")
        return int(cursor.fetchone()[0])


def outbox_ids_after(seq: int) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM flowbus_outbox WHERE seq > %s ORDER BY seq", [seq])
        return [row[0] for row in cursor.fetchall()]


def step(name: str, action: Any) -> Any:
    before, seq = database_state(), last_outbox_seq()
    errors: list[str] = []
    result = action(errors)
    steps.append(
        {
            "name": name,
            "errors": errors,
            "before": before,
            "after": database_state(),
            "outbox_ids": outbox_ids_after(seq),
        }
    )
    return result


def graphql(user: OIDCUser, query: str, errors: list[str], **variables: Any) -> dict[str, Any]:
    request = RequestFactory().post("/graphql")
    request.user = user
    result = schema.execute(query, variable_values=variables, context_value=request)
    errors.extend(str(error) for error in result.errors or [])
    return result.data or {}


def pk(global_id: str) -> str:
    return from_global_id(global_id)[1]


def ready_work_item(case_label: str, task: str) -> str:
    found = models.WorkItem.objects.get(
        case_id=ids[case_label], task_id=task, status=models.WorkItem.STATUS_READY
    )
    return str(found.pk)


def configure() -> None:
    """The workflows (configuration, before any event): permit = review -> decide;
    consultation = one multiple-instance task."""
    review = models.Task.objects.create(
        slug="review",
        name={"en": "Review", "de": "Prüfen"},
        description={"en": "Check the application"},
        type=models.Task.TYPE_SIMPLE,
        address_groups='["clerks"]',
        lead_time=86_400,
        meta={"stage": 1},
    )
    decide = models.Task.objects.create(
        slug="decide", name={"en": "Decide"}, type=models.Task.TYPE_SIMPLE
    )
    consult = models.Task.objects.create(
        slug="consult",
        name={"en": "Consult", "fr": "Consulter"},
        type=models.Task.TYPE_SIMPLE,
        address_groups='["building"]',
        is_multiple_instance=True,
    )
    permit = models.Workflow.objects.create(slug="permit", name={"en": "Permit"})
    permit.start_tasks.add(review)
    flow = models.Flow.objects.create(next="'decide'|task")
    models.TaskFlow.objects.create(workflow=permit, task=review, flow=flow)
    models.TaskFlow.objects.create(workflow=permit, task=decide, flow=None)
    consultation = models.Workflow.objects.create(slug="consultation", name={"en": "Consult"})
    consultation.start_tasks.add(consult)


SAVE_CASE = """mutation($workflow: ID!, $meta: JSONString, $parent: ID) {
  saveCase(input: {workflow: $workflow, meta: $meta, parentWorkItem: $parent}) {
    case { id } } }"""
COMPLETE = """mutation($id: ID!, $context: JSONString) {
  completeWorkItem(input: {id: $id, context: $context}) { workItem { id } } }"""
SKIP = "mutation($id: ID!) { skipWorkItem(input: {id: $id}) { workItem { id } } }"
REOPEN = """mutation($id: ID!, $items: [ID]!) {
  reopenCase(input: {id: $id, workItems: $items}) { case { id } } }"""
CREATE_WORK_ITEM = """mutation($case: ID!, $task: ID!, $groups: [String]) {
  createWorkItem(input: {case: $case, multipleInstanceTask: $task, addressedGroups: $groups})
  { workItem { id } } }"""
CASE_MUTATION = "mutation($id: ID!) {{ {name}(input: {{id: $id}}) {{ case {{ id }} }} }}"


def start_a(errors: list[str]) -> None:
    data = graphql(ALICE, SAVE_CASE, errors, workflow="permit", meta=json.dumps({"permit": 1}))
    ids["A"] = pk(data["saveCase"]["case"]["id"])


def complete(case: str, task: str, user: OIDCUser, **context: Any) -> Any:
    def run(errors: list[str]) -> None:
        variables = {"context": json.dumps(context)} if context else {}
        graphql(user, COMPLETE, errors, id=ready_work_item(case, task), **variables)

    return run


def reopen_a(errors: list[str]) -> None:
    decide = models.WorkItem.objects.get(case_id=ids["A"], task_id="decide")
    graphql(ALICE, REOPEN, errors, id=ids["A"], items=[str(decide.pk)])


def skip_decide_a(errors: list[str]) -> None:
    graphql(BOB, SKIP, errors, id=ready_work_item("A", "decide"))


def start_b(errors: list[str]) -> None:
    with transaction.atomic():
        case = api.start_case(
            workflow=models.Workflow.objects.get(pk="permit"),
            user=ALICE,
            meta={"via": "api"},
            context={"source": "python api"},
        )
    ids["B"] = str(case.pk)


def start_c(errors: list[str]) -> None:
    parent = ready_work_item("B", "review")
    data = graphql(BOB, SAVE_CASE, errors, workflow="consultation", parent=parent)
    ids["C"] = pk(data["saveCase"]["case"]["id"])


def second_consultation(errors: list[str]) -> None:
    graphql(BOB, CREATE_WORK_ITEM, errors, case=ids["C"], task="consult", groups=["fire"])


def complete_first_consultation(errors: list[str]) -> None:
    first = models.WorkItem.objects.filter(case_id=ids["C"], task_id="consult").earliest(
        "created_at"
    )
    with transaction.atomic():
        api.complete_work_item(first, user=BOB, context={"answer": "no objection"})


def case_mutation(name: str, case: str) -> Any:
    def run(errors: list[str]) -> None:
        graphql(ALICE, CASE_MUTATION.format(name=name), errors, id=ids[case])

    return run


def main(output: str) -> None:
    configure()
    step("start A", start_a)
    step("complete review A", complete("A", "review", BOB))
    step("vetoed completion of decide A", complete("A", "decide", BOB, veto=True))
    step("complete decide A", complete("A", "decide", BOB))
    step("reopen A", reopen_a)
    step("skip decide A", skip_decide_a)
    step("start B (Python API)", start_b)
    step("start C (sub-workflow of B's review)", start_c)
    step("second consultation in C", second_consultation)
    step("complete the first consultation of C (Python API)", complete_first_consultation)
    step("suspend B", case_mutation("suspendCase", "B"))
    step("resume B", case_mutation("resumeCase", "B"))
    step("cancel B", case_mutation("cancelCase", "B"))
    with open(output, "w") as out:
        json.dump({"ids": ids, "steps": steps}, out, default=_json_default)


def _json_default(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(type(value).__name__)


if __name__ == "__main__":
    main(sys.argv[1])
