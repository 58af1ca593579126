"""`flowbus signals list` and `flowbus signals show`."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowbus.cli import main


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_signals_command_is_registered() -> None:
    code, output = run("--help")
    assert code == 0
    assert "signals" in output


def test_list_shows_the_catalog() -> None:
    code, output = run("signals", "list")
    assert code == 0
    lines = output.splitlines()
    assert lines[0].split() == ["EVENT", "TYPE", "MINOR", "KEY", "PATH", "DATA"]
    row = next(line for line in lines if "org.flowbus.caluma.work_item.post_complete.v1" in line)
    assert row.split() == [
        "org.flowbus.caluma.work_item.post_complete.v1",
        "1",
        "work_item.case_id",
        "work_item,",
        "user,",
        "context",
    ]
    assert "org.flowbus.mistral.task_execution.failed.v1" in output
    assert "org.flowbus.workflow_service.resource.soft_deleted.v1" in output


def test_list_json() -> None:
    code, output = run("signals", "list", "--json")
    assert code == 0
    entries = {entry["event_type"]: entry for entry in json.loads(output)}
    entry = entries["org.flowbus.caluma.case.pre_create.v1"]
    assert entry == {
        "event_type": "org.flowbus.caluma.case.pre_create.v1",
        "minor_version": 1,
        "key_path": "case_id",
        "doc": "Caluma pre_create_case: before a case is created.",
        "data": {
            "case": "CaseSnapshot | None",
            "user": "UserInfo",
            "context": "JsonValue",
            "validated_data": "JsonValue",
            "case_id": "UUID | None",
        },
    }


def test_show_prints_fields_types_key_path_and_minor_version() -> None:
    code, output = run("signals", "show", "org.flowbus.caluma.work_item.post_complete.v1")
    assert code == 0
    assert output.startswith("org.flowbus.caluma.work_item.post_complete.v1\n")
    assert "  minor version: 1\n" in output
    assert "  key path:      work_item.case_id\n" in output
    assert "    work_item: WorkItemSnapshot\n" in output
    assert "        status: WorkItemStatus\n" in output
    assert "WorkItemStatus: unknown, ready, completed, canceled, skipped, suspended, redo" in output
    assert "        deadline: datetime | None  (optional)\n" in output
    assert "    context: JsonValue\n" in output


def test_show_json_includes_the_avro_schema() -> None:
    code, output = run("signals", "show", "--json", "org.flowbus.mistral.task_execution.failed.v1")
    assert code == 0
    details = json.loads(output)
    assert details["key_path"] == "task.workflow_execution_id"
    assert details["fields"][0]["name"] == "task"
    nested = details["fields"][0]["nested"][0]
    assert nested["name"] == "TaskExecutionSnapshot"
    assert {"name": "error", "type": "str | None", "required": False, "nested": []} in nested[
        "fields"
    ]
    assert details["avro_schema"]["name"] == "org.flowbus.mistral.task_execution.failed.v1"


def test_show_unknown_event_type_suggests_close_ones() -> None:
    code, output = run("signals", "show", "org.flowbus.caluma.work_item.post_complet.v1")
    assert code == 2  # bad input (the exit-code table)
    assert "no signal with event type 'org.flowbus.caluma.work_item.post_complet.v1'" in output
    assert "Did you mean: org.flowbus.caluma.work_item.post_complete.v1" in output


@pytest.fixture
def signals_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    name = f"flowbus_test_cli_signals_{uuid.uuid4().hex[:8]}"
    event_type = f"org.flowbus.test.c{uuid.uuid4().hex[:8]}.happened.v3"
    (tmp_path / f"{name}.py").write_text(
        "from flowbus import WorkflowSignal\n"
        f"THING = WorkflowSignal({event_type!r}, {{'ref': str}}, minor_version=4, "
        "key_path='ref')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, event_type
    sys.modules.pop(name, None)


def test_import_option_loads_more_signals(signals_module: tuple[str, str]) -> None:
    module, event_type = signals_module
    code, output = run("signals", "show", "--import", module, event_type)
    assert code == 0
    assert "  minor version: 4\n" in output
    assert "  key path:      ref\n" in output


def test_import_option_reports_a_module_that_fails() -> None:
    code, output = run("signals", "list", "--import", "no_such_signals_module")
    assert code == 2  # bad input (the exit-code table)
    assert "could not import module 'no_such_signals_module'" in output
