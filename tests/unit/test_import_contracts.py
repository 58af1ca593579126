"""The import contracts of pyproject.toml hold, and break when a forbidden import appears.

lint-imports runs on a copy of the sources laid out as setuptools installs them
(producer/ as flowbus/producer...), so it sees the package as users import it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

pytestmark = pytest.mark.skipif(
    not LINT_IMPORTS.exists(),
    reason=f"{LINT_IMPORTS} is missing: install the test extra (`make install`)",
)


def installed_layout(target: Path) -> Path:
    """Copy each package's modules to where the wheel puts them; return the import root."""
    setuptools = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]
    package_dir: dict[str, str] = setuptools["package-dir"]
    for package in setuptools["packages"]:
        # A package not in package-dir lives under its nearest mapped parent.
        parent = max((p for p in package_dir if package.startswith(p)), key=len)
        source = ROOT / package_dir[parent] / package[len(parent) + 1 :].replace(".", "/")
        destination = target / package.replace(".", "/")
        destination.mkdir(parents=True, exist_ok=True)
        for module in source.glob("*.py"):
            shutil.copy2(module, destination / module.name)
    return target


def lint_imports(import_root: Path) -> subprocess.CompletedProcess[str]:
    # Run where only the copy is importable as `flowbus` (PYTHONPATH comes before the
    # editable install's finder).
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(PYPROJECT)],
        cwd=import_root,
        env={**os.environ, "PYTHONPATH": str(import_root)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_contracts_hold_on_the_tree(tmp_path):
    result = lint_imports(installed_layout(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 5 kept, 0 broken." in result.stdout


def test_a_core_module_importing_a_side_breaks_the_core_contract(tmp_path):
    root = installed_layout(tmp_path)
    metadata = root / "flowbus" / "metadata.py"
    # Inside a function: lazy imports count too.
    metadata.write_text(
        metadata.read_text()
        + "\n\ndef _producer():\n    from flowbus.producer.event_producer import EventProducer\n"
        "\n    return EventProducer\n"
    )
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "The core imports no side, not even lazily BROKEN" in result.stdout
    assert "flowbus.metadata -> flowbus.producer.event_producer" in result.stdout
    # The consumer imports the metadata: it now reaches the producer through it.
    assert "Producer and consumer are independent BROKEN" in result.stdout


def test_a_new_core_module_is_covered(tmp_path):
    root = installed_layout(tmp_path)
    (root / "flowbus" / "brand_new.py").write_text("import flowbus.dev.devstack\n")
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Nothing in the package imports the dev tooling BROKEN" in result.stdout
    assert "flowbus.brand_new -> flowbus.dev.devstack" in result.stdout


def test_a_signal_module_reaching_the_avro_layer_breaks_the_signal_contract(tmp_path):
    root = installed_layout(tmp_path)
    signals = root / "flowbus" / "signals.py"
    # The wire profiles name the Avro naming: importing them, even lazily, reaches Avro.
    signals.write_text(
        signals.read_text() + "\n\ndef _profile(name):\n    from flowbus.wire import get_profile\n"
        "\n    return get_profile(name)\n"
    )
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "The signal modules do not import the Avro layer, not even lazily BROKEN" in (
        result.stdout
    )
    assert "flowbus.signals -> flowbus.wire" in result.stdout


def test_the_producer_importing_the_consumer_breaks_independence(tmp_path):
    root = installed_layout(tmp_path)
    (root / "flowbus" / "producer" / "sneaky.py").write_text("import flowbus.consumer.worker\n")
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Producer and consumer are independent BROKEN" in result.stdout


def test_the_webhooks_importing_the_engine_break_their_contract(tmp_path):
    root = installed_layout(tmp_path)
    (root / "flowbus" / "consumer" / "webhooks" / "sneaky.py").write_text(
        "from flowbus.consumer import engine\n"
    )
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "The webhooks import no worker internals BROKEN" in result.stdout
    assert "flowbus.consumer.webhooks.sneaky -> flowbus.consumer.engine" in result.stdout
