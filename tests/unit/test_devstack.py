"""Error paths of the local stack: each ends in a clear, actionable message."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowbus.cli import main
from flowbus.dev import devstack
from flowbus.settings import get_settings


def _fake_executable(directory: Path, name: str, script: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def isolated_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWBUS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("FLOWBUS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("SCHEMA_REGISTRY_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.fixture
def no_java_anywhere(tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(devstack, "JVM_DIRS", ())
    return empty


def test_port_in_use_is_named_with_the_port(isolated_settings):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["dev", "up", "--kafka-port", str(port)])
    assert result.exit_code == 2
    assert f"port {port} on 127.0.0.1 (Kafka) is already in use" in result.output
    assert "choose another port" in result.output


def test_no_java_says_what_to_install(no_java_anywhere):
    with pytest.raises(devstack.DevStackError) as info:
        devstack.find_java(17, "Apache Kafka 4.1.1")
    message = str(info.value)
    assert "Apache Kafka 4.1.1 needs Java 17 or newer" in message
    assert "no java executable found" in message
    assert "JAVA_HOME" in message


def test_too_old_java_is_reported_with_its_version(no_java_anywhere, monkeypatch, tmp_path):
    home = tmp_path / "jdk11"
    _fake_executable(home / "bin", "java", "echo 'openjdk version \"11.0.22\" 2024-01-16' >&2")
    monkeypatch.setenv("JAVA_HOME", str(home))
    with pytest.raises(devstack.DevStackError, match=r"needs Java 21 or newer: .* is Java 11"):
        devstack.find_java(21, "Apicurio Registry")


def test_java_version_strings_are_parsed(tmp_path):
    old = _fake_executable(tmp_path / "a", "java", "echo 'java version \"1.8.0_392\"' >&2")
    new = _fake_executable(tmp_path / "b", "java", "echo 'openjdk version \"25.0.3\" 2026' >&2")
    assert devstack.java_major(old) == 8
    assert devstack.java_major(new) == 25


def test_a_new_enough_java_is_chosen(no_java_anywhere, monkeypatch, tmp_path):
    home = tmp_path / "jdk21"
    java = _fake_executable(home / "bin", "java", "echo 'openjdk version \"21.0.1\"' >&2")
    monkeypatch.setenv("JAVA_HOME", str(home))
    assert devstack.find_java(17, "Kafka") == devstack.Java(java, 21)


def test_missing_maven_says_how_to_get_it(no_java_anywhere, tmp_path):
    with pytest.raises(devstack.DevStackError, match=r"Maven \(mvn\) is not on PATH.*apt-get"):
        devstack.fetch_kafka(tmp_path / "cache")


def test_failed_fetch_shows_maven_output(no_java_anywhere, tmp_path):
    _fake_executable(
        no_java_anywhere, "mvn", "echo '[ERROR] Could not find artifact org.apache.kafka'; exit 1"
    )
    with pytest.raises(devstack.DevStackError) as info:
        devstack.fetch_kafka(tmp_path / "cache")
    message = str(info.value)
    assert "fetching Apache Kafka 4.1.1 from Maven Central failed (mvn exit 1)" in message
    assert "Could not find artifact org.apache.kafka" in message
    assert not (tmp_path / "cache" / "kafka-4.1.1" / ".complete").exists()


def test_fetch_that_yields_no_jar_is_an_error(no_java_anywhere, tmp_path):
    _fake_executable(no_java_anywhere, "mvn", "exit 0")
    with pytest.raises(devstack.DevStackError, match=r"holds no kafka_2\.13-4\.1\.1\.jar"):
        devstack.fetch_kafka(tmp_path / "cache")


def test_server_dying_at_start_shows_last_log_lines(tmp_path):
    log = tmp_path / "kafka.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "print('ERROR Exiting Kafka: bad log.dirs'); raise SystemExit(1)",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    with pytest.raises(devstack.DevStackError) as info:
        devstack.wait_until_ready("Kafka 4.1.1", process, log, lambda: False, timeout=60)
    message = str(info.value)
    assert "Kafka 4.1.1 exited with status 1 while starting" in message
    assert "ERROR Exiting Kafka: bad log.dirs" in message


def test_server_that_never_answers_times_out_with_log(tmp_path):
    log = tmp_path / "registry.log"
    log.write_text("INFO still booting\n")
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(devstack.DevStackError, match=r"did not become ready within 1s"):
            devstack.wait_until_ready("registry", process, log, lambda: False, timeout=1)
    finally:
        process.kill()
        process.wait()


def test_status_without_a_stack_exits_1(isolated_settings):
    result = CliRunner().invoke(main, ["dev", "status"])
    assert result.exit_code == 1
    assert "no stack" in result.output


def test_unreadable_state_file_is_reported(isolated_settings):
    state = isolated_settings / "state"
    state.mkdir()
    (state / "stack.json").write_text("{not json")
    with pytest.raises(devstack.DevStackError, match=r"stack\.json is unreadable"):
        devstack.LocalStack(state, isolated_settings / "cache").info()


def test_docker_flag_without_engine_is_refused(isolated_settings, monkeypatch):
    monkeypatch.setattr(devstack, "docker_engine_answers", lambda timeout=10.0: False)
    result = CliRunner().invoke(main, ["dev", "up", "--docker"])
    assert result.exit_code == 2
    assert "--docker needs a running Docker engine" in result.output


def test_docker_flag_names_the_missing_compose_file(isolated_settings, monkeypatch):
    # An installed flowbus outside a source checkout: no docker-compose.yml in the cwd.
    monkeypatch.chdir(isolated_settings)
    result = CliRunner().invoke(main, ["dev", "up", "--docker"])
    assert result.exit_code == 2
    assert f"--docker needs {isolated_settings.resolve() / 'docker-compose.yml'}" in result.output
    assert "which does not exist" in result.output


def test_kafka_properties_are_single_node_kraft(tmp_path):
    props = dict(
        line.split("=", 1) for line in devstack.kafka_properties(tmp_path, 1234, 1235).splitlines()
    )
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:1234,CONTROLLER://127.0.0.1:1235"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["log.dirs"] == str(tmp_path)


def _recorded_stack(state: Path, kafka_port: int = 40001, registry_port: int = 40002) -> None:
    """A stack.json as `up` writes it, for processes that are long gone."""
    state.mkdir(parents=True, exist_ok=True)
    dead = 2**22 + 12345  # above the default pid_max: no such process
    info = devstack.StackInfo(
        bootstrap_servers=f"127.0.0.1:{kafka_port}",
        schema_registry_url=f"http://127.0.0.1:{registry_port}{devstack.CCOMPAT_PATH}",
        kafka=devstack.ProcessInfo("kafka", dead, kafka_port, str(state / "kafka.log")),
        registry=devstack.ProcessInfo("registry", dead, registry_port, str(state / "r.log")),
        kafka_version=devstack.KAFKA_VERSION,
        registry_version=devstack.REGISTRY_VERSION,
        started_at=0.0,
    )
    (state / "stack.json").write_text(info.to_json())


def test_up_refuses_other_ports_for_a_recorded_stack(isolated_settings):
    state = isolated_settings / "state"
    _recorded_stack(state)
    result = CliRunner().invoke(main, ["dev", "up", "--kafka-port", "40009"])
    assert result.exit_code == 2
    assert "runs its kafka on port 40001; `flowbus dev down` (which deletes its data)" in (
        result.output
    )
    assert (state / "stack.json").exists()


def test_up_restarts_a_dead_broker_on_its_recorded_port_or_says_it_is_taken(isolated_settings):
    state = isolated_settings / "state"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        _recorded_stack(state, kafka_port=port)
        (state / "server.properties").write_text(
            devstack.kafka_properties(state / "kafka-data", port, devstack.free_port())
        )
        (state / "kafka-data").mkdir()
        (state / "kafka-data" / "meta.properties").write_text("kept\n")
        result = CliRunner().invoke(main, ["dev", "up"])
    assert result.exit_code == 2
    assert f"port {port} on 127.0.0.1 (Kafka) is already in use" in result.output
    assert (state / "kafka-data" / "meta.properties").read_text() == "kept\n"  # data kept


def test_leftover_data_without_a_state_file_is_not_overwritten(isolated_settings):
    state = isolated_settings / "state"
    (state / "registry-data").mkdir(parents=True)
    (state / "registry-data" / "registry.mv.db").write_text("schemas")
    result = CliRunner().invoke(main, ["dev", "up"])
    assert result.exit_code == 2
    assert "registry-data holds the data of a stack whose" in result.output
    assert "`flowbus dev down` deletes it" in result.output
    assert (state / "registry-data" / "registry.mv.db").read_text() == "schemas"
    down = CliRunner().invoke(main, ["dev", "down"])
    assert down.exit_code == 0
    assert not (state / "registry-data").exists()


def test_stop_keeps_what_down_deletes(isolated_settings):
    state = isolated_settings / "state"
    _recorded_stack(state)
    for data in ("kafka-data", "registry-data"):
        (state / data).mkdir()
    stack = devstack.LocalStack(state, isolated_settings / "cache")
    assert stack.stop() == []  # nothing runs
    assert stack.info() is not None
    assert (state / "kafka-data").is_dir() and (state / "registry-data").is_dir()
    stack.down()
    assert stack.info() is None
    assert not (state / "kafka-data").exists() and not (state / "registry-data").exists()


def test_a_port_in_time_wait_counts_as_free():
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the JVM servers do
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first: its end waits in TIME_WAIT
        client.close()
    devstack.ensure_port_free(port, "Kafka")  # a restarted server could bind it
