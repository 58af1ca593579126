"""The optional parts need their extra, and say which when it is missing.

Each case runs in a fresh interpreter where the extra's libraries cannot be imported
(``sys.modules[name] = None``), as in an installation without the extra.
"""

from __future__ import annotations

import subprocess
import sys

import pytest


def _run(blocked: list[str], code: str) -> subprocess.CompletedProcess[str]:
    setup = "".join(f"sys.modules[{name!r}] = None\n" for name in blocked)
    return subprocess.run(
        [sys.executable, "-c", f"import sys\n{setup}{code}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _flowbus(blocked: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    code = f"sys.argv = ['flowbus', *{list(args)!r}]\nfrom flowbus.cli import main\nmain()\n"
    return _run(blocked, code)


@pytest.mark.parametrize(
    ("blocked", "args", "message"),
    [
        (
            ["httpcore"],
            ["webhooks", "list"],
            "Error: webhooks need the 'webhooks' extra: pip install 'flowbus[webhooks]'",
        ),
        (
            ["certifi"],
            ["listener", "--help"],
            "Error: webhooks need the 'webhooks' extra: pip install 'flowbus[webhooks]'",
        ),
        (
            ["prometheus_client"],
            ["consume", "--topic", "events", "--group", "g", "--metrics-port", "0"],
            "Error: Prometheus metrics need the 'metrics' extra: pip install 'flowbus[metrics]'",
        ),
        (
            ["psycopg"],
            ["webhooks", "--database", "postgresql://flowbus@127.0.0.1:1/flowbus", "list"],
            "Error: PostgreSQL databases need the 'postgres' extra: "
            "pip install 'flowbus[postgres]'",
        ),
    ],
    ids=["webhooks", "listener", "metrics", "postgres"],
)
def test_a_command_without_its_extra_names_the_extra(blocked, args, message):
    result = _flowbus(blocked, *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == message


def test_the_outbox_relay_runs_without_metrics_and_its_metrics_port_names_the_extra(tmp_path):
    url = f"sqlite:///{tmp_path}/app.db"
    code = (
        "from flowbus.producer import outbox\n"
        "kafka = {'bootstrap.servers': '127.0.0.1:1'}\n"
        f"relay = outbox.OutboxRelay({url!r}, kafka_config=kafka)\n"
        "print(type(relay.metrics).__name__)\n"
    )
    result = _run(["prometheus_client"], code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "_NoMetrics"

    result = _flowbus(
        ["prometheus_client"], "outbox", "relay", "--database", url, "--metrics-port", "0"
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        "flowbus outbox: the outbox relay's Prometheus metrics need the 'metrics' extra: "
        "pip install 'flowbus[metrics]'"
    )


def test_a_producer_and_a_worker_need_no_extra():
    code = (
        "from flowbus.producer import EventProducer, OnCommitSink, start_forwarding, outbox\n"
        "from flowbus.consumer import Worker, ReceiverRetryPolicy\n"
        "from flowbus.consumer.testing import InMemoryBus\n"
        "print('imported')\n"
    )
    # certifi stays: confluent-kafka's schema-registry client imports it too.
    result = _run(["httpcore", "prometheus_client", "psycopg"], code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported"


def test_a_missing_flowbus_module_is_not_reported_as_an_extra():
    code = (
        "from flowbus.extras import requires_extra\n"
        "with requires_extra('webhooks', 'webhooks'):\n"
        "    import flowbus.no_such_module\n"
    )
    result = _run([], code)
    assert result.returncode == 1
    assert "ModuleNotFoundError: No module named 'flowbus.no_such_module'" in result.stderr
