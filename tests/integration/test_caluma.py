"""The real Caluma (PyPI ``caluma`` 12.7.2, Python 3.12, PostgreSQL) with flowbus's receiver
module, through the outbox and the relay to a real flowbus worker.

The Caluma service runs in its own venv (``tests/caluma_service``: Caluma from PyPI plus this
checkout's flowbus, editable), built once by ``benchmarks/setup_peer_venv.py`` (from the
session's start: ``tests/support/peer_venvs.py``) with Python 3.12
(``FLOWBUS_TEST_PYTHON312``, ``python3.12`` on PATH, or pyenv's ``~/.pyenv/versions/3.12.*``;
without one the test is skipped, saying so) and cached. Its configuration is what the Caluma
page of ``docs/`` tells an operator to write. ``scenario.py`` drives Caluma's GraphQL schema
and Python API and records the database (raw SQL) around every step; the test then checks
what a worker on the topic received against it.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import peer_venvs
import pytest
from broker_helpers import read_to_end, running_worker
from test_producer import headers_of

from flowbus.catalog import caluma
from flowbus.catalog.models import CaseSnapshot, WorkItemSnapshot
from flowbus.testing import isolated_receivers

pytestmark = pytest.mark.usefixtures("flowbus_env")

ROOT = Path(__file__).resolve().parents[2]
SERVICE = ROOT / "tests" / "caluma_service"
CREATE_WORK_ITEM = "caluma.caluma_workflow.schema.CreateWorkItem"


@pytest.fixture(scope="session")
def caluma_python() -> Path:
    """The Caluma venv's interpreter (built the first time: a minute or two)."""
    python = peer_venvs.python("caluma_python")
    if python is None:
        pytest.skip(
            "Caluma 12.x needs Python 3.12: none found (set FLOWBUS_TEST_PYTHON312, put "
            "python3.12 on PATH, or `pyenv install 3.12`)"
        )
    return python


def documented_settings() -> dict[str, str]:
    """The lines docs/caluma.md tells an operator to add (``examples/caluma/caluma.env``)."""
    lines = (ROOT / "examples" / "caluma" / "caluma.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def caluma_settings(database_url: str) -> dict[str, str]:
    """Caluma's own settings (development mode) for the database at ``database_url``."""
    from urllib.parse import urlsplit

    db = urlsplit(database_url)
    return {
        "ENV": "development",
        "DJANGO_SETTINGS_MODULE": "caluma.settings.django",
        "DATABASE_HOST": db.hostname or "",
        "DATABASE_PORT": str(db.port or ""),
        "DATABASE_USER": db.username or "",
        "DATABASE_PASSWORD": db.password or "",
        "DATABASE_NAME": db.path.lstrip("/"),
    }


def service_env(kafka_env: dict[str, str], database_url: str, topic: str) -> dict[str, str]:
    """The Caluma service's environment: Caluma's own settings plus the documented lines
    (with this test's broker, registry and topic)."""
    documented = documented_settings()
    return {
        **documented,
        **kafka_env,
        **caluma_settings(database_url),
        "PYTHONPATH": str(SERVICE),
        # The documented receiver module, plus the test service's own veto.
        "EVENT_RECEIVER_MODULES": f"{documented['EVENT_RECEIVER_MODULES']},veto",
        "FLOWBUS_CALUMA_TOPIC": topic,
        "FLOWBUS_SCHEMA_AUTO_REGISTER": "true",
        "FLOWBUS_SERVICE_NAME": f"caluma-{uuid.uuid4().hex[:6]}",
    }


def run(python: Path, env: dict[str, str], *args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        [str(python), *args], cwd=SERVICE, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stderr


def event(name: str, case: str, task: str | None = None, sender: str | None = None) -> tuple:
    """One expected event: Caluma's event name, case label, task slug, sender."""
    return (name, case, task, sender or name)


def cascade(action: str) -> list[tuple]:
    """Suspending, resuming or cancelling case B, whose review work item has sub-case C."""
    return [
        event(f"pre_{action}_case", "B"),
        event(f"pre_{action}_work_item", "B", "review"),
        event(f"pre_{action}_case", "C"),
        event(f"pre_{action}_work_item", "C", "consult"),
        event(f"post_{action}_work_item", "C", "consult"),
        event(f"post_{action}_case", "C"),
        event(f"post_{action}_work_item", "B", "review"),
        event(f"post_{action}_case", "B"),
    ]


def start(case: str, task: str) -> list[tuple]:
    return [
        event("pre_create_case", case),
        event("post_create_case", case, sender="case_post_create"),
        event("post_create_work_item", case, task, "case_post_create"),
    ]


#: Each step of scenario.py and the events Caluma 12.7.2 emits for it, in order.
EXPECTED: dict[str, list[tuple]] = {
    "start A": start("A", "review"),
    "complete review A": [
        event("pre_complete_work_item", "A", "review"),
        event("post_complete_work_item", "A", "review"),
        event("post_create_work_item", "A", "decide", "post_complete_work_item"),
    ],
    "vetoed completion of decide A": [],
    "complete decide A": [
        event("pre_complete_work_item", "A", "decide"),
        event("post_complete_work_item", "A", "decide"),
        event("post_complete_case", "A", sender="post_complete_work_item"),
    ],
    "reopen A": [event("pre_reopen_case", "A"), event("post_reopen_case", "A")],
    "skip decide A": [
        event("pre_skip_work_item", "A", "decide"),
        event("post_skip_work_item", "A", "decide"),
        event("post_complete_case", "A", sender="post_skip_work_item"),
    ],
    "start B (Python API)": start("B", "review"),
    "start C (sub-workflow of B's review)": start("C", "consult"),
    "second consultation in C": [
        event("pre_create_work_item", "C", "consult", CREATE_WORK_ITEM),
        event("post_create_work_item", "C", "consult", CREATE_WORK_ITEM),
    ],
    "complete the first consultation of C (Python API)": [
        event("pre_complete_work_item", "C", "consult"),
        event("post_complete_work_item", "C", "consult"),
    ],
    "suspend B": cascade("suspend"),
    "resume B": cascade("resume"),
    "cancel B": cascade("cancel"),
}
ALICE = {"username": "alice", "groups": ["clerks", "admins"], "group": "clerks"}
BOB = {"username": "bob", "groups": ["building"], "group": "building"}
USERS = {
    "complete review A": BOB,
    "complete decide A": BOB,
    "skip decide A": BOB,
    "start C (sub-workflow of B's review)": BOB,
    "second consultation in C": BOB,
    "complete the first consultation of C (Python API)": BOB,
}


def caluma_name(event_type: str) -> str:
    """``org.flowbus.caluma.work_item.pre_complete.v1`` -> ``pre_complete_work_item``."""
    _, _, _, subject, action, _ = event_type.split(".")
    return f"{action}_{subject}"


def work_item_row(row: dict[str, Any]) -> WorkItemSnapshot:
    """A work item as the database holds it (hstore NULLs are unset languages)."""
    texts = {f: {k: v for k, v in (row[f] or {}).items() if v is not None} for f in ("name",
             "description")}  # fmt: skip
    return WorkItemSnapshot.model_validate({**row, **texts})


class Recorder:
    """A receiver on every Caluma signal, in the worker: what a consumer gets."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, Any, dict[str, Any]]] = []

    def __call__(self, sender: Any, *, signal: Any, metadata: Any, **data: Any) -> None:
        data.pop("from_event_bus")
        self.received.append((str(metadata.id), metadata.event_type, sender, data))


def test_caluma_events_reach_a_worker_exactly_committed_in_order_with_database_snapshots(
    kafka_stack, unique_topic, unique_group, caluma_python, postgres_url, tmp_path
):
    started = time.monotonic()
    topic = unique_topic(partitions=3)
    env = service_env(kafka_stack.env, postgres_url, topic)
    run(caluma_python, env, "-m", "django", "migrate", "--verbosity", "0")
    run(caluma_python, env, "-m", "flowbus.producer.caluma", "outbox", "migrate")
    output = tmp_path / "scenario.json"
    run(caluma_python, env, "scenario.py", str(output))
    scenario = json.loads(output.read_text())
    ids: dict[str, str] = scenario["ids"]
    label_of = {case_id: label for label, case_id in ids.items()}
    steps = {step["name"]: step for step in scenario["steps"]}
    assert list(steps) == list(EXPECTED)

    # The vetoed mutation failed and rolled back: Caluma's data and the outbox as before.
    vetoed = steps["vetoed completion of decide A"]
    assert any("vetoes this completion" in error for error in vetoed["errors"])
    assert vetoed["before"] == vetoed["after"]
    assert vetoed["outbox_ids"] == []
    for name, step in steps.items():
        if step is not vetoed:
            assert step["errors"] == [], name

    # Nothing is on the topic before the relay runs; then it publishes every committed row.
    assert read_to_end(topic) == []
    relay = run(caluma_python, env, "-m", "flowbus.producer.caluma", "outbox", "relay",
                "--drain", "--poll-interval", "0.2")  # fmt: skip
    assert "drained" in relay
    committed = [event_id for step in steps.values() for event_id in step["outbox_ids"]]
    assert len(committed) == sum(len(events) for events in EXPECTED.values())

    with isolated_receivers():
        recorder = Recorder()
        for signal in caluma.CALUMA_SIGNALS:
            signal.connect(recorder)
        with running_worker(topic, unique_group):
            deadline = time.monotonic() + 60
            while len(recorder.received) < len(committed) and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)  # anything beyond the committed events would arrive now
    received = {event_id: rest for event_id, *rest in recorder.received}
    # Exactly the committed events, each once: none of the vetoed mutation.
    assert sorted(received) == sorted(committed)
    assert len(recorder.received) == len(committed)
    keys = {headers_of(record)["ce_id"]: record.key().decode() for record in read_to_end(topic)}

    for name, step in steps.items():
        got = []
        for event_id in step["outbox_ids"]:
            event_type, sender, data = received[event_id]
            key = keys[event_id]
            case_label = label_of[key]  # every event is keyed by its case's id
            subject = data.get("work_item") or data.get("case")
            task = getattr(data.get("work_item"), "task_slug", None)
            if caluma_name(event_type) == "pre_create_work_item":
                task = data["validated_data"]["task"]
            got.append((caluma_name(event_type), case_label, task, sender))
            check_snapshots(name, step, caluma_name(event_type), data, key, subject)
        assert got == EXPECTED[name], name

    # Per case, the worker received the events in Caluma's order (commit order).
    for case_id in ids.values():
        in_order = [event_id for event_id in committed if keys[event_id] == case_id]
        arrived = [event_id for event_id, *_ in recorder.received if keys[event_id] == case_id]
        assert arrived == in_order

    spot_checks(steps, received, ids)
    assert time.monotonic() - started < 180


def check_snapshots(
    name: str, step: dict[str, Any], event: str, data: dict[str, Any], key: str, subject: Any
) -> None:
    """The event's data equals the database: before the step for a pre_ event, after it for
    a post_ event."""
    state = step["before"] if event.startswith("pre_") else step["after"]
    assert data["user"].model_dump() == USERS.get(name, ALICE), (name, event)
    if event == "pre_create_case":
        assert data["case"] is None
        assert str(data["case_id"]) == key  # the id the case got, not yet in the database
        assert key not in step["before"]["cases"] and key in step["after"]["cases"]
        assert data["validated_data"]["id"] == key
        return
    if event == "pre_create_work_item":
        assert data["work_item"] is None
        assert data["case"] == CaseSnapshot.model_validate(state["cases"][key])
        assert data["validated_data"]["addressed_groups"] == ["fire"]
        return
    if isinstance(subject, WorkItemSnapshot):
        held: Any = work_item_row(state["work_items"][str(subject.id)])
    else:
        held = CaseSnapshot.model_validate(state["cases"][str(subject.id)])
    sent, stored = subject.model_dump(), held.model_dump()
    differing = {
        field: (sent[field], stored[field]) for field in sent if sent[field] != stored[field]
    }
    assert differing == {}, (name, event)
    if event.endswith("reopen_case"):
        reopened = [work_item_row(state["work_items"][str(w.id)]) for w in data["work_items"]]
        assert data["work_items"] == reopened
        assert [w.task_slug for w in reopened] == ["decide"]


def spot_checks(steps: dict[str, Any], received: dict[str, Any], ids: dict[str, str]) -> None:
    """Fields the snapshot comparison alone would pass if both sides were empty."""

    def data_of(step: str, event: str) -> dict[str, Any]:
        found = [received[i][2] for i in steps[step]["outbox_ids"]
                 if caluma_name(received[i][0]) == event]  # fmt: skip
        return found[0]

    done = data_of("complete review A", "post_complete_work_item")["work_item"]
    assert (done.status, done.closed_by_user, done.closed_by_group) == ("completed", "bob",
                                                                         "building")  # fmt: skip
    assert (done.modified_by_user, done.modified_by_group) == ("bob", "building")
    assert done.name == {"en": "Review", "de": "Prüfen"}  # set languages only, of 99
    assert done.deadline is not None
    review_b = data_of("cancel B", "pre_cancel_work_item")["work_item"]
    assert str(review_b.child_case_id) == ids["C"]
    child = data_of("start C (sub-workflow of B's review)", "post_create_case")["case"]
    assert str(child.parent_work_item_id) == str(review_b.id)
    assert str(child.family_id) == ids["B"]
    assert data_of("reopen A", "post_reopen_case")["work_items"][0].status == "ready"
    assert data_of("reopen A", "pre_reopen_case")["work_items"][0].status == "completed"
    # reopenCase passes Caluma's serializer context, which carries no client data.
    assert data_of("reopen A", "pre_reopen_case")["context"] is None
    first = data_of("complete the first consultation of C (Python API)", "pre_complete_work_item")
    assert first["context"] == {"answer": "no objection"}
    assert data_of("start B (Python API)", "post_create_case")["case"].meta == {"via": "api"}
