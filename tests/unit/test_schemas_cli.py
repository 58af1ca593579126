"""``flowbus schemas``: generate, check, compat (register is an integration test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from flowbus.schemas_cli import schemas

EVENT_TYPE = "org.flowbus.clitest.order.placed.v1"

SIGNAL_MODULE = """
from flowbus.signals import WorkflowSignal
ORDER_PLACED = WorkflowSignal({event_type!r}, {{{fields}}})
"""


def write_schema(path: Path, schema: Any) -> Path:
    path.write_text(json.dumps(schema))
    return path


def test_compat_exit_0_when_compatible(tmp_path: Path) -> None:
    reader = write_schema(tmp_path / "r.avsc", {"type": "record", "name": "R", "fields": []})
    writer = write_schema(
        tmp_path / "w.avsc",
        {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]},
    )
    result = CliRunner().invoke(
        schemas, ["compat", "--reader", str(reader), "--writer", str(writer)]
    )
    assert result.exit_code == 0
    assert result.output.startswith("compatible")


def test_compat_exit_1_printing_every_incompatibility(tmp_path: Path) -> None:
    reader = write_schema(
        tmp_path / "r.avsc",
        {
            "type": "record",
            "name": "R",
            "fields": [{"name": "a", "type": "int"}, {"name": "b", "type": "string"}],
        },
    )
    writer = write_schema(
        tmp_path / "w.avsc",
        {"type": "record", "name": "R", "fields": [{"name": "a", "type": "string"}]},
    )
    result = CliRunner().invoke(
        schemas, ["compat", "--reader", str(reader), "--writer", str(writer)]
    )
    assert result.exit_code == 1
    assert "a: reader int cannot read writer string [type-mismatch]" in result.output
    assert "b: " in result.output
    assert "[missing-field-default]" in result.output


def test_compat_rejects_an_invalid_schema(tmp_path: Path) -> None:
    bad = write_schema(tmp_path / "bad.avsc", {"type": "record"})
    result = CliRunner().invoke(schemas, ["compat", "--reader", str(bad), "--writer", str(bad)])
    assert result.exit_code == 2
    assert "needs a name" in result.output


def flowbus(*args: str, modules_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": f"{modules_dir}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    return subprocess.run(
        [sys.executable, "-m", "flowbus", "schemas", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.fixture
def signal_modules(tmp_path: Path) -> Path:
    modules = tmp_path / "modules"
    modules.mkdir()
    versions = {
        "orders_v1": '"order_id": str, "amount": int',
        # compatible: a nullable field (default null)
        "orders_v2": '"order_id": str, "amount": int, "note": str | None',
        # incompatible: amount changes type, currency has no default
        "orders_broken": '"order_id": str, "amount": str, "currency": str',
    }
    for name, fields in versions.items():
        (modules / f"{name}.py").write_text(
            SIGNAL_MODULE.format(event_type=EVENT_TYPE, fields=fields)
        )
    return modules


def test_generate_then_check(tmp_path: Path, signal_modules: Path) -> None:
    catalog = tmp_path / "schemas"
    first = flowbus(
        "generate", "--dir", str(catalog), "-m", "orders_v1", modules_dir=signal_modules
    )
    assert first.returncode == 0, first.stderr
    assert f"{EVENT_TYPE}/1.avsc" in first.stdout
    again = flowbus(
        "generate", "--dir", str(catalog), "-m", "orders_v1", modules_dir=signal_modules
    )
    assert "up to date" in again.stdout
    checked = flowbus("check", "--dir", str(catalog), "-m", "orders_v1", modules_dir=signal_modules)
    assert checked.returncode == 0, checked.stdout
    stale = flowbus("check", "--dir", str(catalog), "-m", "orders_v2", modules_dir=signal_modules)
    assert stale.returncode == 1
    assert f"{EVENT_TYPE}: the signal's schema differs from version 1" in stale.stdout
    second = flowbus(
        "generate", "--dir", str(catalog), "-m", "orders_v2", modules_dir=signal_modules
    )
    assert f"{EVENT_TYPE}/2.avsc" in second.stdout
    final = flowbus("check", "--dir", str(catalog), "-m", "orders_v2", modules_dir=signal_modules)
    assert final.returncode == 0, final.stdout


def test_check_fails_on_an_incompatible_change_naming_type_field_and_rule(
    tmp_path: Path, signal_modules: Path
) -> None:
    catalog = tmp_path / "schemas"
    flowbus("generate", "--dir", str(catalog), "-m", "orders_v1", modules_dir=signal_modules)
    result = flowbus(
        "check", "--dir", str(catalog), "-m", "orders_broken", modules_dir=signal_modules
    )
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(
        line.startswith(f"{EVENT_TYPE} amount:") and line.endswith("[type-mismatch]")
        for line in lines
    ), result.stdout
    assert any(
        line.startswith(f"{EVENT_TYPE} currency:") and line.endswith("[missing-field-default]")
        for line in lines
    ), result.stdout
    forward = flowbus(
        "check",
        "--dir",
        str(catalog),
        "-m",
        "orders_broken",
        "--mode",
        "forward",
        modules_dir=signal_modules,
    )
    assert forward.returncode == 1
    assert "currency" not in forward.stdout  # forward: old readers ignore new fields


def test_check_json_reports_the_shipped_catalog_up_to_date() -> None:
    # A process of its own: test modules define signals the shipped catalog lacks.
    result = subprocess.run(
        [sys.executable, "-m", "flowbus", "schemas", "check", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["problems"] == []
    assert report["event_types"] >= 40 and report["versions"] >= report["event_types"]


def test_check_json_lists_each_problem(tmp_path: Path, signal_modules: Path) -> None:
    catalog = tmp_path / "schemas"
    flowbus("generate", "--dir", str(catalog), "-m", "orders_v1", modules_dir=signal_modules)

    result = flowbus(
        "check", "--dir", str(catalog), "-m", "orders_broken", "--json", modules_dir=signal_modules
    )

    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    rules = {(p["event_type"], p["path"], p["rule"]) for p in report["problems"]}
    assert (EVENT_TYPE, "amount", "type-mismatch") in rules
    assert (EVENT_TYPE, "currency", "missing-field-default") in rules
