"""The public API at each door: ``__all__`` names what the door exports, and nothing more.

Each door is imported in a fresh interpreter, so that a door importing a submodule that
imports the door back (a circular import) fails here rather than in a user's service.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

DOORS = [
    "flowbus",
    "flowbus.testing",
    "flowbus.producer",
    "flowbus.producer.outbox",
    "flowbus.consumer",
    "flowbus.consumer.testing",
    "flowbus.consumer.webhooks",
]

#: Where the samples (examples/) may import flowbus from: the doors, the signal catalog
#: (its signals and data models) and the Open edX bridge.
ALLOWED_IN_SAMPLES = {*DOORS, "flowbus.catalog", "flowbus.catalog.models", "flowbus.openedx"}


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("door", DOORS)
def test_door_exports_every_name_of_its_all_in_a_fresh_interpreter(door):
    code = (
        "import importlib, json\n"
        f"door = importlib.import_module({door!r})\n"
        "missing = [name for name in door.__all__ if getattr(door, name, None) is None]\n"
        "print(json.dumps({'all': door.__all__, 'missing': missing}))\n"
    )
    found = json.loads(_run(code))
    assert found["missing"] == []
    assert found["all"], f"{door} exports nothing"
    assert len(set(found["all"])) == len(found["all"]), f"{door}.__all__ has duplicates"


def _type_checking_imports(door: str) -> dict[str, str]:
    """The names a door imports under ``if TYPE_CHECKING:``, each with its module."""
    spec = importlib.util.find_spec(door)
    assert spec is not None and spec.origin is not None
    found: dict[str, str] = {}
    for node in ast.walk(ast.parse(Path(spec.origin).read_text())):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom):
                    module = "." * statement.level + (statement.module or "")
                    for alias in statement.names:
                        found[alias.asname or alias.name] = module
    return found


@pytest.mark.parametrize("door", DOORS)
def test_a_door_imports_each_lazy_name_for_type_checkers_from_where_it_is_defined(door):
    # A door's lazy names are invisible to type checkers but for these imports.
    imported = _type_checking_imports(door)
    code = (
        "import importlib, json\n"
        f"door = importlib.import_module({door!r})\n"
        "lazy = [name for name in door.__all__ if name not in vars(door)]\n"
        f"imported = {imported!r}\n"
        "print(json.dumps({'lazy': lazy, 'wrong_module': [name for name in lazy\n"
        "    if name in imported and getattr(door, name) is not getattr(\n"
        "        importlib.import_module(imported[name], door.__name__), name)]}))\n"
    )
    found = json.loads(_run(code))
    assert sorted(set(found["lazy"]) - set(imported)) == []
    assert found["wrong_module"] == []


def test_a_door_raises_attribute_error_for_a_name_it_does_not_export():
    for door in DOORS:
        code = (
            "import importlib\n"
            f"door = importlib.import_module({door!r})\n"
            "try:\n    door.NoSuchName\nexcept AttributeError as exc:\n    print(exc)\n"
        )
        assert _run(code).strip() == f"module {door!r} has no attribute 'NoSuchName'"


def test_importing_a_door_imports_no_kafka_client():
    code = (
        "import sys\n"
        "import flowbus.producer, flowbus.consumer, flowbus.producer.cli\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'confluent_kafka'))\n"
    )
    assert _run(code).strip() == "[]"


def _flowbus_imports(path: Path) -> list[tuple[int, str]]:
    imported = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            imported += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.append((node.lineno, node.module))
    return [(line, name) for line, name in imported if name.split(".")[0] == "flowbus"]


def test_samples_import_flowbus_only_through_its_doors():
    samples = sorted((ROOT / "examples").rglob("*.py"))
    assert samples
    behind_doors = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in samples
        for line, name in _flowbus_imports(path)
        if name not in ALLOWED_IN_SAMPLES
    ]
    assert behind_doors == []
