"""``flowbus dev status --json`` against the session's stack and a closed port."""

from __future__ import annotations

import json

from click.testing import CliRunner

from flowbus.cli import main
from flowbus.settings import get_settings


def status(monkeypatch, tmp_path, bootstrap: str, registry: str):
    monkeypatch.setenv("FLOWBUS_STATE_DIR", str(tmp_path))  # no local stack there
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", registry)
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(main, ["dev", "status", "--json"])
    finally:
        get_settings.cache_clear()


def test_status_json_when_both_answer(kafka_stack, monkeypatch, tmp_path):
    result = status(
        monkeypatch, tmp_path, kafka_stack.bootstrap_servers, kafka_stack.schema_registry_url
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "kafka": {"address": kafka_stack.bootstrap_servers, "up": True},
        "registry": {"address": kafka_stack.schema_registry_url, "up": True},
    }


def test_status_json_names_what_is_down(kafka_stack, monkeypatch, tmp_path):
    result = status(monkeypatch, tmp_path, "127.0.0.1:1", kafka_stack.schema_registry_url)

    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["kafka"] == {"address": "127.0.0.1:1", "up": False}
    assert report["registry"]["up"] is True
