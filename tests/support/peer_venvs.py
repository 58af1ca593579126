"""The venvs of the test projects that run this checkout's flowbus in a framework of their
own (``tests/django_project``, ``tests/caluma_service``), built by
``benchmarks/setup_peer_venv.py`` and cached.

Building one takes a minute or two, so the session starts the builds of the venvs its tests
use as soon as they are collected (:func:`start`, one build at a time, on a thread), and the
tests' fixtures wait for them (:func:`python`) while other tests have run meanwhile.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from flowbus.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "benchmarks" / "setup_peer_venv.py"
BUILD_TIMEOUT_S = 900


def python312() -> str | None:
    """A Python 3.12 interpreter for Caluma 12.x (which requires >= 3.12), or None.

    Each candidate is run, not only found: a pyenv shim on PATH exists without a version
    selected."""
    candidates = [os.environ.get("FLOWBUS_TEST_PYTHON312")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12.*/bin/python")))
    candidates.append(shutil.which("python3.12"))
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return candidate
    return None


@dataclass(frozen=True)
class Project:
    """A test project: its directory, its venv's name, the interpreter building it."""

    directory: Path
    venv_name: str
    interpreter: Callable[[], str | None]


#: By the name of the fixture giving the venv's interpreter.
PROJECTS = {
    "django_python": Project(ROOT / "tests" / "django_project", "test-django-venv",
                             lambda: sys.executable),
    "caluma_python": Project(ROOT / "tests" / "caluma_service", "test-caluma-venv", python312),
}  # fmt: skip
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="peer-venv")
_builds: dict[str, Future[Path] | None] = {}
_running: list[subprocess.Popen[str]] = []


def _build(interpreter: str, project: Project) -> Path:
    checkout = hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]
    venv = get_settings().cache_dir / f"{project.venv_name}-{checkout}"
    process = subprocess.Popen(
        [interpreter, str(SETUP), str(project.directory), str(venv), "--editable", str(ROOT)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _running.append(process)
    try:
        stdout, stderr = process.communicate(timeout=BUILD_TIMEOUT_S)
    finally:
        _running.remove(process)
    assert process.returncode == 0, stderr[-3000:]
    return Path(stdout.strip().splitlines()[-1])


def start(fixture: str) -> None:
    """Queue the build of the venv of ``fixture`` (a key of :data:`PROJECTS`), once."""
    if fixture in _builds:
        return
    project = PROJECTS[fixture]
    interpreter = project.interpreter()
    if interpreter is None:
        _builds[fixture] = None
    else:
        _builds[fixture] = _executor.submit(_build, interpreter, project)


def python(fixture: str) -> Path | None:
    """The interpreter of the venv of ``fixture`` once built; None without the Python that
    builds it."""
    start(fixture)
    build = _builds[fixture]
    return None if build is None else build.result()


def stop() -> None:
    """Drop the builds not begun and end the one running (the session is over)."""
    _executor.shutdown(wait=False, cancel_futures=True)
    for process in list(_running):
        process.kill()
