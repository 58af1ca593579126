"""`flowbus consume` as a process: SIGTERM shuts down cleanly, SIGKILL loses nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sample_events
from broker_helpers import SHORT_SESSION_CONFIG, drop_torn_tail, read_to_end
from confluent_kafka import Consumer, TopicPartition

from flowbus.catalog import caluma
from flowbus.producer.event_producer import EventProducer
from flowbus.settings import get_settings

pytestmark = pytest.mark.usefixtures("flowbus_env")


def produce_events(topic: str, count: int) -> list[str]:
    signal_ = caluma.WORK_ITEM_POST_COMPLETE
    ids = []
    with EventProducer(install_exit_handlers=False) as producer:
        for _ in range(count):
            data = signal_.validate_data(**sample_events.work_item_event())
            metadata = signal_.generate_signal_metadata()
            producer.send(signal_, metadata, data, topic=topic, key=signal_.resolve_key(data))
            ids.append(str(metadata.id))
        assert producer.flush(30) == 0
    # Offset order: the asynchronous producer keeps each key's order, not the order across
    # keys (an event waiting for its schema id lets other keys' events pass), and every
    # event here has a key of its own.
    on_topic = [
        dict(message.headers())["ce_id"].decode()
        for message in sorted(read_to_end(topic), key=lambda message: message.offset())
    ][-count:]  # what this call produced: it follows what earlier calls flushed
    assert sorted(on_topic) == sorted(ids)
    return on_topic


def start_worker(kafka_stack, topic: str, group: str, events_file: Path, **env: str):
    return subprocess.Popen(
        [sys.executable, "-m", "flowbus", "consume", "--topic", topic, "--group", group,
         "--receivers", "recording_receivers"],
        env={**kafka_stack.env, "FLOWBUS_TEST_EVENTS_FILE": str(events_file), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def handled_ids(events_file: Path) -> list[str]:
    if not events_file.exists():
        return []
    text = events_file.read_text()
    complete = text[: text.rfind("\n") + 1]  # a last line without "\n" is still being written
    return [json.loads(line)["id"] for line in complete.splitlines() if line]


def wait_for_lines(events_file: Path, count: int, process: subprocess.Popen, timeout=120.0):
    deadline = time.monotonic() + timeout
    while len(handled_ids(events_file)) < count:
        if process.poll() is not None:
            raise AssertionError(f"worker exited early:\n{process.stderr.read()}")
        assert time.monotonic() < deadline, f"only {len(handled_ids(events_file))} of {count}"
        time.sleep(0.1)


def committed_offset(group: str, topic: str) -> int:
    consumer = Consumer(
        {"bootstrap.servers": get_settings().kafka_bootstrap_servers, "group.id": group}
    )
    try:
        [partition] = consumer.committed([TopicPartition(topic, 0)], timeout=30)
        return partition.offset
    finally:
        consumer.close()


def stop(process: subprocess.Popen) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    return process.returncode, stderr


def test_sigterm_exits_cleanly_and_the_next_worker_resumes_after_it(
    kafka_stack, unique_topic, unique_group, tmp_path
):
    topic, events_file = unique_topic(), tmp_path / "events.jsonl"
    first_ids = produce_events(topic, 20)
    worker = start_worker(kafka_stack, topic, unique_group, events_file)
    wait_for_lines(events_file, 20, worker)
    code, stderr = stop(worker)
    assert code == 0, stderr
    assert "stopped: 20 handled, 0 retried, 0 dead-lettered" in stderr
    assert committed_offset(unique_group, topic) == 20

    more_ids = produce_events(topic, 5)
    worker = start_worker(kafka_stack, topic, unique_group, events_file)
    wait_for_lines(events_file, 25, worker)
    code, stderr = stop(worker)
    assert code == 0, stderr
    assert handled_ids(events_file) == first_ids + more_ids  # no event twice, none skipped
    assert committed_offset(unique_group, topic) == 25


def test_sigkill_mid_stream_loses_nothing_and_duplicates_only_the_uncommitted(
    kafka_stack, unique_topic, unique_group, tmp_path
):
    topic, events_file = unique_topic(), tmp_path / "events.jsonl"
    total = 300
    ids = produce_events(topic, total)
    slow = {
        "FLOWBUS_TEST_RECEIVER_DELAY": "0.02",
        "FLOWBUS_KAFKA_CONFIG": json.dumps(
            {"auto.commit.interval.ms": 1000, **SHORT_SESSION_CONFIG}
        ),
    }
    worker = start_worker(kafka_stack, topic, unique_group, events_file, **slow)
    wait_for_lines(events_file, 150, worker)
    worker.kill()  # SIGKILL: no shutdown, no final commit
    worker.communicate(timeout=30)
    drop_torn_tail(events_file)
    handled_before_kill = len(handled_ids(events_file))
    committed = committed_offset(unique_group, topic)
    assert 0 < committed <= handled_before_kill < total

    worker = start_worker(kafka_stack, topic, unique_group, events_file)
    deadline = time.monotonic() + 120
    while set(handled_ids(events_file)) != set(ids):
        assert worker.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    code, stderr = stop(worker)
    assert code == 0, stderr
    handled = handled_ids(events_file)
    duplicates = len(handled) - total
    # At-least-once: exactly the handled-but-uncommitted window is delivered again.
    assert duplicates == handled_before_kill - committed
    assert handled[handled_before_kill:] == ids[committed:]


@pytest.mark.parametrize(
    ("command", "announced"),
    [
        (["consume", "--receivers", "recording_receivers"], "consuming "),
        (["webhooks", "serve"], "delivering webhooks for "),
    ],
    ids=["consume", "webhooks serve"],
)
def test_a_sigterm_right_after_the_start_line_stops_the_worker_cleanly(
    kafka_stack, unique_topic, unique_group, tmp_path, command, announced
):
    # The start line is the operator's (and a supervisor's) sign that the command runs:
    # from then on SIGTERM must stop it, although the worker's loop may not run yet.
    topic = unique_topic()
    process = subprocess.Popen(
        [sys.executable, "-m", "flowbus", *command, "--topic", topic, "--group", unique_group],
        env={
            **kafka_stack.env,
            "FLOWBUS_TEST_EVENTS_FILE": str(tmp_path / "events.jsonl"),
            "FLOWBUS_WEBHOOKS_DATABASE_URL": f"sqlite:///{tmp_path / 'webhooks.db'}",
        },
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    try:
        for line in process.stderr:
            if line.startswith(announced):
                break
        else:
            raise AssertionError(f"no start line; exit {process.wait()}")
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, rest
    assert "stopped:" in rest
