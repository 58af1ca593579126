"""Test harness: a real Kafka broker and a real Confluent-API schema registry.

Chosen once per session, in this order:
1. ``KAFKA_BOOTSTRAP_SERVERS`` and ``SCHEMA_REGISTRY_URL`` set: use them, manage nothing;
2. a Docker engine answers: testcontainers (apache/kafka + Apicurio Registry);
3. otherwise: the local stack (`flowbus.dev.devstack`) in a temporary state directory.
Every test under ``tests/integration`` is marked ``integration``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flowbus.dev import devstack
from flowbus.settings import get_settings

INTEGRATION_DIR = Path(__file__).parent / "integration"
#: Test-only modules (sample data, receivers for worker subprocesses).
SUPPORT_DIR = Path(__file__).parent / "support"
sys.path.insert(0, str(SUPPORT_DIR))
#: ``postgres_admin_url`` / ``postgres_url``: a real PostgreSQL for the tests that need one.
pytest_plugins = ["throwaway_postgres"]
KAFKA_IMAGE = f"apache/kafka:{devstack.KAFKA_VERSION}"
REGISTRY_IMAGE = f"apicurio/apicurio-registry:{devstack.REGISTRY_VERSION}"
_BACKEND_KEY = pytest.StashKey[str]()


@dataclasses.dataclass(frozen=True)
class KafkaStack:
    bootstrap_servers: str
    schema_registry_url: str
    backend: str
    kafka_version: str

    @property
    def env(self) -> dict[str, str]:
        """Environment for subprocesses (CLI, workers) that must talk to this stack."""
        pythonpath = os.pathsep.join(filter(None, [str(SUPPORT_DIR), os.environ.get("PYTHONPATH")]))
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "SCHEMA_REGISTRY_URL": self.schema_registry_url,
            "PYTHONPATH": pythonpath,
        }


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start building the test projects' venvs the collected tests use (a minute or two
    each): other tests run meanwhile."""
    import peer_venvs

    used = {name for item in session.items for name in getattr(item, "fixturenames", ())}
    for fixture in sorted(used & set(peer_venvs.PROJECTS)):
        peer_venvs.start(fixture)


def pytest_sessionfinish(session: pytest.Session) -> None:
    import peer_venvs

    peer_venvs.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    backend = terminalreporter.config.stash.get(_BACKEND_KEY, None)
    if backend:
        terminalreporter.write_line(f"integration backend: {backend}")


@contextlib.contextmanager
def _testcontainers_stack() -> Iterator[KafkaStack]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs
    from testcontainers.kafka import KafkaContainer

    with (
        KafkaContainer(KAFKA_IMAGE).with_kraft() as kafka,
        DockerContainer(REGISTRY_IMAGE).with_exposed_ports(8080) as registry,
    ):
        wait_for_logs(registry, "Listening on", timeout=120)
        url = (
            f"http://{registry.get_container_host_ip()}:{registry.get_exposed_port(8080)}"
            f"{devstack.CCOMPAT_PATH}"
        )
        yield KafkaStack(
            kafka.get_bootstrap_server(), url, "testcontainers", devstack.KAFKA_VERSION
        )


@pytest.fixture(scope="session")
def kafka_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaStack]:
    """The session's broker and registry (see the module docstring for the choice)."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    registry = os.environ.get("SCHEMA_REGISTRY_URL")
    with contextlib.ExitStack() as cleanup:
        if bootstrap and registry:
            stack = KafkaStack(bootstrap, registry, "external (from environment)", "unknown")
        elif devstack.docker_engine_answers():
            stack = cleanup.enter_context(_testcontainers_stack())
        else:
            local = devstack.LocalStack(
                tmp_path_factory.mktemp("devstack"), get_settings().cache_dir, die_with_parent=True
            )
            cleanup.callback(local.down)
            info = local.up()
            stack = KafkaStack(
                info.bootstrap_servers,
                info.schema_registry_url,
                f"local JVMs (Apicurio Registry {info.registry_version})",
                info.kafka_version,
            )
        description = (
            f"{stack.backend}: Kafka {stack.kafka_version} at {stack.bootstrap_servers}, "
            f"registry at {stack.schema_registry_url}"
        )
        request.config.stash[_BACKEND_KEY] = description
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"\nintegration backend: {description}")
        yield stack


@pytest.fixture(scope="session")
def dedicated_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.LocalStack]:
    """A broker (and registry) apart from the session's (the local stack, from the cached
    artifacts), which a test may stop and start again: same port, same data. Shared by the
    tests that do, each on topics of its own."""
    stack = devstack.LocalStack(
        tmp_path_factory.mktemp("dedicated-broker"), get_settings().cache_dir, die_with_parent=True
    )
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


@pytest.fixture
def unique_group() -> str:
    return f"test-group-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def unique_topic(kafka_stack: KafkaStack, request: pytest.FixtureRequest) -> Callable[..., str]:
    """Create a topic with a name no other test uses; returns its name."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka_stack.bootstrap_servers})
    prefix = request.node.name.replace("[", "-").replace("]", "")[:40]

    def create(partitions: int = 1, name: str | None = None) -> str:
        topic = name or f"{prefix}-{uuid.uuid4().hex[:8]}"
        futures = admin.create_topics([NewTopic(topic, num_partitions=partitions)])
        futures[topic].result(timeout=30)
        return topic

    return create


@pytest.fixture
def flowbus_env(kafka_stack: KafkaStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """flowbus settings pointing at the session's broker and registry (auto-registering)."""
    from flowbus.settings import get_settings

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_stack.bootstrap_servers)
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", kafka_stack.schema_registry_url)
    monkeypatch.setenv("FLOWBUS_SCHEMA_AUTO_REGISTER", "true")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
