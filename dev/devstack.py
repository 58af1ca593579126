"""A local Apache Kafka broker and Apicurio schema registry, without Docker.

Both servers are fetched from Maven Central with Maven (cached afterwards), run with the
machine's Java on 127.0.0.1, and described by a state file so that ``flowbus dev``
commands in later processes find, check and stop exactly what was started.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx

from flowbus.errors import FlowbusError

# ProcessInfo and StackInfo are re-exported: LocalStack hands them out.
from flowbus.stack_state import ProcessInfo as ProcessInfo
from flowbus.stack_state import StackInfo as StackInfo
from flowbus.stack_state import read_stack_info, state_file

KAFKA_VERSION = "4.1.1"
KAFKA_MIN_JAVA = 17
LOG4J_VERSION = "2.24.3"
#: Apicurio 3.1.x is not published on Maven Central; 3.3.x is, and needs Java 21.
REGISTRY_VERSION = "3.3.3"
REGISTRY_MIN_JAVA = 21
MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
CCOMPAT_PATH = "/apis/ccompat/v7"
#: Where JDKs are looked for when neither JAVA_HOME nor PATH offers a recent enough one.
JVM_DIRS: Sequence[Path] = (Path("/usr/lib/jvm"), Path("/opt/java"), Path("/usr/local/java"))
READY_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0
HOST = "127.0.0.1"


class DevStackError(FlowbusError):
    """The local stack could not be fetched, started, checked or stopped."""


class PortInUseError(DevStackError):
    """A port the stack needs is taken by another process."""


@dataclasses.dataclass(frozen=True)
class Java:
    """A java executable and its feature release number."""

    path: Path
    major: int


@dataclasses.dataclass(frozen=True)
class Artifacts:
    """Everything needed to run both servers, as found in the cache."""

    kafka_classpath: Path
    registry_jar: Path


# --- Java and Maven ---------------------------------------------------------------


def java_major(java: Path) -> int:
    """The feature release of a java executable (8 for 1.8, 17 for 17.0.x)."""
    try:
        proc = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError as exc:
        raise DevStackError(f"cannot run {java}: {exc}") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', proc.stderr + proc.stdout)
    if proc.returncode != 0 or not match:
        raise DevStackError(f"cannot tell the version of {java}: {proc.stderr.strip()[:200]}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def _java_candidates() -> Iterator[Path]:
    if home := os.environ.get("JAVA_HOME"):
        yield Path(home) / "bin" / "java"
    if on_path := shutil.which("java"):
        yield Path(on_path)
    for root in JVM_DIRS:
        if root.is_dir():
            yield from sorted(root.glob("*/bin/java"))


def find_java(minimum: int, purpose: str) -> Java:
    """The first java (JAVA_HOME, PATH, then the usual JDK folders) of at least ``minimum``."""
    seen: list[str] = []
    for candidate in _java_candidates():
        if not candidate.is_file() or not os.access(candidate, os.X_OK):
            continue
        try:
            major = java_major(candidate)
        except DevStackError as exc:
            seen.append(str(exc))
            continue
        if major >= minimum:
            return Java(candidate, major)
        seen.append(f"{candidate} is Java {major}")
    found = "; ".join(seen) if seen else "no java executable found (JAVA_HOME, PATH, /usr/lib/jvm)"
    raise DevStackError(
        f"{purpose} needs Java {minimum} or newer: {found}. "
        f"Install a JDK >= {minimum} or point JAVA_HOME at one."
    )


def find_maven() -> Path:
    mvn = shutil.which("mvn")
    if not mvn:
        raise DevStackError(
            "Maven (mvn) is not on PATH; it fetches Kafka and the registry from Maven Central. "
            "Install it (e.g. `apt-get install maven`)."
        )
    return Path(mvn)


def tail_log(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _run_maven(args: list[str], workdir: Path, what: str) -> None:
    log = workdir / "maven.log"
    with log.open("w") as out:
        proc = subprocess.run(
            [str(find_maven()), "-B", *args],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if proc.returncode != 0:
        raise DevStackError(
            f"fetching {what} from Maven Central failed (mvn exit {proc.returncode}); "
            f"last lines of {log}:\n{tail_log(log)}"
        )


_FETCH_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>org.flowbus.devstack</groupId>
  <artifactId>{artifact}</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>{dependencies}
  </dependencies>
</project>
"""

_DEPENDENCY = """
    <dependency>
      <groupId>{group}</groupId><artifactId>{artifact}</artifactId><version>{version}</version>
    </dependency>"""


def fetch_kafka(cache_dir: Path) -> Path:
    """The folder of Kafka's runtime jars, fetched once into the cache."""
    home = cache_dir / f"kafka-{KAFKA_VERSION}"
    libs = home / "libs"
    if (home / ".complete").exists():
        return libs
    home.mkdir(parents=True, exist_ok=True)
    deps = "".join(
        _DEPENDENCY.format(group=g, artifact=a, version=v)
        for g, a, v in [
            ("org.apache.kafka", "kafka_2.13", KAFKA_VERSION),
            # Kafka declares no logging backend; 4.x logs through slf4j 1.7 to log4j2.
            ("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J_VERSION),
        ]
    )
    (home / "pom.xml").write_text(_FETCH_POM.format(artifact="kafka", dependencies=deps))
    shutil.rmtree(libs, ignore_errors=True)
    _run_maven(
        [
            "-q",
            f"{MAVEN_DEPENDENCY_PLUGIN}:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={libs}",
        ],
        home,
        f"Apache Kafka {KAFKA_VERSION}",
    )
    if not any(libs.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
        raise DevStackError(f"Maven finished but {libs} holds no kafka_2.13-{KAFKA_VERSION}.jar")
    (home / ".complete").touch()
    return libs


def fetch_registry(cache_dir: Path) -> Path:
    """Apicurio Registry's ``quarkus-run.jar``, fetched and unpacked once into the cache."""
    home = cache_dir / f"apicurio-registry-{REGISTRY_VERSION}"
    app = home / "app"
    if (home / ".complete").exists():
        return _find_quarkus_jar(app)
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(_FETCH_POM.format(artifact="registry", dependencies=""))
    download = home / "download"
    _run_maven(
        [
            "-q",
            f"{MAVEN_DEPENDENCY_PLUGIN}:copy",
            f"-Dartifact=io.apicurio:apicurio-registry-app:{REGISTRY_VERSION}:tar.gz:all",
            f"-DoutputDirectory={download}",
        ],
        home,
        f"Apicurio Registry {REGISTRY_VERSION}",
    )
    archives = list(download.glob("*.tar.gz"))
    if not archives:
        raise DevStackError(f"Maven finished but {download} holds no registry archive")
    shutil.rmtree(app, ignore_errors=True)
    with tarfile.open(archives[0]) as tar:
        tar.extractall(app, filter="data")
    jar = _find_quarkus_jar(app)
    archives[0].unlink()
    (home / ".complete").touch()
    return jar


def _find_quarkus_jar(app: Path) -> Path:
    # The archive's layout differs between releases, so look rather than assume.
    jars = sorted(app.rglob("quarkus-run.jar"), key=lambda p: len(p.parts))
    if not jars:
        raise DevStackError(f"no quarkus-run.jar under {app}; delete {app.parent} and retry")
    return jars[0]


def fetch_artifacts(cache_dir: Path) -> Artifacts:
    """Fetch (first time) or find (afterwards) both servers' artifacts."""
    return Artifacts(kafka_classpath=fetch_kafka(cache_dir), registry_jar=fetch_registry(cache_dir))


# --- ports and processes -----------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def ensure_port_free(port: int, what: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers bind: a port left in TIME_WAIT by a server that just died is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    f"port {port} on {HOST} ({what}) is already in use by another process; "
                    f"stop that process or choose another port"
                ) from exc
            raise DevStackError(f"cannot bind {HOST}:{port} ({what}): {exc}") from exc


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_started_by(pid: int, marker: str) -> bool:
    """Whether ``pid`` is still a process of this stack (the pid may have been reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return pid_alive(pid)  # no /proc: trust the pid file
    return marker in cmdline


def _stop_pid(pid: int, timeout: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def wait_until_ready(
    what: str,
    process: subprocess.Popen[bytes] | int,
    log: Path,
    probe: Callable[[], bool],
    timeout: float,
) -> None:
    """Poll ``probe`` until it answers; fail with the log's tail if the process exits first.

    ``process`` is one this process started, or the pid of one an earlier ``up`` started.
    """
    deadline = time.monotonic() + timeout
    while True:
        if isinstance(process, int):
            exited = "" if pid_alive(process) else "exited"
        else:
            code = process.poll()
            exited = "" if code is None else f"exited with status {code}"
        if exited:
            raise DevStackError(
                f"{what} {exited} while starting; last lines of {log}:\n{tail_log(log)}"
            )
        if probe():
            return
        if time.monotonic() > deadline:
            raise DevStackError(
                f"{what} did not become ready within {timeout:.0f}s; last lines of {log}:\n"
                f"{tail_log(log)}"
            )
        time.sleep(0.5)


def kafka_answers(bootstrap: str, timeout: float = 2.0) -> bool:
    """Whether a broker answers an AdminClient metadata request."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        return bool(admin.list_topics(timeout=timeout).brokers)
    except Exception:  # KafkaException of any kind means "not yet"
        return False


def registry_answers(url: str, timeout: float = 2.0) -> bool:
    """Whether a Confluent-API registry answers ``GET /subjects`` with a list."""
    try:
        response = httpx.get(f"{url}/subjects", timeout=timeout)
        return response.status_code == 200 and isinstance(response.json(), list)
    except (httpx.HTTPError, ValueError):
        return False


# --- the stack ---------------------------------------------------------------------

_LOG4J2 = """Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: state.change.logger
        level: WARN
      - name: org.apache.kafka.controller
        level: WARN
"""


def kafka_properties(data_dir: Path, port: int, controller_port: int) -> str:
    """A single-node KRaft (broker + controller) configuration for tests and development."""
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "controller.quorum.bootstrap.servers": f"{HOST}:{controller_port}",
        "log.dirs": str(data_dir),
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "log.cleaner.dedupe.buffer.size": "2097152",
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


def _terminate_with_parent() -> None:
    """In the child before exec: ask Linux to send SIGTERM when the parent thread dies."""
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _cluster_id() -> str:
    # Given as --cluster-id=ID: one in 64 of these ids starts with "-", which the storage
    # tool's argument parser takes for an option when the id is a separate argument.
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class LocalStack:
    """Kafka + registry processes owned by one state directory.

    The broker's log directory and the registry's database live in the state directory
    too. :meth:`up` starts whatever is not running, on that data and on the ports recorded
    the first time; :meth:`stop` keeps both; only :meth:`down` deletes them.
    """

    def __init__(self, state_dir: Path, cache_dir: Path, *, die_with_parent: bool = False) -> None:
        self.state_dir = state_dir
        self.cache_dir = cache_dir
        # For test sessions: the servers get SIGTERM if the process that started them dies
        # without `down` (a crash, SIGKILL), so no JVM outlives its owner. Linux only.
        self.die_with_parent = die_with_parent
        self.state_file = state_file(state_dir)
        self.kafka_data = state_dir / "kafka-data"
        self.registry_data = state_dir / "registry-data"
        # Put on both command lines so `down` recognises its processes even after pid reuse.
        self.marker = f"-Dflowbus.devstack={state_dir.resolve()}"

    def info(self) -> StackInfo | None:
        """The recorded stack, or None when nothing was started here."""
        try:
            return read_stack_info(self.state_file)
        except ValueError as exc:
            raise DevStackError(f"{self.state_file} is unreadable ({exc}); remove it") from exc

    def health(self) -> dict[str, bool]:
        """Whether each recorded server is running and answering."""
        info = self.info()
        if info is None:
            return {"kafka": False, "registry": False}
        return {
            "kafka": pid_alive(info.kafka.pid) and kafka_answers(info.bootstrap_servers),
            "registry": pid_alive(info.registry.pid) and registry_answers(info.schema_registry_url),
        }

    def running(self, process: ProcessInfo) -> bool:
        """Whether the recorded process is alive and still one of this stack's."""
        return pid_alive(process.pid) and _pid_started_by(process.pid, self.marker)

    def up(
        self, *, kafka_port: int = 0, registry_port: int = 0, timeout: float = READY_TIMEOUT_S
    ) -> StackInfo:
        """Start what is not running and wait until both servers answer.

        Never deletes data: a broker or registry that stopped or died starts again on its
        data and its recorded port; one that runs is left alone (and waited for, if it does
        not answer yet). The first ``up`` in a state directory creates both.
        """
        info = self.info()
        if info is None:
            return self._create(kafka_port, registry_port, timeout)
        for asked, process in ((kafka_port, info.kafka), (registry_port, info.registry)):
            if asked and asked != process.port:
                raise DevStackError(
                    f"the stack in {self.state_dir} runs its {process.name} on port "
                    f"{process.port}; `flowbus dev down` (which deletes its data) before "
                    f"choosing port {asked}"
                )
        started: dict[str, subprocess.Popen[bytes]] = {}
        try:
            if not self.running(info.kafka):
                started["kafka"] = self._restart_kafka(info)
                info.kafka.pid = started["kafka"].pid
            if not self.running(info.registry):
                started["registry"] = self._restart_registry(info)
                info.registry.pid = started["registry"].pid
            self.state_file.write_text(info.to_json())
            self._wait_for_both(info, started.get("kafka"), started.get("registry"), timeout)
        except BaseException:
            for child in started.values():  # only what this call started: no data is lost
                _stop_pid(child.pid, STOP_TIMEOUT_S)
            raise
        if "kafka" in started:
            info.kafka_version = self._reported_kafka_version(Path(info.kafka.log)) or KAFKA_VERSION
            self.state_file.write_text(info.to_json())
        return info

    def _create(self, kafka_port: int, registry_port: int, timeout: float) -> StackInfo:
        for data in (self.kafka_data, self.registry_data):
            if data.exists():
                raise DevStackError(
                    f"{data} holds the data of a stack whose {self.state_file} is gone; "
                    f"`flowbus dev down` deletes it (or move it away)"
                )
        for port, what in ((kafka_port, "Kafka"), (registry_port, "schema registry")):
            if port:
                ensure_port_free(port, what)
        kafka_java = find_java(KAFKA_MIN_JAVA, f"Apache Kafka {KAFKA_VERSION}")
        registry_java = find_java(REGISTRY_MIN_JAVA, f"Apicurio Registry {REGISTRY_VERSION}")
        artifacts = fetch_artifacts(self.cache_dir)

        kafka_port = kafka_port or free_port()
        registry_port = registry_port or free_port()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            kafka = self._start_kafka(kafka_java, artifacts, kafka_port, free_port())
            try:
                registry = self._start_registry(registry_java, artifacts, registry_port)
            except BaseException:
                _stop_pid(kafka.pid, STOP_TIMEOUT_S)
                raise
        except BaseException:
            self.down()  # nothing was recorded yet: remove the fresh, empty data
            raise
        info = StackInfo(
            bootstrap_servers=f"{HOST}:{kafka_port}",
            schema_registry_url=f"http://{HOST}:{registry_port}{CCOMPAT_PATH}",
            kafka=ProcessInfo("kafka", kafka.pid, kafka_port, str(self.state_dir / "kafka.log")),
            registry=ProcessInfo(
                "registry", registry.pid, registry_port, str(self.state_dir / "registry.log")
            ),
            kafka_version=KAFKA_VERSION,
            registry_version=REGISTRY_VERSION,
            started_at=time.time(),
        )
        self.state_file.write_text(info.to_json())
        try:
            self._wait_for_both(info, kafka, registry, timeout)
        except BaseException:
            self.down()
            raise
        info.kafka_version = self._reported_kafka_version(Path(info.kafka.log)) or KAFKA_VERSION
        self.state_file.write_text(info.to_json())
        return info

    def _wait_for_both(
        self,
        info: StackInfo,
        kafka: subprocess.Popen[bytes] | None,
        registry: subprocess.Popen[bytes] | None,
        timeout: float,
    ) -> None:
        """Wait until both answer; a server started earlier is watched by its pid."""
        wait_until_ready(
            f"Kafka {KAFKA_VERSION}",
            kafka or info.kafka.pid,
            Path(info.kafka.log),
            lambda: kafka_answers(info.bootstrap_servers),
            timeout,
        )
        wait_until_ready(
            f"Apicurio Registry {REGISTRY_VERSION}",
            registry or info.registry.pid,
            Path(info.registry.log),
            lambda: registry_answers(info.schema_registry_url),
            timeout,
        )

    def _start_kafka(
        self, java: Java, artifacts: Artifacts, port: int, controller_port: int
    ) -> subprocess.Popen[bytes]:
        """Format fresh storage for a broker on these ports, then run it."""
        properties = self.state_dir / "server.properties"
        properties.write_text(kafka_properties(self.kafka_data, port, controller_port))
        log4j = self.state_dir / "log4j2.yaml"
        log4j.write_text(_LOG4J2)
        classpath = f"{artifacts.kafka_classpath}/*"
        log = self.state_dir / "kafka.log"
        with log.open("ab") as out:
            formatted = subprocess.run(
                [str(java.path), "-cp", classpath, f"-Dlog4j2.configurationFile={log4j}",
                 "kafka.tools.StorageTool", "format", "--standalone",
                 f"--cluster-id={_cluster_id()}", "-c", str(properties)],
                stdout=out, stderr=subprocess.STDOUT, check=False, timeout=120,
            )  # fmt: skip
        if formatted.returncode != 0:
            raise DevStackError(
                f"formatting Kafka storage failed; last lines of {log}:\n{tail_log(log)}"
            )
        return self._spawn_kafka(java, artifacts)

    def _restart_kafka(self, info: StackInfo) -> subprocess.Popen[bytes]:
        """Run the recorded broker again: its data, its port and its controller port."""
        controller_port = self._controller_port()
        ensure_port_free(info.kafka.port, "Kafka")
        ensure_port_free(controller_port, "Kafka controller")
        java = find_java(KAFKA_MIN_JAVA, f"Apache Kafka {KAFKA_VERSION}")
        artifacts = fetch_artifacts(self.cache_dir)
        if not (self.kafka_data / "meta.properties").is_file():  # the data was removed
            return self._start_kafka(java, artifacts, info.kafka.port, controller_port)
        return self._spawn_kafka(java, artifacts)

    def _controller_port(self) -> int:
        properties = self.state_dir / "server.properties"
        try:
            text = properties.read_text()
        except OSError as exc:
            raise DevStackError(f"cannot read {properties} ({exc}); `flowbus dev down`") from exc
        match = re.search(r"^controller\.quorum\.bootstrap\.servers=.*:(\d+)$", text, re.M)
        if not match:
            raise DevStackError(f"{properties} names no controller port; `flowbus dev down`")
        return int(match.group(1))

    def _spawn_kafka(self, java: Java, artifacts: Artifacts) -> subprocess.Popen[bytes]:
        """Run the broker on the formatted storage and the properties in the state dir."""
        log4j = self.state_dir / "log4j2.yaml"
        command = [
            str(java.path), "-Xms512m", "-Xmx1g", "-server", "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}", self.marker,
            "-cp", f"{artifacts.kafka_classpath}/*", "kafka.Kafka",
            str(self.state_dir / "server.properties"),
        ]  # fmt: skip
        return self._spawn(command, self.state_dir / "kafka.log", cwd=self.state_dir)

    def stop_kafka(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop only the broker (SIGTERM, a clean shutdown), keeping its data and ports.

        The registry keeps running; :meth:`start_kafka` brings the same broker back.
        """
        info = self._require_info("stop_kafka")
        if self.running(info.kafka):
            _stop_pid(info.kafka.pid, timeout)
        if pid_alive(info.kafka.pid):
            raise DevStackError(f"Kafka (pid {info.kafka.pid}) did not stop")

    def start_kafka(self, timeout: float = READY_TIMEOUT_S) -> StackInfo:
        """Restart a broker stopped by :meth:`stop_kafka`: same data, same ports.

        :meth:`up` does the work (so a registry that is not running starts too). Returns
        the stack with the broker's new pid, also recorded in the state file.
        """
        info = self._require_info("start_kafka")
        if self.running(info.kafka):
            raise DevStackError(f"Kafka is still running (pid {info.kafka.pid}); stop it first")
        if not self.kafka_data.is_dir():
            raise DevStackError(f"no Kafka data in {self.state_dir}; start the stack with up()")
        return self.up(timeout=timeout)

    def _require_info(self, action: str) -> StackInfo:
        info = self.info()
        if info is None:
            raise DevStackError(f"{action}: no stack was started in {self.state_dir}")
        return info

    def _restart_registry(self, info: StackInfo) -> subprocess.Popen[bytes]:
        """Run the recorded registry again: its database, its port."""
        ensure_port_free(info.registry.port, "schema registry")
        java = find_java(REGISTRY_MIN_JAVA, f"Apicurio Registry {REGISTRY_VERSION}")
        return self._start_registry(java, fetch_artifacts(self.cache_dir), info.registry.port)

    def _start_registry(
        self, java: Java, artifacts: Artifacts, port: int
    ) -> subprocess.Popen[bytes]:
        management_port = free_port()
        command = [
            str(java.path), "-Xms128m", "-Xmx512m",
            f"-Dquarkus.http.host={HOST}", f"-Dquarkus.http.port={port}",
            # The management interface (health, metrics) is compiled in and would listen on
            # 0.0.0.0:9000, shared by every stack: keep it on loopback and a port of its own.
            f"-Dquarkus.management.host={HOST}",
            f"-Dquarkus.management.port={management_port}",
            # Apicurio's SQL storage on an H2 database in a file, instead of its default
            # in-memory one: schemas and their ids survive a restart, as in a real
            # registry. (Why not KafkaSQL: README, "A local broker and registry".) H2 keeps
            # no log and writes committed changes within WRITE_DELAY (500 ms by default): a
            # registry killed meanwhile lost the schema it had just registered. 0 writes
            # them at commit.
            "-Dapicurio.storage.kind=sql", "-Dapicurio.storage.sql.kind=h2",
            "-Dapicurio.datasource.url=jdbc:h2:file:"
            f"{self.registry_data / 'registry'};WRITE_DELAY=0",
            self.marker,
            "-jar", str(artifacts.registry_jar),
        ]  # fmt: skip
        return self._spawn(command, self.state_dir / "registry.log", cwd=self.state_dir)

    def _spawn(self, command: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                start_new_session=True,  # own process group: `down` stops the whole tree
                preexec_fn=_terminate_with_parent if self.die_with_parent else None,
            )

    @staticmethod
    def _reported_kafka_version(log: Path) -> str | None:
        found = re.findall(r"Kafka version: (\S+)", log.read_text(errors="replace"))
        return found[-1] if found else None

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> list[str]:
        """Stop exactly the processes this state dir started, keeping the stack's data and
        ports for the next :meth:`up`; returns what was stopped."""
        info = self.info()
        if info is None:
            return []
        stopped = []
        for process in (info.registry, info.kafka):
            if self.running(process):
                _stop_pid(process.pid, timeout)
                stopped.append(f"{process.name} (pid {process.pid})")
        return stopped

    def down(self, timeout: float = STOP_TIMEOUT_S) -> list[str]:
        """Stop the stack and delete its data (topics and schemas together, so no record
        outlives its schema); returns what was stopped."""
        stopped = self.stop(timeout)
        self.state_file.unlink(missing_ok=True)
        for data in (self.kafka_data, self.registry_data):
            shutil.rmtree(data, ignore_errors=True)
        return stopped

    def running_pids(self) -> list[int]:
        """Pids on this machine whose command line carries this stack's marker."""
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if self.marker.encode() in (entry / "cmdline").read_bytes():
                        pids.append(int(entry.name))
        return pids


# --- Docker --------------------------------------------------------------------------

#: Host ports published by docker-compose.yml.
COMPOSE_BOOTSTRAP = f"{HOST}:9092"
COMPOSE_REGISTRY_URL = f"http://{HOST}:8081{CCOMPAT_PATH}"


def docker_engine_answers(timeout: float = 10.0) -> bool:
    """Whether a Docker engine answers (a `docker` client alone is not enough)."""
    if not shutil.which("docker"):
        return False
    try:
        proc = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and bool(proc.stdout.strip())


def compose(compose_file: Path, *args: str) -> None:
    """Run ``docker compose`` on the project's compose file; fail with its output."""
    if not compose_file.is_file():
        # The wheel does not ship it: docker-compose.yml is at the root of a source checkout.
        raise DevStackError(
            f"--docker needs {compose_file.resolve()}, which does not exist: run it from a "
            "flowbus source checkout (docker-compose.yml is at its root), or drop --docker "
            "to run local JVMs"
        )
    if not docker_engine_answers():
        raise DevStackError("--docker needs a running Docker engine; none answers here")
    proc = subprocess.run(
        ["docker", "compose", "-f", str(compose_file), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise DevStackError(f"docker compose {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
