"""``flowbus doctor`` against the real broker and registry, and against a closed port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from flowbus.catalog import caluma
from flowbus.cli import main
from flowbus.consumer.webhooks.store import SCHEMA_VERSION, WebhookStore
from flowbus.signal_examples import example_payload

pytestmark = pytest.mark.usefixtures("flowbus_env")

CASE_DONE = caluma.post_complete_case.event_type
CHECKS = [
    "broker",
    "registry",
    "subjects",
    "webhook database",
    "receiver modules",
    "ssrf allowlist",
]


def doctor(*args: str) -> Result:
    return CliRunner().invoke(main, ["doctor", *args])


def route_to(topic: str) -> str:
    return json.dumps({CASE_DONE: [{"topic": topic}]})


def lines_by_check(output: str) -> dict[str, str]:
    found = {}
    for line in output.splitlines():
        status = line.split()[0]
        rest = line[len(status) :].lstrip()
        name = next(c for c in [*CHECKS, "settings"] if rest.startswith(c))
        found[name] = f"{status} {rest[len(name) :].strip()}"
    return found


def test_everything_ok_against_the_shared_stack(unique_topic, kafka_stack, tmp_path, monkeypatch):
    topic = unique_topic()
    payload = json.dumps(example_payload(caluma.post_complete_case))
    registered = CliRunner().invoke(
        main, ["produce", CASE_DONE, "--data", payload, "--topic", topic]
    )
    assert registered.exit_code == 0, registered.output  # auto-registers the subject
    database = tmp_path / "webhooks.db"
    WebhookStore.open(f"sqlite:///{database}").close()
    env = {
        **kafka_stack.env,
        "FLOWBUS_STATE_DIR": str(tmp_path / "state"),
        "FLOWBUS_PRODUCER_CONFIG": route_to(topic),
        "FLOWBUS_SCHEMA_AUTO_REGISTER": "false",
        "FLOWBUS_WEBHOOKS_DATABASE_URL": f"sqlite:///{database}",
        "FLOWBUS_RECEIVER_MODULES": '["sample_events"]',  # on the test PYTHONPATH
        "FLOWBUS_WEBHOOKS_SSRF_ALLOWLIST": '["10.0.0.0/8", "*.example.internal"]',
    }

    text = _run_doctor(env)  # a real process
    for name in ("FLOWBUS_STATE_DIR", "FLOWBUS_PRODUCER_CONFIG", "FLOWBUS_SCHEMA_AUTO_REGISTER",
                 "FLOWBUS_WEBHOOKS_DATABASE_URL", "FLOWBUS_RECEIVER_MODULES",
                 "FLOWBUS_WEBHOOKS_SSRF_ALLOWLIST"):  # fmt: skip
        monkeypatch.setenv(name, env[name])
    as_json = doctor("--json")

    assert text.returncode == 0, text.stdout + text.stderr
    found = lines_by_check(text.stdout)
    assert list(found) == CHECKS
    assert all(line.startswith("ok ") for line in found.values()), text.stdout
    assert "1 route(s), every schema registered" in found["subjects"]
    assert "imported sample_events" in found["receiver modules"]
    assert f"schema version {SCHEMA_VERSION}, 0 subscription(s)" in found["webhook database"]
    report = json.loads(as_json.stdout)
    assert report["ok"] is True
    assert [(c["name"], c["status"]) for c in report["checks"]] == [(c, "ok") for c in CHECKS]


def test_a_closed_broker_port_fails_naming_the_setting_within_15s(kafka_stack, tmp_path):
    env = {
        **kafka_stack.env,
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "FLOWBUS_STATE_DIR": str(tmp_path),
    }
    started = time.monotonic()

    result = _run_doctor(env, timeout=15)  # raises TimeoutExpired past 15 s

    assert time.monotonic() - started < 15
    assert result.returncode == 1
    found = lines_by_check(result.stdout)
    assert (
        found["broker"].startswith("fail ")
        and "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1" in (found["broker"])
    )
    assert "flowbus dev status" in found["broker"]
    assert found["registry"].startswith("ok ")
    assert len(result.stdout.splitlines()) == len(CHECKS)
    assert result.stderr == ""  # librdkafka's connection errors are not repeated


def test_an_unregistered_subject_fails_and_says_what_to_run(unique_topic, monkeypatch):
    topic = unique_topic()  # nothing was ever registered for it
    monkeypatch.setenv("FLOWBUS_PRODUCER_CONFIG", route_to(topic))
    monkeypatch.setenv("FLOWBUS_SCHEMA_AUTO_REGISTER", "false")

    result = doctor()
    auto = _with_env(monkeypatch, "FLOWBUS_SCHEMA_AUTO_REGISTER", "true")

    assert result.exit_code == 1
    subjects = lines_by_check(result.stdout)["subjects"]
    assert subjects.startswith("fail ")
    assert f"{topic}-org.flowbus.caluma.case.post_complete.v1" in subjects
    assert "run `flowbus schemas register`" in subjects
    assert lines_by_check(auto.stdout)["subjects"].startswith("warn ")


def test_broken_settings_fail_their_own_check_and_nothing_is_created(monkeypatch, tmp_path):
    missing_dir = tmp_path / "no" / "such" / "dir"
    monkeypatch.setenv("FLOWBUS_RECEIVER_MODULES", "billing.receivers")  # not JSON
    monkeypatch.setenv("FLOWBUS_WEBHOOKS_SSRF_ALLOWLIST", '["not a host!"]')
    monkeypatch.setenv("FLOWBUS_WEBHOOKS_DATABASE_URL", f"sqlite:///{missing_dir}/x.db")
    monkeypatch.setenv("FLOWBUS_WEBHOOKS_MAX_CONCURRENCY", "0")  # below its minimum

    result = doctor("--json")

    assert result.exit_code == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["broker"]["status"] == "ok"
    receivers = checks["receiver modules"]
    assert receivers["status"] == "fail"
    assert "FLOWBUS_RECEIVER_MODULES does not parse" in receivers["detail"]
    assert checks["ssrf allowlist"]["status"] == "fail"
    assert "'not a host!'" in checks["ssrf allowlist"]["detail"]
    assert checks["webhook database"]["status"] == "warn"
    assert "does not exist yet" in checks["webhook database"]["detail"]
    assert "FLOWBUS_WEBHOOKS_MAX_CONCURRENCY" in checks["settings"]["detail"]
    assert not (tmp_path / "no").exists()
    assert os.environ["FLOWBUS_RECEIVER_MODULES"] == "billing.receivers"  # restored


def test_a_missing_receiver_module_fails(monkeypatch):
    module = f"no_such_module_{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("FLOWBUS_RECEIVER_MODULES", json.dumps([module]))

    result = doctor()

    assert result.exit_code == 1
    receivers = lines_by_check(result.stdout)["receiver modules"]
    assert receivers.startswith("fail ") and module in receivers and "PYTHONPATH" in receivers


def _with_env(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> Result:
    monkeypatch.setenv(name, value)
    return doctor()


def _run_doctor(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowbus", "doctor", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=Path(__file__).parent,
    )


def test_a_postgresql_webhook_database_is_read_without_writing(postgres_url, monkeypatch):
    monkeypatch.setenv("FLOWBUS_WEBHOOKS_DATABASE_URL", postgres_url)
    empty = json.loads(doctor("--json").stdout)["checks"]
    WebhookStore.open(postgres_url).close()

    created = json.loads(doctor("--json").stdout)["checks"]

    [before] = [c for c in empty if c["name"] == "webhook database"]
    assert before["status"] == "warn" and "holds no webhook tables" in before["detail"]
    [after] = [c for c in created if c["name"] == "webhook database"]
    assert (
        after["status"] == "ok"
        and f"schema version {SCHEMA_VERSION}, 0 subscription(s)" in after["detail"]
    )


def test_routes_may_name_signals_a_receiver_module_defines(unique_topic, monkeypatch, tmp_path):
    event_type = f"org.flowbus.test.doctor{uuid.uuid4().hex[:8]}.thing.done.v1"
    module = f"doctor_signals_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        f"from flowbus import WorkflowSignal\nDONE = WorkflowSignal({event_type!r}, {{'n': int}})\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("FLOWBUS_RECEIVER_MODULES", json.dumps([module]))
    monkeypatch.setenv("FLOWBUS_PRODUCER_CONFIG", json.dumps({event_type: [{"topic": "t"}]}))

    result = doctor()

    subjects = lines_by_check(result.stdout)["subjects"]
    assert subjects.startswith("warn "), subjects  # known, not registered yet (auto-register)
    assert f"t-{event_type}" in subjects


def test_a_closed_registry_port_fails_the_registry_and_its_subjects(monkeypatch):
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", "http://127.0.0.1:1/apis/ccompat/v7")
    monkeypatch.setenv("FLOWBUS_PRODUCER_CONFIG", route_to("caluma-events"))
    started = time.monotonic()

    result = doctor()

    assert time.monotonic() - started < 15
    assert result.exit_code == 1
    found = lines_by_check(result.stdout)
    assert found["registry"].startswith("fail ") and "SCHEMA_REGISTRY_URL=" in found["registry"]
    assert found["subjects"] == "fail not checked: the registry does not answer"
    assert found["broker"].startswith("ok ")
