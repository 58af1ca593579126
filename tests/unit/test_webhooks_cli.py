"""``flowbus webhooks ...`` and ``flowbus listener add ...`` through the real command line."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from flowbus.cli import main
from flowbus.consumer.webhooks.models import Attempt, AttemptOutcome, DeliveryStatus
from flowbus.consumer.webhooks.store import WebhookStore
from flowbus.dev.devstack import free_port
from flowbus.settings import get_settings

PUBLIC_URL = "https://93.184.216.34/hooks"


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'webhooks.sqlite3'}"
    monkeypatch.setenv("FLOWBUS_WEBHOOKS_DATABASE_URL", url)
    monkeypatch.delenv("FLOWBUS_WEBHOOKS_SSRF_ALLOWLIST", raising=False)
    monkeypatch.delenv("FLOWBUS_WEBHOOKS_ALLOWED_PORTS", raising=False)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def add_json(*args: str) -> dict[str, Any]:
    result = run("webhooks", "add", "--json", *args)
    assert result.exit_code == 0, result.output
    loaded: dict[str, Any] = json.loads(result.output)
    return loaded


def test_add_list_show_disable_enable_remove(database: str) -> None:
    created = add_json(
        "--event", "org.flowbus.workflow_service.*",
        "--url", PUBLIC_URL,
        "--filter", "resource.type=itemsvc.*",
        "--filter", "work_item.task_slug=review-*",
        "--filter", "work_item.task_slug=approve",
        "--header", "X-Team: permits",
        "--timeout", "5",
        "--max-attempts", "3",
        "--description", "permits",
    )  # fmt: skip
    sub_id = created["id"]
    assert created["filters"] == {
        "resource.type": "itemsvc.*",
        "work_item.task_slug": ["review-*", "approve"],
    }
    assert created["headers"] == {"X-Team": "permits"}
    assert created["secrets"][0].startswith("whsec_")
    assert created["retry"]["max_attempts"] == 3

    listed = run("webhooks", "list")
    assert sub_id in listed.output and "enabled" in listed.output

    shown = json.loads(run("webhooks", "show", sub_id, "--json").output)
    assert "whsec_" not in json.dumps(shown)  # secrets only with --show-secret
    assert shown["deliveries"] == {"pending": 0, "delivered": 0, "failed": 0, "blocked": 0}
    revealed = json.loads(run("webhooks", "show", sub_id, "--json", "--show-secret").output)
    assert revealed["secrets"] == created["secrets"]

    assert run("webhooks", "disable", sub_id).output.strip() == f"{sub_id} disabled"
    assert json.loads(run("webhooks", "list", "--json").output)[0]["enabled"] is False
    assert run("webhooks", "enable", sub_id).exit_code == 0
    assert json.loads(run("webhooks", "list", "--json").output)[0]["enabled"] is True
    assert run("webhooks", "remove", sub_id).exit_code == 0
    assert run("webhooks", "list").output.strip() == "no webhook subscriptions"


def test_filters_json_and_secret_option(database: str) -> None:
    secret = "whsec_" + "QUJD" * 8
    created = add_json(
        "--event", "*.post_complete.v1",
        "--url", PUBLIC_URL,
        "--filters-json", '{"resource.type": "itemsvc.*", "$source": "flowbus/*"}',
        "--secret", secret,
        "--method", "put",
    )  # fmt: skip
    assert created["filters"] == {"$source": "flowbus/*", "resource.type": "itemsvc.*"}
    assert created["secrets"] == [secret]
    assert created["method"] == "PUT"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--event", "bad pattern", "--url", PUBLIC_URL], "event pattern"),
        (["--event", "*", "--url", PUBLIC_URL, "--filter", "nokey"], "KEY=PATTERN"),
        (["--event", "*", "--url", PUBLIC_URL, "--header", "NoColon"], "'Name: value'"),
        (["--event", "*", "--url", PUBLIC_URL, "--secret", "hunter2"], "whsec_"),
        (["--event", "*", "--url", PUBLIC_URL, "--method", "GET"], "method"),
        (["--event", "*", "--url", "http://169.254.169.254/"], "blocked: address"),
        (["--event", "*", "--url", "http://127.0.0.1:8080/"], "blocked: port 8080"),
    ],
)
def test_add_refuses_bad_input_with_a_clear_message(
    database: str, args: list[str], message: str
) -> None:
    result = run("webhooks", "add", *args)
    assert result.exit_code != 0
    assert message in result.output
    assert "no webhook database at" in run("webhooks", "list").output  # nothing was stored


def test_add_no_check_registers_a_currently_blocked_url(database: str) -> None:
    created = add_json("--event", "*", "--url", "http://10.0.0.5/hook", "--no-check")
    assert created["url"] == "http://10.0.0.5/hook"


def test_unknown_ids_are_errors(database: str) -> None:
    add_json("--event", "*", "--url", PUBLIC_URL)  # the database exists
    for command in ("show", "disable", "enable", "remove"):
        result = run("webhooks", command, "sub_nope")
        assert result.exit_code == 2  # bad input (the exit-code table)
        assert "no webhook subscription with id 'sub_nope'" in result.output


@pytest.mark.parametrize(
    ("url", "expected", "code"),
    [
        ("https://93.184.216.34/", "allowed", 0),
        ("http://[2606:2800:220:1:248:1893:25c8:1946]/", "allowed", 0),
        ("http://127.0.0.1/", "blocked: address 127.0.0.1: loopback", 1),
        ("http://0x7f000001/", "blocked: host '0x7f000001' is an IPv4 address", 1),
        ("gopher://93.184.216.34/", "blocked: scheme 'gopher'", 1),
        ("http://[::ffff:10.0.0.1]/", "blocked: address ::ffff:a00:1: IPv4-mapped", 1),
    ],
)
def test_check_url(database: str, url: str, expected: str, code: int) -> None:
    result = run("webhooks", "check-url", url)
    assert result.exit_code == code
    assert result.output.startswith(expected)
    assert len(result.output.strip().splitlines()) == 1


def test_check_url_uses_the_configured_allowlist(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWBUS_WEBHOOKS_SSRF_ALLOWLIST", '["127.0.0.0/8"]')
    monkeypatch.setenv("FLOWBUS_WEBHOOKS_ALLOWED_PORTS", "[8080]")
    get_settings.cache_clear()
    assert run("webhooks", "check-url", "http://127.0.0.1:8080/").output.strip() == "allowed"
    assert run("webhooks", "check-url", "http://10.0.0.1:8080/").exit_code == 1
    assert run("webhooks", "check-url", "https://93.184.216.34/").exit_code == 1  # port 443


def test_rotate_secret_then_finish(database: str) -> None:
    created = add_json("--event", "*", "--url", PUBLIC_URL)
    old = created["secrets"][0]
    rotated = run("webhooks", "rotate-secret", created["id"])
    new = rotated.output.splitlines()[0].removeprefix("secret: ")
    shown = json.loads(run("webhooks", "show", created["id"], "--json", "--show-secret").output)
    assert shown["secrets"] == [new, old]
    run("webhooks", "rotate-secret", created["id"], "--finish")
    shown = json.loads(run("webhooks", "show", created["id"], "--json", "--show-secret").output)
    assert shown["secrets"] == [new]


def test_deliveries_list_show_and_redrive(database: str) -> None:
    sub_id = add_json("--event", "*", "--url", PUBLIC_URL)["id"]
    with WebhookStore.open(database) as store:
        ok, bad = (
            store.create_deliveries(
                event_id=event_id, event_type="org.flowbus.x.y.z.v1", body=b'{"a":1}',
                subscription_ids=[sub_id],
            )[0]
            for event_id in ("e-ok", "e-bad")
        )  # fmt: skip
        now = datetime.now(UTC)
        store.record_attempt(
            Attempt(ok.id, 1, now, 8.0, 200, AttemptOutcome.DELIVERED, None),
            status=DeliveryStatus.DELIVERED,
            next_attempt_at=None,
        )
        store.record_attempt(
            Attempt(bad.id, 1, now, 9.0, 500, AttemptOutcome.HTTP_ERROR, "HTTP 500"),
            status=DeliveryStatus.FAILED,
            next_attempt_at=None,
        )

    listed = run("webhooks", "deliveries")
    assert ok.id in listed.output and bad.id in listed.output
    failed = json.loads(
        run("webhooks", "deliveries", "list", "--status", "failed", "--json").output
    )
    assert [d["id"] for d in failed] == [bad.id]
    assert failed[0]["last_error"] == "HTTP 500"

    shown = json.loads(run("webhooks", "deliveries", "show", bad.id, "--json", "--body").output)
    assert shown["attempt_log"] == [
        {
            "number": 1,
            "started_at": shown["attempt_log"][0]["started_at"],
            "outcome": "http_error",
            "status_code": 500,
            "latency_ms": 9.0,
            "error": "HTTP 500",
        }
    ]
    assert shown["body"] == {"a": 1}

    assert run("webhooks", "deliveries", "redrive", ok.id).exit_code == 1  # delivered
    assert run("webhooks", "deliveries", "redrive").exit_code == 2  # nothing given
    redriven = run("webhooks", "deliveries", "redrive", "--all-failed", "--subscription", sub_id)
    assert redriven.output.strip() == "1 deliveries pending again"
    with WebhookStore.open(database) as store:
        assert store.get_delivery(bad.id).status is DeliveryStatus.PENDING


def test_listener_for_an_execution_covers_its_workflow_and_task_events(database: str) -> None:
    result = run("listener", "add", "execution", "exec-123", PUBLIC_URL, "--json")
    assert result.exit_code == 0, result.output
    workflow, tasks = json.loads(result.output)
    assert workflow["event_pattern"] == "org.flowbus.mistral.workflow_execution.*"
    assert workflow["filters"] == {"execution.id": "exec-123"}
    assert tasks["event_pattern"] == "org.flowbus.mistral.task_execution.*"
    assert tasks["filters"] == {"task.workflow_execution_id": "exec-123"}
    assert workflow["secrets"] == tasks["secrets"]  # one secret for the receiver to check


def test_listener_for_a_task_with_chosen_events(database: str) -> None:
    result = run(
        "listener", "add", "task", "task-9", PUBLIC_URL,
        "--event", "TASK_FAILED", "--event", "task_succeeded", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert created["event_pattern"] == "org.flowbus.mistral.task_execution.*"
    assert created["filters"] == {
        "task.id": "task-9",
        "$type": [
            "org.flowbus.mistral.task_execution.failed.v1",
            "org.flowbus.mistral.task_execution.succeeded.v1",
        ],
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["task", "t1", PUBLIC_URL, "--event", "WORKFLOW_FAILED"], "task events only"),
        (["execution", "e1", PUBLIC_URL, "--event", "NOPE"], "unknown NOPE"),
        (["execution", "e*", PUBLIC_URL], "must not contain"),
        (["workflow", "e1", PUBLIC_URL], "'workflow' is not one of"),
    ],
)
def test_listener_refuses_bad_input(database: str, args: list[str], message: str) -> None:
    result = run("listener", "add", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_listener_events_match_the_catalog_signals(database: str) -> None:
    """Events built from the Mistral catalog signals match the listener's subscriptions."""
    from flowbus.catalog.mistral import TASK_EXECUTION_FAILED, WORKFLOW_EXECUTION_SUCCEEDED
    from flowbus.consumer.webhooks.event import WebhookEvent

    run("listener", "add", "execution", "exec-7", PUBLIC_URL)
    with WebhookStore.open(database) as store:
        subs = store.list_subscriptions()

    def wants(type_: str, data: dict[str, Any]) -> bool:
        event = WebhookEvent(id="1", type=type_, source="s", time=datetime.now(UTC), data=data)
        return any(s.matches(event) for s in subs)

    workflow_type = WORKFLOW_EXECUTION_SUCCEEDED.event_type
    task_type = TASK_EXECUTION_FAILED.event_type
    assert wants(workflow_type, {"execution": {"id": "exec-7"}})
    assert not wants(workflow_type, {"execution": {"id": "exec-8"}})
    assert wants(task_type, {"task": {"id": "t", "workflow_execution_id": "exec-7"}})
    assert not wants(task_type, {"task": {"id": "t", "workflow_execution_id": "other"}})


@pytest.mark.parametrize("with_metrics", [False, True])
def test_serve_without_a_broker_is_a_configuration_error(
    database: str, monkeypatch: pytest.MonkeyPatch, with_metrics: bool
) -> None:
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "FLOWBUS_KAFKA_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    port = free_port()
    metrics = ["--metrics-port", str(port)] if with_metrics else []
    args = ["webhooks", "serve", "--topic", "t", "--group", "g", *metrics]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "no broker configured" in result.output
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))  # metrics are served only once configured


def test_database_option_overrides_the_setting(database: str, tmp_path: Path) -> None:
    other = f"sqlite:///{tmp_path / 'other.sqlite3'}"
    result = run("webhooks", "--database", other, "add", "--event", "*", "--url", PUBLIC_URL)
    assert result.exit_code == 0
    assert "no webhook database at" in run("webhooks", "list").output  # the setting's
    assert "enabled" in run("webhooks", "--database", other, "list").output
    assert run("webhooks", "--database", other, "database-url").output.strip() == other


@pytest.mark.parametrize(
    "command",
    [
        ["list"],
        ["show", "sub_x"],
        ["deliveries"],
        ["deliveries", "list", "--json"],
        ["deliveries", "show", "dlv_x"],
        ["deliveries", "redrive", "--all-failed"],
        ["disable", "sub_x"],
        ["enable", "sub_x"],
        ["remove", "sub_x"],
        ["rotate-secret", "sub_x"],
    ],
)
def test_commands_on_existing_data_never_create_a_database(
    database: str, tmp_path: Path, command: list[str]
) -> None:
    path = tmp_path / "nonexistent" / "dir" / "x.db"
    result = run("webhooks", "--database", f"sqlite:///{path}", *command)
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: no webhook database at {path}; nothing was created")
    assert not path.parent.parent.exists()


def test_a_file_without_webhook_tables_is_named_and_left_alone(
    database: str, tmp_path: Path
) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    result = run("webhooks", "--database", f"sqlite:///{path}", "deliveries")
    assert result.exit_code == 1
    assert f"sqlite:///{path} holds no webhook tables; nothing was created" in result.output
    assert path.stat().st_size == 0


def test_an_attempt_in_flight_shows_as_in_flight(database: str) -> None:
    sub_id = add_json("--event", "*", "--url", PUBLIC_URL)["id"]
    now = datetime.now(UTC)
    lease_end = now + timedelta(seconds=70)
    with WebhookStore.open(database) as store:
        (delivery,) = store.create_deliveries(
            event_id="e-1", event_type="org.flowbus.x.y.z.v1", body=b"{}",
            subscription_ids=[sub_id], now=now,
        )  # fmt: skip
        assert store.claim(delivery, now=now, lease_until=lease_end)

    (line,) = run("webhooks", "deliveries").output.splitlines()
    assert f"{delivery.id}  in flight  attempts 0" in line
    assert f"attempt 1 since {now.isoformat(timespec='seconds')}" in line
    assert f"(lease until {lease_end.isoformat(timespec='seconds')})" in line
    assert "next" not in line
    (listed,) = json.loads(run("webhooks", "deliveries", "list", "--json").output)
    assert listed["status"] == "pending"
    assert listed["next_attempt_at"] is None
    assert listed["in_flight"] == {
        "attempt": 1,
        "since": now.isoformat(timespec="seconds"),
        "lease_until": lease_end.isoformat(timespec="seconds"),
    }
    shown = run("webhooks", "deliveries", "show", delivery.id).output
    assert "status:            in flight" in shown
    assert f"lease until {lease_end.isoformat(timespec='seconds')}" in shown

    retry_at = now + timedelta(seconds=20)
    with WebhookStore.open(database) as store:
        store.record_attempt(
            Attempt(delivery.id, 1, now, 9.0, 503, AttemptOutcome.HTTP_ERROR, "HTTP 503"),
            status=DeliveryStatus.PENDING,
            next_attempt_at=retry_at,
        )
    (line,) = run("webhooks", "deliveries").output.splitlines()
    assert f"{delivery.id}  pending    attempts 1" in line
    assert f"next {retry_at.isoformat(timespec='seconds')}" in line
    (listed,) = json.loads(run("webhooks", "deliveries", "list", "--json").output)
    assert listed["in_flight"] is None
