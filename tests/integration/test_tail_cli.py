"""``flowbus tail`` on the real broker and registry: decoded events, poison records shown."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest
from click.testing import CliRunner, Result
from confluent_kafka import Producer

from flowbus import cloudevents
from flowbus.catalog import caluma
from flowbus.cli import main
from flowbus.errors import TopicReadError
from flowbus.settings import get_settings
from flowbus.signal_examples import example_payload

pytestmark = pytest.mark.usefixtures("flowbus_env")

WORK_ITEM_DONE = caluma.post_complete_work_item.event_type
CASE_DONE = caluma.post_complete_case.event_type


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def work_item_payload() -> dict:
    payload = example_payload(caluma.post_complete_work_item)
    payload["work_item"] |= {"id": str(uuid.uuid4()), "task_slug": "review", "status": "completed"}
    payload["user"] = {"username": "alice", "groups": ["reviewers"], "group": "reviewers"}
    payload["context"] = {"request": "r-1", "n": 0}
    return payload


def case_payload() -> dict:
    payload = example_payload(caluma.post_complete_case)
    payload["case"] |= {"id": str(uuid.uuid4()), "workflow_slug": "permit", "status": "completed"}
    return payload


def produce(topic: str, event_type: str, payload: dict) -> dict:
    """``flowbus produce --json``; returns its delivery report."""
    result = run("produce", event_type, "--data", json.dumps(payload), "--topic", topic, "--json")
    assert result.exit_code == 0, result.output
    [line] = result.stdout.splitlines()
    return json.loads(line)


def produce_raw(topic: str, value: bytes, headers: list[tuple[str, bytes]], key: bytes) -> None:
    producer = Producer({"bootstrap.servers": get_settings().kafka_bootstrap_servers})
    producer.produce(topic, key=key, value=value, headers=headers)
    assert producer.flush(30) == 0


def poison_headers() -> list[tuple[str, bytes]]:
    """Valid CloudEvents headers of a work item event: only the value will be bad."""
    metadata = caluma.post_complete_work_item.generate_signal_metadata()
    headers = cloudevents.to_headers(metadata)
    return [(k, v if isinstance(v, bytes) else str(v).encode()) for k, v in headers]


def test_tail_json_decodes_two_event_types_and_shows_the_poison_record(unique_topic):
    topic = unique_topic()
    item, case = work_item_payload(), case_payload()
    reports = [produce(topic, WORK_ITEM_DONE, item), produce(topic, CASE_DONE, case)]
    unknown_schema_id = b"\x00\x7f\xff\xff\xf0"  # Confluent framing, an id nobody has
    produce_raw(topic, unknown_schema_id + b"not avro", poison_headers(), b"p")

    result = run("tail", topic, "--json", "--from-beginning", "--max", "3", "--timeout", "20")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    shown = [json.loads(line) for line in lines]  # every line is JSON
    assert {tuple(s) for s in shown} == {tuple(shown[0])}  # the same keys, in the same order
    first, second, poison = shown
    assert (first["event_type"], first["id"], first["offset"]) == (
        WORK_ITEM_DONE, reports[0]["event_id"], reports[0]["offset"],
    )  # fmt: skip
    assert first["data"] == item
    assert first["failure"] is None
    assert first["key"] == item["work_item"]["case_id"]
    assert first["source"].startswith("flowbus/")
    assert (second["event_type"], second["id"]) == (CASE_DONE, reports[1]["event_id"])
    assert second["data"] == case
    assert poison["data"] is None
    assert poison["failure"]["reason"] == "undecodable"
    assert poison["failure"]["kind"] == "data"
    assert poison["failure"]["error_type"] == "UnknownSchemaError"
    assert (poison["event_type"], poison["key"], poison["offset"]) == (WORK_ITEM_DONE, "p", 2)


def test_tail_table_filters_by_type_and_names_the_reason(unique_topic):
    topic = unique_topic()
    produce(topic, WORK_ITEM_DONE, work_item_payload())
    produce(topic, CASE_DONE, case_payload())
    produce_raw(topic, b"raw bytes", [], b"no-headers")

    cases = run("tail", topic, "--from-beginning", "--type", "*.case.*", "--timeout", "3")
    everything = run("tail", topic, "--from-beginning", "--max", "3", "--timeout", "20")

    assert cases.exit_code == 0, cases.output
    headings = [line for line in cases.stdout.splitlines() if not line.startswith(" ")]
    assert len(headings) == 1 and f"{topic}[0]@1" in headings[0] and CASE_DONE in headings[0]
    assert everything.exit_code == 0, everything.output
    assert (
        f"{topic}[0]@2  ?  ?  ?  key=no-headers  source=?\n"
        "    POISON malformed-headers (data failure): MissingHeaderError:"
    ) in everything.stdout


def test_tail_follows_new_records_only(unique_topic, kafka_stack):
    topic = unique_topic()
    produce(topic, CASE_DONE, case_payload())  # before the tail: not shown
    tail = subprocess.Popen(
        [sys.executable, "-m", "flowbus", "tail", topic, "--json", "--max", "1", "--timeout", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**kafka_stack.env, "FLOWBUS_SCHEMA_AUTO_REGISTER": "true"},
    )
    sent: set[str] = set()
    deadline = time.monotonic() + 60
    try:
        # The tail starts at the end offsets it finds: keep sending until it shows one.
        while tail.poll() is None and time.monotonic() < deadline:
            sent.add(produce(topic, WORK_ITEM_DONE, work_item_payload())["event_id"])
            time.sleep(0.5)
        out, err = tail.communicate(timeout=30)
    finally:
        tail.kill()
    assert tail.returncode == 0, err
    [line] = out.splitlines()
    shown = json.loads(line)
    assert shown["event_type"] == WORK_ITEM_DONE and shown["id"] in sent


def test_tail_applies_the_topic_prefix(unique_topic, monkeypatch):
    topic = unique_topic()
    prefix, _, name = topic.partition("-")
    produce(topic, CASE_DONE, case_payload())
    monkeypatch.setenv("FLOWBUS_TOPIC_PREFIX", f"{prefix}-")
    get_settings.cache_clear()

    result = run("tail", name, "--json", "--from-beginning", "--max", "1", "--timeout", "20")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["topic"] == topic


def test_tail_of_an_unknown_topic_is_a_usage_error():
    result = run("tail", f"no-such-topic-{uuid.uuid4().hex[:8]}", "--timeout", "5")

    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_tail_against_a_closed_port_fails_naming_the_setting(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    get_settings.cache_clear()
    started = time.monotonic()

    result = run("tail", "anything", "--timeout", "5")

    assert time.monotonic() - started < 15
    assert result.exit_code != 0
    said = f"{result.output} {result.exception}"
    assert isinstance(result.exception, TopicReadError | SystemExit), result.exception
    assert "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1" in said


def test_a_signals_example_produces_and_tails_back_unchanged(unique_topic):
    topic = unique_topic()
    example = run("signals", "example", WORK_ITEM_DONE)
    assert example.exit_code == 0, example.output

    sent = run("produce", WORK_ITEM_DONE, "--data", example.stdout, "--topic", topic, "--json")
    tailed = run("tail", topic, "--json", "--from-beginning", "--max", "1", "--timeout", "20")

    assert sent.exit_code == 0, sent.output
    report = json.loads(sent.stdout)
    assert set(report) == {"topic", "partition", "offset", "event_id", "event_type", "key"}
    assert (report["topic"], report["event_type"]) == (topic, WORK_ITEM_DONE)
    shown = json.loads(tailed.stdout)
    assert shown["id"] == report["event_id"]
    assert shown["data"] == json.loads(example.stdout)
