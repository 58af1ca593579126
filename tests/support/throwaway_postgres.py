"""A real PostgreSQL for tests: the ``postgres_admin_url`` and ``postgres_url`` fixtures.

PostgreSQL comes from ``FLOWBUS_TEST_POSTGRES_URL`` (a server the tests may create
databases on) or, when the PostgreSQL server binaries are installed, from a throwaway
cluster started on 127.0.0.1 for the session and removed afterwards. Without either, the
PostgreSQL cases are skipped with that reason. ``tests/conftest.py`` loads this plugin.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowbus.dev.devstack import free_port

PG_BIN_DIRS = [Path("/usr/lib/postgresql") / v / "bin" for v in ("17", "16", "15", "14")]


def _pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found and shutil.which("postgres"):
        return Path(found).resolve().parent
    for candidate in PG_BIN_DIRS:
        if (candidate / "initdb").exists() and (candidate / "postgres").exists():
            return candidate
    return None


@contextlib.contextmanager
def _throwaway_cluster() -> Iterator[str]:
    """Start a private PostgreSQL on 127.0.0.1; yields the admin URL."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL: set FLOWBUS_TEST_POSTGRES_URL or install the server")
    as_user: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="flowbus-pg-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL")
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(workdir, "postgres")
        workdir.chmod(workdir.stat().st_mode | stat.S_IXOTH)
    data = workdir / "data"
    port = free_port()
    server: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [*as_user, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
             "--no-sync", "-E", "UTF8"],
            check=True, capture_output=True,
        )  # fmt: skip
        server = subprocess.Popen(
            [*as_user, str(bin_dir / "postgres"), "-D", str(data), "-p", str(port),
             "-k", str(workdir), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.skip("the throwaway PostgreSQL did not start")
                time.sleep(0.2)
        yield url
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    pytest.importorskip("psycopg", reason="PostgreSQL tests need the 'postgres' extra")
    configured = os.environ.get("FLOWBUS_TEST_POSTGRES_URL")
    if configured:
        yield configured
        return
    with _throwaway_cluster() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty database for one test."""
    import psycopg

    name = f"flowbus_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    base, _, _ = postgres_admin_url.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
