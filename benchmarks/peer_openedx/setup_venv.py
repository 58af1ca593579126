"""Create the separate virtualenv for the Open edX peer benchmark.

Usage: python benchmarks/peer_openedx/setup_venv.py <venv-dir> [--force]

The venv is built with the interpreter running this script (Python >= 3.11) and gets the
pinned packages of requirements.txt beside this file. It is kept apart from flowbus's own
venv so the peer's dependencies (Django, edx-* packages) never leak into flowbus.
Re-running is cheap: when the venv already holds exactly this requirements.txt (a hash
stamp inside the venv says so) nothing is reinstalled. On success the last line printed is
the path of the venv's python, for the caller to run bench_openedx.py with.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
STAMP_NAME = ".peer_openedx_requirements.sha256"
MIN_PYTHON = (3, 11)
# Imported after install to prove the environment is usable, not just installed.
# edx_event_bus_kafka reads Django settings at import time, so settings come first.
SMOKE_IMPORTS = (
    "from django.conf import settings; settings.configure(); "
    "import django, attr, confluent_kafka, fastavro, openedx_events, edx_event_bus_kafka; "
    "from confluent_kafka.schema_registry.avro import AvroSerializer"
)


def venv_python(venv_dir: Path) -> Path:
    """Path of the interpreter inside ``venv_dir``."""
    if sys.platform == "win32":
        return venv_dir / "Scripts" / "python.exe"
    return venv_dir / "bin" / "python"


def requirements_hash() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def is_up_to_date(venv_dir: Path) -> bool:
    stamp = venv_dir / STAMP_NAME
    return (
        venv_python(venv_dir).exists()
        and stamp.exists()
        and stamp.read_text().strip() == requirements_hash()
    )


def run(cmd: list[str]) -> None:
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    # Child output goes to stderr: stdout carries only the venv python path.
    subprocess.run(cmd, check=True, stdout=sys.stderr)


def build(venv_dir: Path) -> None:
    # EnvBuilder(clear=True) empties the directory: refuse anything that is not a venv.
    if venv_dir.exists() and any(venv_dir.iterdir()) and not (venv_dir / "pyvenv.cfg").exists():
        raise SystemExit(f"{venv_dir} exists, is not empty and is not a venv; not touching it")
    venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
    python = str(venv_python(venv_dir))
    pip = [python, "-m", "pip", "--disable-pip-version-check"]
    run([*pip, "install", "--quiet", "-r", str(REQUIREMENTS)])
    run([*pip, "check"])
    run([python, "-c", SMOKE_IMPORTS])
    (venv_dir / STAMP_NAME).write_text(requirements_hash() + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("venv_dir", type=Path, help="where to create the peer virtualenv")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args(argv)

    if sys.version_info < MIN_PYTHON:
        parser.error(
            f"needs Python >= {'.'.join(map(str, MIN_PYTHON))}, "
            f"running {sys.version.split()[0]} ({sys.executable})"
        )
    venv_dir: Path = args.venv_dir.resolve()
    if args.force or not is_up_to_date(venv_dir):
        build(venv_dir)
    else:
        print(f"{venv_dir} is up to date with {REQUIREMENTS.name}", file=sys.stderr)
    print(venv_python(venv_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
