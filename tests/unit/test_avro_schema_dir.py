"""The schema directory (schemas/): generate, check, lookup; the repository's is up to date."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import flowbus.catalog
from flowbus.avro import schema_from_signal
from flowbus.avro.codec import fingerprint
from flowbus.avro.compat import CompatibilityMode
from flowbus.avro.schema_dir import (
    DEFAULT_MODE,
    SchemaDirectory,
    default_schemas_dir,
    format_schema,
)
from flowbus.errors import SchemaDirectoryError
from flowbus.signals import WorkflowSignal

EVENT_TYPE = "org.flowbus.test.schema_dir.changed.v1"


class FakeSignal:
    def __init__(self, event_type: str, data: Mapping[str, Any]) -> None:
        self.event_type = event_type
        self.data = data
        self.doc = None


def core_signals() -> list[WorkflowSignal]:
    return [
        *flowbus.catalog.CALUMA_SIGNALS,
        *flowbus.catalog.MISTRAL_SIGNALS,
        *flowbus.catalog.WORKFLOW_SERVICE_SIGNALS,
    ]


def test_repository_schema_dir_holds_every_core_signal_and_passes_check() -> None:
    schema_dir = SchemaDirectory(default_schemas_dir())
    signals = core_signals()
    assert schema_dir.check(signals, DEFAULT_MODE) == []
    assert {s.event_type for s in signals} == set(schema_dir.event_types())


def test_flowbus_schemas_check_passes_on_the_repository() -> None:
    # A fresh process: only the core catalog's signals are defined, as in CI.
    result = subprocess.run(
        [sys.executable, "-m", "flowbus", "schemas", "check"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FLOWBUS_SCHEMAS_DIR": str(default_schemas_dir())},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "full_transitive compatible" in result.stdout


def test_generate_writes_version_1_then_nothing(tmp_path: Path) -> None:
    schema_dir = SchemaDirectory(tmp_path)
    signal = FakeSignal(EVENT_TYPE, {"n": int})
    [written] = schema_dir.generate([signal])
    assert written.path == tmp_path / EVENT_TYPE / "1.avsc"
    assert written.path.read_text() == format_schema(schema_from_signal(signal))
    assert schema_dir.generate([signal]) == []


def test_generate_adds_a_version_and_never_rewrites_a_released_one(tmp_path: Path) -> None:
    schema_dir = SchemaDirectory(tmp_path)
    schema_dir.generate([FakeSignal(EVENT_TYPE, {"n": int})])
    v1 = (tmp_path / EVENT_TYPE / "1.avsc").read_bytes()
    [written] = schema_dir.generate([FakeSignal(EVENT_TYPE, {"n": int, "s": str | None})])
    assert written.version == 2
    assert (tmp_path / EVENT_TYPE / "1.avsc").read_bytes() == v1
    assert [entry.version for entry in schema_dir.versions(EVENT_TYPE)] == [1, 2]


def test_lookup_by_fingerprint(tmp_path: Path) -> None:
    schema_dir = SchemaDirectory(tmp_path)
    signal = FakeSignal(EVENT_TYPE, {"n": int})
    schema_dir.generate([signal])
    entry = schema_dir.by_fingerprint(fingerprint(schema_from_signal(signal)))
    assert entry is not None
    assert (entry.event_type, entry.version) == (EVENT_TYPE, 1)
    assert entry.reference == f"schemas/{EVENT_TYPE}/1.avsc"
    assert schema_dir.by_fingerprint(b"\x00" * 8) is None


def test_check_passes_on_compatible_history(tmp_path: Path) -> None:
    schema_dir = SchemaDirectory(tmp_path)
    schema_dir.generate([FakeSignal(EVENT_TYPE, {"n": int})])
    current = FakeSignal(EVENT_TYPE, {"n": int, "s": str | None})
    schema_dir.generate([current])
    assert schema_dir.check([current]) == []


def test_check_fails_on_a_deliberately_incompatible_change(tmp_path: Path) -> None:
    schema_dir = SchemaDirectory(tmp_path)
    schema_dir.generate([FakeSignal(EVENT_TYPE, {"n": int, "s": str})])
    # "s" changes type and "added" has no default: both break FULL_TRANSITIVE.
    breaking = FakeSignal(EVENT_TYPE, {"n": int, "s": int, "added": str})
    problems = schema_dir.check([breaking])
    found = {(p.event_type, p.path, p.rule) for p in problems}
    assert (EVENT_TYPE, "", "stale") in found
    assert (EVENT_TYPE, "s", "type-mismatch") in found
    assert (EVENT_TYPE, "added", "missing-field-default") in found
    # Once generated, the broken version is still reported.
    schema_dir.generate([breaking])
    problems = schema_dir.check([breaking])
    assert {(p.path, p.rule) for p in problems} >= {
        ("s", "type-mismatch"),
        ("added", "missing-field-default"),
    }
    assert all("version 2" in p.message or "version 1" in p.message for p in problems)


@pytest.mark.parametrize(
    ("mode", "ok"),
    [
        (CompatibilityMode.BACKWARD, True),
        (CompatibilityMode.FORWARD, False),
        (CompatibilityMode.FULL, False),
    ],
)
def test_check_honours_the_mode(tmp_path: Path, mode: CompatibilityMode, ok: bool) -> None:
    schema_dir = SchemaDirectory(tmp_path)
    schema_dir.generate([FakeSignal(EVENT_TYPE, {"n": int, "gone": str})])
    # Removing a field without default: new readers are fine, old readers miss it.
    current = FakeSignal(EVENT_TYPE, {"n": int})
    schema_dir.generate([current])
    assert (schema_dir.check([current], mode) == []) is ok


def test_check_reports_a_missing_schema(tmp_path: Path) -> None:
    problems = SchemaDirectory(tmp_path).check([FakeSignal(EVENT_TYPE, {"n": int})])
    assert [(p.event_type, p.rule) for p in problems] == [(EVENT_TYPE, "stale")]


def test_check_reports_a_badly_formatted_file(tmp_path: Path) -> None:
    signal = FakeSignal(EVENT_TYPE, {"n": int})
    path = tmp_path / EVENT_TYPE / "1.avsc"
    path.parent.mkdir()
    path.write_text(json.dumps(schema_from_signal(signal)))
    problems = SchemaDirectory(tmp_path).check([signal])
    assert [(p.path, p.rule) for p in problems] == [("1.avsc", "file-format")]


def test_check_reports_layout_problems(tmp_path: Path) -> None:
    signal = FakeSignal(EVENT_TYPE, {"n": int})
    folder = tmp_path / EVENT_TYPE
    folder.mkdir()
    (folder / "2.avsc").write_text(format_schema(schema_from_signal(signal)))
    (folder / "notes.txt").write_text("x")
    other = tmp_path / "org.flowbus.test.other.thing.v1"
    other.mkdir()
    (other / "1.avsc").write_text(format_schema(schema_from_signal(signal)))
    rules = {(p.event_type, p.rule) for p in SchemaDirectory(tmp_path).check([signal])}
    assert rules == {
        (EVENT_TYPE, "catalog-layout"),
        ("org.flowbus.test.other.thing.v1", "catalog-layout"),
    }


def test_invalid_schema_file_is_a_schema_directory_error(tmp_path: Path) -> None:
    folder = tmp_path / EVENT_TYPE
    folder.mkdir()
    (folder / "1.avsc").write_text('{"type": "record"}')
    with pytest.raises(SchemaDirectoryError, match=r"1\.avsc"):
        SchemaDirectory(tmp_path).versions(EVENT_TYPE)


def test_format_schema_is_stable() -> None:
    schema = {
        "fields": [{"default": 0, "type": "long", "name": "n"}],
        "name": "R",
        "type": "record",
    }
    text = format_schema(schema)
    assert text.endswith("}\n")
    assert list(json.loads(text)) == ["type", "name", "fields"]
    assert list(json.loads(text)["fields"][0]) == ["name", "type", "default"]
    assert format_schema(json.loads(text)) == text
