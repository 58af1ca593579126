"""Every code sample of README.md and docs/*.md runs, from examples/, as a newcomer would.

**Adding a sample:** create the file under ``examples/`` and put
``<!-- example: examples/FILE -->`` on the line before its fenced block in the Markdown (the
block must equal the file: ``tests/unit/test_doc_examples.py``). This test then runs it, in
the document's order, in a working directory per document holding a copy of ``examples/``
(and of ``schemas/`` beside it):

* ``*.sh`` with bash (``set -eo pipefail``, ``flowbus`` on PATH); the variables it exports
  stay set for the samples after it, as in one terminal;
* ``test_*.py`` with pytest, other ``*.py`` with this venv's python;
* ``*.env`` are settings: set for the samples after them (but for the broker and registry,
  which stay the test's);
* ``*.json`` are payloads (parsed here, read by the samples); ``*.sql`` is run on a fresh
  PostgreSQL database and must create what ``flowbus outbox migrate`` creates.

Marker options: ``background`` (one long-running command: stopped with SIGTERM once its
output appeared and it handles SIGTERM, exit 0 expected), ``exit=N`` (the exit status it
must end with), ``module`` (a Python module the samples after it import),
``not-run="why"``. An ``<!-- output: examples/FILE -->`` ```` ```text ```` block after a
sample lists lines it must print (``…`` for any text). Samples run against the session's
broker and registry, with a topic prefix of their own (removed from what they print before
it is compared), a state directory and a copy of the schema catalog.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from doc_examples import DOCUMENTS, EXAMPLES_DIR, ROOT, Block, blocks, missing_output
from test_caluma import caluma_python, caluma_settings  # noqa: F401 (the venv fixture)
from test_openedx_bus import openedx_venv_python

VENV_BIN = Path(sys.executable).parent
#: A settings file's variables that stay the test's own: it names a deployment's hosts.
KEPT = {"KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL"}
RUN_TIMEOUT = 90.0  # seconds: an upper bound, the samples take a few seconds each


class Session:
    """One document's samples: a working directory and the environment they share."""

    def __init__(self, workdir: Path, env: dict[str, str], prefix: str) -> None:
        self.workdir = workdir
        self.env = env
        self.prefix = prefix
        self.python = sys.executable
        self.extra_site: str | None = None  # site-packages added after the venv's own

    def shown(self, printed: str) -> str:
        """What the user would have seen: the test's topic prefix taken out."""
        return printed.replace(self.prefix, "")

    def python_command(self, name: str) -> list[str]:
        if name.startswith("test_"):
            return [self.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", name]
        if self.extra_site:
            code = (
                "import runpy, site, sys; site.addsitedir(sys.argv.pop(1)); "
                "sys.path.insert(0, ''); runpy.run_path(sys.argv[1], run_name='__main__')"
            )
            return [self.python, "-c", code, self.extra_site, name]
        return [self.python, name]

    def run(self, block: Block) -> str:
        """Run one sample to its end; return what it printed (stdout and stderr)."""
        name = str(Path(block.path).relative_to("examples"))
        expected_exit = int(block.option("exit") or 0)
        env_file = self.workdir / ".env-after"
        if name.endswith(".sh"):
            script = f'set -eo pipefail\nsource "{name}"\nenv -0 > "{env_file}"\n'
            command = ["bash", "-c", script]
        elif name.endswith(".py"):
            command = self.python_command(name)
        elif name.endswith(".env"):
            self.env |= {k: v for k, v in settings_file(ROOT / block.path).items() if k not in KEPT}
            return ""
        else:
            raise AssertionError(f"{block.where}: no runner for {name}")
        done = subprocess.run(
            command, cwd=self.workdir, env=self.env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=RUN_TIMEOUT,
        )  # fmt: skip
        printed = self.shown(done.stdout)
        assert done.returncode == expected_exit, (
            f"{block.where}: {name} exited {done.returncode}\n{printed[-4000:]}"
        )
        if name.endswith(".sh") and env_file.exists():
            exported = env_file.read_text().split("\0")
            self.env = dict(item.split("=", 1) for item in exported if "=" in item)
            env_file.unlink()
        return printed

    def run_in_background(self, block: Block, expected: str) -> str:
        """Start a long-running sample, wait for its expected lines, SIGTERM it."""
        text = (ROOT / block.path).read_text()
        process = subprocess.Popen(
            ["bash", "-c", f"exec {text}"], cwd=self.workdir, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(process.stdout or ()), daemon=True)
        reader.start()
        deadline = time.monotonic() + RUN_TIMEOUT
        try:
            # Its lines printed, and its SIGTERM handler in place (the start line may come first).
            while missing_output(expected, self.shown("".join(lines))) or not handles_sigterm(
                process.pid
            ):
                if process.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
        reader.join(timeout=10)
        printed = self.shown("".join(lines))
        assert process.returncode == 0, f"{block.where}: exited {process.returncode}\n{printed}"
        return printed


def _environment(workdir: Path, prefix: str, kafka_stack) -> dict[str, str]:
    inherited = {
        key: value for key, value in os.environ.items()
        if not key.startswith("FLOWBUS_") and key != "PYTHONPATH"
    }  # fmt: skip
    return {
        **inherited,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_stack.bootstrap_servers,
        "SCHEMA_REGISTRY_URL": kafka_stack.schema_registry_url,
        "FLOWBUS_TOPIC_PREFIX": prefix,
        "FLOWBUS_STATE_DIR": str(workdir / ".state"),
        "FLOWBUS_SCHEMAS_DIR": str(workdir.parent / "schemas"),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",  # lines show at once, as on a terminal
    }


def handles_sigterm(pid: int) -> bool:
    """Whether the process has installed a SIGTERM handler (Linux: ``SigCgt`` in /proc)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


def settings_file(path: Path) -> dict[str, str]:
    """The ``NAME=value`` lines of an environment file (``#`` lines are comments)."""
    lines = [line for line in path.read_text().splitlines() if line and line[0] != "#"]
    return dict(line.split("=", 1) for line in lines)


def new_session(tmp_path: Path, kafka_stack) -> Session:
    workdir = tmp_path / "checkout" / "examples"  # beside a copy of the catalog, as in git
    shutil.copytree(EXAMPLES_DIR, workdir)
    shutil.copytree(ROOT / "schemas", workdir.parent / "schemas")
    prefix = f"examples-{uuid.uuid4().hex[:8]}-"
    return Session(workdir, _environment(workdir, prefix, kafka_stack), prefix)


def run_document(document: Path, current: Session, request: pytest.FixtureRequest) -> None:
    """Run the document's samples in order (``-s`` shows how long each took)."""
    document_blocks = blocks(document)
    outputs: dict[str, list[str]] = {}
    for block in document_blocks:
        if block.kind == "output":
            outputs.setdefault(block.path or "", []).append(block.text)
    for block in document_blocks:
        if block.kind != "example" or block.not_run or block.module:
            continue  # a module runs in the samples that import it
        expected = "".join(outputs.get(block.path or "", []))
        started = time.monotonic()
        if block.path.endswith(".json"):
            json.loads((ROOT / block.path).read_text())
        elif block.path.endswith(".sql"):
            check_outbox_table(ROOT / block.path, request.getfixturevalue("postgres_admin_url"))
        elif block.background:
            printed = current.run_in_background(block, expected)
            assert not missing_output(expected, printed), f"{block.where}: missing output"
        else:
            printed = current.run(block)
            missing = missing_output(expected, printed)
            assert not missing, f"{block.where}: missing {missing} in\n{printed[-4000:]}"
        print(f"{block.where} {block.path}: {time.monotonic() - started:.1f} s")


def check_outbox_table(sql: Path, admin_url: str) -> None:
    """The documented DDL creates the table and indexes ``flowbus outbox migrate`` does."""
    import psycopg

    def database() -> str:
        name = f"flowbus_examples_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return f"{admin_url.rpartition('/')[0]}/{name}"

    def shape(url: str) -> tuple[list[tuple], list[str]]:
        with psycopg.connect(url) as conn:
            columns = conn.execute(
                "SELECT column_name, data_type, is_nullable, column_default, is_identity "
                "FROM information_schema.columns WHERE table_name = 'flowbus_outbox' "
                "ORDER BY ordinal_position"
            ).fetchall()
            indexes = conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'flowbus_outbox' "
                "ORDER BY indexname"
            ).fetchall()
        return columns, [row[0] for row in indexes]

    documented, migrated = database(), database()
    with psycopg.connect(documented, autocommit=True) as conn:
        conn.execute(sql.read_text())
    migrate = subprocess.run(
        [str(VENV_BIN / "flowbus"), "outbox", "migrate", "--database", migrated],
        capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )  # fmt: skip
    assert migrate.returncode == 0, migrate.stderr
    documented_shape = shape(documented)
    assert documented_shape[0], "the documented SQL creates no flowbus_outbox"
    assert documented_shape == shape(migrated)


#: Documents whose samples need more than the broker and registry: their own tests below.
SPECIAL = {"caluma.md", "openedx.md"}


@pytest.mark.parametrize(
    "document", [d for d in DOCUMENTS if d.name not in SPECIAL], ids=lambda d: d.name
)
def test_document_samples_run(document, kafka_stack, tmp_path, request):
    run_document(document, new_session(tmp_path, kafka_stack), request)


def test_openedx_samples_run(kafka_stack, tmp_path, request):
    """With openedx-events from the Open edX test venv (same Python) after flowbus's own."""
    python = openedx_venv_python("pinned")
    [site_packages] = python.parent.parent.glob("lib/python*/site-packages")
    current = new_session(tmp_path, kafka_stack)
    current.extra_site = str(site_packages)
    run_document(ROOT / "docs" / "openedx.md", current, request)


def test_caluma_samples_run(kafka_stack, tmp_path, request, postgres_url):
    """In the Caluma service's venv (its ``python`` and ``flowbus`` first on PATH), with
    Caluma's own settings for a fresh database, as in the Caluma image."""
    python: Path = request.getfixturevalue("caluma_python")  # skips without Python 3.12
    current = new_session(tmp_path, kafka_stack)
    current.env |= caluma_settings(postgres_url)
    current.env["PATH"] = f"{python.parent}{os.pathsep}{current.env['PATH']}"
    current.python = str(python)
    run_document(ROOT / "docs" / "caluma.md", current, request)
