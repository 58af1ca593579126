"""A real Django project (``tests/django_project``) in its own venv, on SQLite and PostgreSQL:
a view saves a model and sends a signal inside ``transaction.atomic()``. A rollback
publishes nothing on the real topic, a commit publishes the event.

The venv is Django from PyPI plus this checkout's flowbus (editable), built once by
``benchmarks/setup_peer_venv.py`` (from the session's start: ``tests/support/peer_venvs.py``)
and cached. Each transactional sink is a case of ``SINKS``: ``on_commit`` produces after the
commit; ``outbox`` writes the row on Django's connection (the ``flowbus.producer.outbox.django``
app), and nothing reaches the topic until the test runs ``manage.py flowbus_outbox_relay --drain``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import peer_venvs
import pytest
from test_producer import headers_of, read_records

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "tests" / "django_project"
EVENT_TYPE = "org.flowbus.permits.permit.submitted.v1"
#: The sinks tested through the project (FLOWBUS_PRODUCER_SINK values).
SINKS = ["on_commit", "outbox"]


@pytest.fixture(scope="session")
def django_python() -> Path:
    """The Django venv's interpreter (built the first time: about a minute)."""
    python = peer_venvs.python("django_python")
    assert python is not None  # built with this interpreter
    return python


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'permits.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))


def run_project(python: Path, env: dict[str, str], *requests: str) -> dict[str, Any]:
    run = subprocess.run(
        [str(python), "scenario.py", *requests],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    result["stderr"] = run.stderr
    return result


@pytest.mark.parametrize("sink", SINKS)
def test_rollback_publishes_nothing_and_commit_publishes_the_event(
    kafka_stack, unique_topic, django_python, database_url, sink
):
    topic = unique_topic()
    env = {
        **kafka_stack.env,
        "PERMITS_DATABASE_URL": database_url,
        "FLOWBUS_SCHEMA_AUTO_REGISTER": "true",
        "FLOWBUS_PRODUCER_SINK": sink,
        "FLOWBUS_PRODUCER_CONFIG": json.dumps({EVENT_TYPE: [{"topic": topic}]}),
        "FLOWBUS_SERVICE_NAME": f"permits-{uuid.uuid4().hex[:6]}",
    }
    result = run_project(django_python, env, "fail", "ok")
    failed, committed = result["requests"]
    assert (failed["status"], committed["status"]) == (500, 200)
    # Both requests sent their event in-process; both flushes left nothing behind.
    assert len(failed["event_ids"]) == len(committed["event_ids"]) == 1
    assert failed["undelivered"] == committed["undelivered"] == 0
    assert result["permits"] == ["permit 1"]  # the failed request's row was rolled back

    if sink == "outbox":
        # The committed event waits in the outbox (the rolled-back one went with its
        # transaction); the service produced nothing itself.
        assert result["outbox_pending"] == 1
        assert result["stats"]["sent"] == 0
        assert read_records(kafka_stack.bootstrap_servers, topic) == []
        relay = subprocess.run(
            [str(django_python), "manage.py", "flowbus_outbox_relay", "--drain",
             "--import", "permits.signals", "--poll-interval", "0.2"],
            cwd=PROJECT, env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert relay.returncode == 0, relay.stderr[-3000:]
        assert "drained" in relay.stderr
        # One table for both: flowbus's own CLI reads the row the Django relay marked sent.
        status = subprocess.run(
            [sys.executable, "-m", "flowbus", "outbox", "status", "--json",
             "--database", database_url],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout) == {
            "pending": 0,
            "oldest_age_seconds": None,
            "sent_kept": 1,
            "rejected": 0,
        }
    else:
        assert result["outbox_pending"] == 0
        assert result["stats"]["delivered"] == 1

    records = read_records(kafka_stack.bootstrap_servers, topic)
    # The failed request was flushed before the second began: its event would be first.
    assert [headers_of(r)["ce_id"] for r in records] == committed["event_ids"]
    (record,) = records
    assert headers_of(record)["ce_type"] == EVENT_TYPE
    assert headers_of(record)["ce_sender"] == "permits.views"
    assert result["stats"]["failed"] == result["stats"]["dropped"] == 0
