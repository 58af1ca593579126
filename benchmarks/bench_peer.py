"""Section 5, the peer: the Open edX event bus on the same broker, registry and event shape.

Drives ``peer_openedx/`` (see its README): ``setup_venv.py`` builds a separate virtualenv
from PyPI (cached under flowbus's cache dir, rebuilt only when its pinned requirements
change), then ``bench_openedx.py --mode both`` runs the peer's producer and consumer in
that venv and prints one JSON object, which is returned as is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench_common import Target

PEER_DIR = Path(__file__).resolve().parent / "peer_openedx"
SETUP_TIMEOUT_S = 900.0
# The peer's own watchdog stops it after --timeout and hard-exits 30 s later.
HARD_STOP_GRACE_S = 30.0


def peer_python(venv_dir: Path) -> Path:
    """Build (or reuse) the peer virtualenv; returns its python."""
    proc = subprocess.run(
        [sys.executable, str(PEER_DIR / "setup_venv.py"), str(venv_dir)],
        stdout=subprocess.PIPE,
        text=True,
        timeout=SETUP_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"peer venv setup failed (exit {proc.returncode})")
    return Path(proc.stdout.strip().splitlines()[-1])


def run(target: Target, venv_dir: Path, count: int, timeout: float) -> dict[str, Any]:
    """The peer's producer and consumer over ``count`` events; its JSON report."""
    python = peer_python(venv_dir)
    command = [str(python), str(PEER_DIR / "bench_openedx.py"), *target.args()]
    command += ["--events", str(count), "--mode", "both", "--timeout", str(timeout)]
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout + HARD_STOP_GRACE_S + 30,
        check=False,
    )
    try:
        report: dict[str, Any] = json.loads(proc.stdout)
    except ValueError as exc:
        raise RuntimeError(
            f"peer benchmark printed no JSON (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
        ) from exc
    report["exit_status"] = proc.returncode
    return report
