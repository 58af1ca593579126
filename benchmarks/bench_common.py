"""What every benchmark section shares: the broker it talks to, topics, clocks and memory."""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from flowbus.settings import FlowbusSettings

SERVICE_NAME = "flowbus-bench"
HERE = Path(__file__).resolve().parent
PEER_SETUP_TIMEOUT_S = 900.0


@dataclasses.dataclass(frozen=True)
class Target:
    """The broker and registry every section (and the peer) runs against."""

    bootstrap_servers: str
    schema_registry_url: str

    def settings(self) -> FlowbusSettings:
        """flowbus settings for this target, independent of FLOWBUS_* in the environment.

        Schemas are registered on first use: each run writes to fresh topics, hence fresh
        subjects (the registry cannot delete them).
        """
        return FlowbusSettings(
            kafka_bootstrap_servers=self.bootstrap_servers,
            schema_registry_url=self.schema_registry_url,
            schema_auto_register=True,
            service_name=SERVICE_NAME,
            kafka_config={},
            topic_prefix="",
            producer_config={},
            receiver_modules=[],
        )

    def args(self) -> list[str]:
        """Command-line arguments passing this target to a section's subprocess."""
        return ["--bootstrap", self.bootstrap_servers, "--registry-url", self.schema_registry_url]


def unique_name(kind: str) -> str:
    """A topic or group name no earlier run used."""
    return f"bench-{kind}-{uuid.uuid4().hex[:10]}"


def create_topic(target: Target, kind: str, partitions: int = 1) -> str:
    """Create a fresh topic (outside any timed span) and return its name."""
    name = unique_name(kind)
    admin = AdminClient({"bootstrap.servers": target.bootstrap_servers})
    future = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    try:
        future[name].result(timeout=30)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
    return name


def messages_in(target: Target, topic: str) -> int:
    """How many records the topic holds (high minus low watermark, all partitions)."""
    probe = Consumer(
        {"bootstrap.servers": target.bootstrap_servers, "group.id": unique_name("probe")}
    )
    try:
        meta = probe.list_topics(topic, timeout=30).topics[topic]
        total = 0
        for partition in meta.partitions:
            low, high = probe.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
            total += high - low
        return total
    finally:
        probe.close()


def rss_mib() -> float:
    """This process's resident set size (VmRSS) in MiB, from /proc."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def best_and_median(values: Sequence[float]) -> dict[str, Any]:
    """Summary of per-round rates: the median is the figure reported, every round kept."""
    return {
        "median": round(statistics.median(values), 1),
        "best": round(max(values), 1),
        "rounds": [round(v, 1) for v in values],
    }


def collect_garbage() -> None:
    """A full collection just before a timed window (the collector stays on inside it).

    Each side leaves garbage behind (the hand-written side its untimed list of datums, the
    prebuilt events are long-lived): without this, the full collection it triggers falls
    into whichever window comes next, 90-130 ms of a 1 s run.
    """
    gc.collect()


def time_loop(function: Callable[[Any], object], items: Sequence[Any]) -> float:
    """Seconds spent calling ``function`` on every item, in order."""
    start = time.perf_counter()
    for item in items:
        function(item)
    return time.perf_counter() - start


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending sequence (``fraction`` in 0..1)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(fraction * len(sorted_values))))
    return sorted_values[rank - 1]


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def peer_python(peer_dir: Path, venv_dir: Path) -> Path:
    """Build (or reuse) a peer's virtualenv with ``setup_peer_venv.py``; returns its python."""
    proc = subprocess.run(
        [sys.executable, str(HERE / "setup_peer_venv.py"), str(peer_dir), str(venv_dir)],
        stdout=subprocess.PIPE,
        text=True,
        timeout=PEER_SETUP_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"{peer_dir.name} venv setup failed (exit {proc.returncode})")
    return Path(proc.stdout.strip().splitlines()[-1])


def run_peer(command: list[str], timeout: float) -> dict[str, Any]:
    """Run a peer's benchmark process; its JSON report (stdout) with ``exit_status`` added."""
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    try:
        report: dict[str, Any] = json.loads(proc.stdout)
    except ValueError as exc:
        raise RuntimeError(
            f"{Path(command[1]).name} printed no JSON (exit {proc.returncode}):\n"
            f"{proc.stderr[-3000:]}"
        ) from exc
    report["exit_status"] = proc.returncode
    return report
