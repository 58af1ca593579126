"""How the command line fails: fast and in a line or two, with the exit code of the table.

Every command runs as a subprocess (``.venv/bin/flowbus``), as a user would run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from flowbus.catalog import post_complete_work_item
from flowbus.dev.devstack import free_port
from flowbus.exit_codes import ExitCode
from flowbus.metadata import EventMetadata
from flowbus.producer.event_producer import EventProducer
from flowbus.settings import FlowbusSettings

FLOWBUS = str(Path(sys.executable).with_name("flowbus"))
CLOSED = "127.0.0.1:1"  # nothing listens on port 1
EVENT_TYPE = post_complete_work_item.event_type
#: Against a closed port every command ends within this many seconds (the issue's bound).
FAIL_FAST_S = 15


def work_item_data(case_id: uuid.UUID | None = None) -> dict:
    """Valid data of ``post_complete_work_item``."""
    return {
        "work_item": {
            "id": str(uuid.uuid4()),
            "case_id": str(case_id or uuid.uuid4()),
            "task_slug": "review",
            "status": "completed",
            "created_at": "2025-01-31T14:00:00Z",
            "modified_at": "2025-01-31T14:00:00Z",
        },
        "user": {"username": "alice"},
        "context": {},
    }


#: Commands that meet the broker first; adding one (``tail``, ``doctor``) is one line.
BROKER_COMMANDS: dict[str, list[str]] = {
    "produce": ["produce", EVENT_TYPE, "--data", json.dumps(work_item_data()), "--topic", "t"],
    "consume": ["consume", "--topic", "t", "--group", "g"],
    "dlq list": ["dlq", "list", "--source", "t"],
    "replay": ["replay", "--group", "g", "--topic", "t", "--to-earliest"],
    "webhooks serve": ["webhooks", "serve", "--topic", "t", "--group", "g"],
    "tail": ["tail", "t"],
}
# `flowbus doctor` says it in a line of its own format (a failed check, then the checks
# that passed, in one line): its closed-port test, the same bounds, is in test_doctor.py.


@pytest.fixture
def user_env(tmp_path: Path) -> dict[str, str]:
    """A user's environment: no flowbus settings but the state directory."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FLOWBUS_", "KAFKA_", "SCHEMA_REGISTRY", "PYTHONPATH"))
    }
    return {**env, "FLOWBUS_STATE_DIR": str(tmp_path / "state")}


def flowbus(
    *args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = FAIL_FAST_S
) -> tuple[int, list[str]]:
    """Run ``flowbus ARGS``; its exit status and its non-empty output lines (both streams)."""
    done = subprocess.run(
        [FLOWBUS, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return done.returncode, lines


@pytest.mark.parametrize("command", BROKER_COMMANDS.values(), ids=BROKER_COMMANDS.keys())
def test_a_closed_broker_port_fails_fast_in_three_lines(command, user_env):
    code, lines = flowbus(*command, env={**user_env, "KAFKA_BOOTSTRAP_SERVERS": CLOSED})

    output = "\n".join(lines)
    assert code == ExitCode.FAILURE, output
    assert len(lines) <= 3, output
    [named] = [line for line in lines if "KAFKA_BOOTSTRAP_SERVERS" in line]
    assert named.startswith("Error: Kafka broker unreachable (KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1)")
    assert "Connection refused" in named and "`flowbus dev status`" in named
    assert "Traceback" not in output


def test_healthz_says_degraded_while_the_broker_does_not_answer(user_env):
    port = free_port()
    env = {**user_env, "KAFKA_BOOTSTRAP_SERVERS": CLOSED}
    args = ["webhooks", "serve", "--topic", "t", "--group", "g", "--metrics-port", str(port)]
    process = subprocess.Popen([FLOWBUS, *args], env=env, stderr=subprocess.PIPE, text=True)
    try:
        health = None
        deadline = time.monotonic() + FAIL_FAST_S
        while health is None and process.poll() is None and time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            except httpx.TransportError:
                time.sleep(0.1)
        _, stderr = process.communicate(timeout=FAIL_FAST_S)
    finally:
        process.kill()
    assert health is not None, stderr
    assert health.status_code == 200
    assert health.text.startswith("degraded\n")
    assert "waiting for the Kafka broker (KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1)" in health.text
    assert process.returncode == ExitCode.FAILURE


def test_an_unreachable_registry_is_named(kafka_stack, unique_topic, user_env):
    env = {
        **user_env,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_stack.bootstrap_servers,
        "SCHEMA_REGISTRY_URL": "http://127.0.0.1:1",
        "FLOWBUS_SCHEMA_AUTO_REGISTER": "true",
    }
    data = json.dumps(work_item_data())
    code, lines = flowbus("produce", EVENT_TYPE, "--data", data, "--topic", unique_topic(), env=env)

    output = "\n".join(lines)
    assert code == ExitCode.FAILURE, output
    assert len(lines) <= 3, output
    [named] = [line for line in lines if "SCHEMA_REGISTRY_URL" in line]
    assert named.startswith("Error: "), output
    assert "schema registry unreachable (SCHEMA_REGISTRY_URL=http://127.0.0.1:1)" in named
    assert "`flowbus dev status`" in named
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("variable", "command"),
    [
        ("FLOWBUS_RECEIVER_MODULES", ["consume", "--topic", "t", "--group", "g"]),
        ("FLOWBUS_WEBHOOKS_SSRF_ALLOWLIST", ["webhooks", "check-url", "https://example.com/"]),
    ],
)
def test_a_setting_that_is_not_json_is_one_line_naming_it(variable, command, user_env):
    env = {**user_env, "KAFKA_BOOTSTRAP_SERVERS": CLOSED, variable: "billing.receivers"}
    code, lines = flowbus(*command, env=env)

    assert code == ExitCode.BAD_INPUT, lines
    assert lines == [f"Error: {variable}: not valid JSON (Expecting value: line 1 column 1 "
                     "(char 0)); expected a JSON list"]  # fmt: skip


def test_a_missing_data_file_is_one_line(user_env, tmp_path):
    missing = tmp_path / "case.json"
    env = {**user_env, "KAFKA_BOOTSTRAP_SERVERS": CLOSED}
    code, lines = flowbus("produce", EVENT_TYPE, "--data", f"@{missing}", "--topic", "t", env=env)

    assert code == ExitCode.BAD_INPUT, lines
    assert lines == [
        f"Error: Invalid value for --data: cannot read '{missing}': No such file or directory"
    ]


def test_a_validation_error_names_every_bad_argument(user_env):
    data = work_item_data()
    data["work_item"]["status"] = "exploded"
    del data["user"]
    env = {**user_env, "KAFKA_BOOTSTRAP_SERVERS": CLOSED}
    code, lines = flowbus(
        "produce", EVENT_TYPE, "--data", json.dumps(data), "--topic", "t", env=env
    )

    assert code == ExitCode.BAD_INPUT, lines
    [line] = lines
    assert line.startswith(f"Error: cannot send '{EVENT_TYPE}': ")
    assert "argument 'user': missing (required: work_item, user, context)" in line
    assert "argument 'work_item': expected WorkItemSnapshot: status: Input should be" in line
    assert "exploded" not in line  # values are never echoed


def test_receivers_are_imported_from_the_current_directory(
    kafka_stack, unique_topic, unique_group, user_env, tmp_path
):
    topic = unique_topic()
    handled = tmp_path / "handled.txt"
    package = tmp_path / "billing"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "receivers.py").write_text(
        "from pathlib import Path\n"
        "from flowbus import on\n"
        "from flowbus.catalog import post_complete_work_item\n\n\n"
        "@on(post_complete_work_item)\n"
        "def record(sender, metadata, **kwargs):\n"
        f"    Path({str(handled)!r}).write_text(str(metadata.id))\n"
    )
    settings = FlowbusSettings(  # no registry, like the worker's environment below
        kafka_bootstrap_servers=kafka_stack.bootstrap_servers, schema_registry_url=None
    )
    metadata: EventMetadata = post_complete_work_item.generate_signal_metadata()
    with EventProducer(settings=settings, synchronous=True, install_exit_handlers=False) as p:
        data = post_complete_work_item.validate_data(**work_item_data())
        p.send(post_complete_work_item, metadata, data, topic=topic)
    env = {**user_env, "KAFKA_BOOTSTRAP_SERVERS": kafka_stack.bootstrap_servers}
    args = ["consume", "--topic", topic, "--group", unique_group]
    args += ["--receivers", "billing.receivers", "--max-messages", "1"]

    code, lines = flowbus(*args, env=env, cwd=tmp_path, timeout=120)

    assert code == ExitCode.SUCCESS, lines
    assert handled.read_text() == str(metadata.id)
    assert "PYTHONPATH" not in env
    assert _committed(kafka_stack.bootstrap_servers, unique_group, topic) == 1


def _committed(bootstrap: str, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        [partition] = consumer.committed([TopicPartition(topic, 0)], timeout=30)
        return partition.offset
    finally:
        consumer.close()
