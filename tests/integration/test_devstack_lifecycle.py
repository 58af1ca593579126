"""`eval "$(flowbus dev up)"; flowbus dev status; flowbus dev down` in a real shell."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka.admin import AdminClient, NewTopic

from flowbus.dev import devstack
from flowbus.settings import get_settings

FLOWBUS = shutil.which("flowbus") or str(Path(sys.executable).parent / "flowbus")


def stack_env(state_dir: Path) -> dict[str, str]:
    """The environment of `flowbus dev` commands on the stack in ``state_dir``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL")
    }
    return env | {
        "FLOWBUS_STATE_DIR": str(state_dir),
        "FLOWBUS_CACHE_DIR": str(get_settings().cache_dir),
    }


def test_up_status_down_leaves_no_process(tmp_path):
    state_dir = tmp_path / "state"
    flowbus = FLOWBUS
    env = stack_env(state_dir)
    script = f"""
set -e
eval "$({flowbus} dev up)"
echo "bootstrap=$KAFKA_BOOTSTRAP_SERVERS"
echo "registry=$SCHEMA_REGISTRY_URL"
{flowbus} dev status
eval "$({flowbus} dev up)"   # a second `up` reuses the running stack
{flowbus} dev status
"""
    stack = devstack.LocalStack(state_dir, get_settings().cache_dir)
    try:
        run = subprocess.run(
            ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=300
        )
        assert run.returncode == 0, run.stderr
        info = stack.info()
        assert info is not None
        assert f"bootstrap={info.bootstrap_servers}" in run.stdout
        assert f"registry={info.schema_registry_url}" in run.stdout
        assert run.stdout.count("up\n") == 4  # two status calls, two components each
        pids = sorted(stack.running_pids())
        assert pids == sorted([info.kafka.pid, info.registry.pid])
    finally:
        down = subprocess.run(
            [flowbus, "dev", "down"], env=env, capture_output=True, text=True, timeout=120
        )
    assert down.returncode == 0, down.stderr
    assert "stopped: registry" in down.stderr
    assert stack.running_pids() == []
    after = subprocess.run([flowbus, "dev", "status"], env=env, capture_output=True, timeout=60)
    assert after.returncode == 1


def test_the_readme_dev_stack_sample_runs_as_written(tmp_path):
    # README.md's "A local broker and registry" block, examples/devstack.sh, run from the
    # checkout (it names .venv/bin/flowbus) on a stack of its own.
    root = Path(__file__).resolve().parents[2]
    state_dir = tmp_path / "state"
    env = stack_env(state_dir)
    env["PATH"] = f"{Path(FLOWBUS).parent}{os.pathsep}{env.get('PATH', '')}"
    stack = devstack.LocalStack(state_dir, get_settings().cache_dir)
    try:
        run = subprocess.run(
            ["bash", "-e", str(root / "examples" / "devstack.sh")],
            cwd=root, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        if stack.running_pids():
            subprocess.run([FLOWBUS, "dev", "down"], env=env, capture_output=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("up\n") == 2, run.stdout  # `dev status`: both components
    assert stack.running_pids() == []  # `dev stop`, then `dev down`
    assert not stack.kafka_data.exists() and not stack.registry_data.exists()  # down deletes


def _register(url: str, subject: str, schema: dict[str, Any]) -> int:
    response = httpx.post(
        f"{url}/subjects/{subject}/versions", json={"schema": json.dumps(schema)}, timeout=30
    )
    response.raise_for_status()
    return int(response.json()["id"])


def _schema(name: str, *fields: str) -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": [{"name": f, "type": "int"} for f in fields]}


def _create_topics(bootstrap: str, topics: list[str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})  # gone before a broker is killed
    for future in admin.create_topics([NewTopic(t, num_partitions=1) for t in topics]).values():
        future.result(timeout=30)


def _topics(bootstrap: str) -> set[str]:
    return set(AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=30).topics)


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):  # our child (the stack was started here)
        os.waitpid(pid, 0)


def _dev_up(state_dir: Path) -> subprocess.CompletedProcess[str]:
    run = subprocess.run(
        [FLOWBUS, "dev", "up"], env=stack_env(state_dir), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return run


def _produce_cases(bootstrap: str, registry: str, topic: str, cases: int) -> int:
    """Each case's Caluma lifecycle, Avro with registered schemas; returns how many."""
    from flowbus.dev.demo_workflow import lifecycle
    from flowbus.producer.event_producer import EventProducer
    from flowbus.settings import FlowbusSettings

    settings = FlowbusSettings(
        kafka_bootstrap_servers=bootstrap, schema_registry_url=registry, schema_auto_register=True
    )
    events = [e for _ in range(cases) for e in lifecycle(uuid.uuid4(), datetime.now(UTC))]
    with EventProducer(settings=settings, synchronous=True, install_exit_handlers=False) as out:
        for signal_, data in events:
            validated = signal_.validate_data(**data)
            out.send(signal_, signal_.generate_signal_metadata(), validated, topic=topic)
    return len(events)


def _decoded(bootstrap: str, registry: str, topic: str) -> int:
    """How many of the topic's records a fresh deserializer (no cached ids) decodes."""
    from confluent_kafka import Consumer, TopicPartition

    from flowbus.avro.serializer import EventDeserializer
    from flowbus.signals import WorkflowSignal

    deserializer = EventDeserializer(registry_url=registry)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex})
    try:
        _, end = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
        consumer.assign([TopicPartition(topic, 0, 0)])
        decoded = 0
        for message in consumer.consume(num_messages=end, timeout=30):
            event_type = dict(message.headers())["ce_type"].decode()
            deserializer.deserialize(
                WorkflowSignal.get_signal_by_type(event_type), message.value(), topic
            )
            decoded += 1
        return decoded
    finally:
        consumer.close()


def test_dev_up_restarts_only_what_died_and_keeps_topics_and_schema_ids(tmp_path, monkeypatch):
    """A dedicated stack: its registry killed (SIGKILL), then `flowbus dev up`; then its
    broker killed, then `dev up` again. Each time the survivor keeps its pid and port, the
    dead one comes back on its port and its data: the topics are still there, a schema
    registered before keeps its id, a new schema gets a new id, and every record written
    before still decodes."""
    # A cluster id starting with "-" (one random id in 64) once failed the storage format.
    monkeypatch.setattr(devstack, "_cluster_id", lambda: "-" + "A" * 21)
    state_dir = tmp_path / "state"
    stack = devstack.LocalStack(state_dir, get_settings().cache_dir, die_with_parent=True)
    try:
        first = stack.up()
        topics = [f"keep-{i}-{uuid.uuid4().hex[:6]}" for i in range(3)]
        _create_topics(first.bootstrap_servers, topics)
        registry = first.schema_registry_url
        written = _produce_cases(first.bootstrap_servers, registry, topics[0], cases=4)
        ids = {
            "keep-a-value": _register(registry, "keep-a-value", _schema("A", "a")),
            "keep-b-value": _register(registry, "keep-b-value", _schema("B", "b1", "b2")),
        }

        _kill(first.registry.pid)
        run = _dev_up(state_dir)
        second = stack.info()
        assert second is not None
        assert (second.kafka.pid, second.kafka.port) == (first.kafka.pid, first.kafka.port)
        assert stack.running(second.kafka)
        assert second.registry.port == first.registry.port
        assert second.registry.pid != first.registry.pid
        assert "Kafka 4.1.1 already running" in run.stderr
        assert "Apicurio Registry 3.3.3 restarted on its data" in run.stderr
        assert set(topics) <= _topics(second.bootstrap_servers)
        # Registering the same schema again answers the id it had before the restart.
        assert _register(registry, "keep-a-value", _schema("A", "a")) == ids["keep-a-value"]
        assert _register(registry, "keep-b-value", _schema("B", "b1", "b2")) == ids["keep-b-value"]
        new_id = _register(registry, "keep-c-value", _schema("C", "c1", "c2", "c3"))
        assert new_id not in ids.values()
        assert _decoded(second.bootstrap_servers, registry, topics[0]) == written == 32

        _kill(second.kafka.pid)
        run = _dev_up(state_dir)
        third = stack.info()
        assert third is not None
        assert (third.registry.pid, third.registry.port) == (
            second.registry.pid,
            first.registry.port,
        )
        assert third.kafka.port == first.kafka.port
        assert third.kafka.pid != first.kafka.pid
        assert "Kafka 4.1.1 restarted on its data" in run.stderr
        assert "Apicurio Registry 3.3.3 already running" in run.stderr
        assert set(topics) <= _topics(third.bootstrap_servers)
        assert _register(registry, "keep-c-value", _schema("C", "c1", "c2", "c3")) == new_id
        assert _decoded(third.bootstrap_servers, registry, topics[0]) == written
    finally:
        stack.down()
    assert stack.running_pids() == []
    assert not stack.kafka_data.exists() and not stack.registry_data.exists()
