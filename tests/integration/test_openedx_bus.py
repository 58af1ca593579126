"""flowbus and the Open edX event bus on one wire, both ways, against the real
openedx-events and edx-event-bus-kafka (``tests/openedx_peer/peer.py``, in their own venv).

The Open edX venvs: the benchmark's peer (``benchmarks/peer_openedx``: openedx-events
10.5.0, edx-event-bus-kafka 6.1.0 on Python 3.11), and openedx-events 11.x with
edx-event-bus-kafka 6.2 on pyenv's Python 3.12 (``tests/openedx_peer_next``), skipped where
that Python is missing or they do not install. Both are built once by
``benchmarks/setup_peer_venv.py`` and cached.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openedx_sample
import pytest
from broker_helpers import read_to_end, running_worker

from flowbus import cloudevents
from flowbus.avro.codec import parse_schema
from flowbus.avro.compat import CompatibilityMode
from flowbus.avro.registry import SchemaRegistry
from flowbus.avro.serializer import codec_for
from flowbus.consumer.dead_letter import Reason, read_dead_letter_headers
from flowbus.consumer.retry import ReceiverRetryPolicy as RetryPolicy
from flowbus.openedx import signal_from_openedx
from flowbus.producer.event_producer import EventProducer
from flowbus.settings import get_settings
from flowbus.testing import isolated_receivers
from flowbus.wire import OPENEDX

pytestmark = pytest.mark.usefixtures("flowbus_env")
ROOT = Path(__file__).resolve().parents[2]
PEER = ROOT / "tests" / "openedx_peer" / "peer.py"
FAST_RETRY = RetryPolicy(max_attempts=2, initial_delay=0.01, max_delay=0.05)


class OpenEdxSignal:
    """The sample's ``OpenEdxPublicSignal`` as flowbus's venv sees it (no openedx-events)."""

    event_type = openedx_sample.EVENT_TYPE
    init_data = openedx_sample.INIT_DATA
    minor_version = openedx_sample.MINOR_VERSION


SIGNAL = signal_from_openedx(OpenEdxSignal, key_path=openedx_sample.KEY_FIELD)
#: (peer directory, venv directory name, interpreter building it or None for this one)
VERSIONS = {
    "pinned": (ROOT / "benchmarks" / "peer_openedx", "bench-openedx-venv", None),
    "next": (ROOT / "tests" / "openedx_peer_next", "test-openedx-next-venv", "3.12"),
}


def _interpreter(version: str | None) -> str | None:
    if version is None:
        return sys.executable
    found = sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python"))
    return str(found[-1]) if found else None


def openedx_venv_python(name: str) -> Path:
    """The interpreter of the Open edX venv ``name`` (built the first time: a minute or two)."""
    peer_dir, venv_name, version = VERSIONS[name]
    interpreter = _interpreter(version)
    if interpreter is None:
        pytest.skip(f"no Python {version} under ~/.pyenv for the Open edX {name} venv")
    built = subprocess.run(
        [interpreter, str(ROOT / "benchmarks" / "setup_peer_venv.py"), str(peer_dir),
         str(get_settings().cache_dir / venv_name)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if built.returncode != 0 and name == "next":
        pytest.skip(f"the Open edX {name} versions do not install: {built.stderr[-500:]}")
    assert built.returncode == 0, built.stderr[-3000:]
    return Path(built.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session", params=sorted(VERSIONS))
def openedx_python(request: pytest.FixtureRequest) -> Path:
    """The Open edX venv's interpreter, per version set."""
    return openedx_venv_python(request.param)


def peer(python: Path, kafka_stack: Any, *args: str) -> dict[str, Any]:
    run = subprocess.run(
        [str(python), str(PEER), *args],
        env=kafka_stack.env, capture_output=True, text=True, timeout=150,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    report: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return report


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


METADATA_FIELDS = ("id", "time", "source", "sourcehost", "sourcelib", "minorversion")


def metadata_json(metadata: Any) -> dict[str, Any]:
    return {
        "id": str(metadata.id),
        "time": metadata.time.isoformat(),
        "source": metadata.source,
        "sourcehost": metadata.sourcehost,
        "sourcelib": list(metadata.sourcelib),
        "minorversion": metadata.minorversion,
    }


def test_openedx_producer_to_flowbus_worker(
    kafka_stack, unique_topic, unique_group, openedx_python
):
    topic = unique_topic()
    produced = peer(openedx_python, kafka_stack, "produce", "--topic", topic, "--count", "2")
    received: list[tuple[Any, dict[str, Any]]] = []
    broken_calls: list[str] = []

    def record(sender, signal, metadata, from_event_bus, **data):
        received.append((metadata, data))

    def broken(sender, signal, metadata, **data):
        broken_calls.append(str(metadata.id))
        raise RuntimeError("always fails")

    with isolated_receivers():
        SIGNAL.connect(record)
        SIGNAL.connect(broken)
        with running_worker(topic, unique_group, retry=FAST_RETRY) as worker:
            wait_for(lambda: worker.stats.handled == 2)
    assert worker.stats.dead_lettered == 2
    sent = produced["sent"]
    assert [str(m.id) for m, _ in received] == [e["metadata"]["id"] for e in sent]
    for (metadata, data), event in zip(received, sent, strict=True):
        got = metadata_json(metadata)
        assert {f: got[f] for f in METADATA_FIELDS} == {
            f: event["metadata"][f] for f in METADATA_FIELDS
        }
        assert metadata.time.tzinfo is not None
        assert openedx_sample.as_plain(data) == event["data"]  # every field equal
        assert type(data["enrollment"]).__name__ == "CourseEnrollmentData"
    # The always-failing receiver: each event dead-lettered, with flowbus's error headers.
    letters = {
        dict(cloudevents.header_pairs(letter.headers()))["ce_id"].decode(): letter
        for letter in read_to_end(f"{topic}.dlq")  # other keys: in any order
    }
    assert sorted(letters) == sorted(e["metadata"]["id"] for e in sent)
    assert len(broken_calls) == 4
    for event in sent:
        letter = letters[event["metadata"]["id"]]
        info = read_dead_letter_headers(letter.headers())
        assert info["reason"] == Reason.RECEIVER_FAILED.value
        assert info["error-type"] == "builtins.RuntimeError"
        assert info["failed-receivers"].endswith("broken")
        assert info["attempts"] == "2" and info["original-topic"] == topic
        original = dict(cloudevents.header_pairs(letter.headers()))
        assert original["sourcehost"] == event["metadata"]["sourcehost"].encode()


def send_openedx(topic: str, course_keys: list[str]) -> list[tuple[Any, dict[str, Any]]]:
    """Send one event per course key with flowbus's producer (the signal's openedx wire)."""
    sent = []
    with EventProducer(synchronous=True, install_exit_handlers=False) as producer:
        for index, course_key in enumerate(course_keys):
            raw = openedx_sample.enrollment(index, course_key)
            enrollment = SIGNAL.data["enrollment"].model_validate(
                openedx_sample.as_plain(raw["enrollment"])
            )
            data = SIGNAL.validate_data(enrollment=enrollment, channel=raw["channel"])
            metadata = SIGNAL.generate_signal_metadata()
            producer.send(
                SIGNAL, metadata, data, topic=topic, key=SIGNAL.resolve_key(data), sender="lms"
            )
            sent.append((metadata, data))
    return sent


def test_flowbus_producer_to_openedx_consumer(kafka_stack, unique_topic, openedx_python):
    topic = unique_topic()
    sent = send_openedx(topic, ["course-v1:flowbus+a", "course-v1:flowbus+b"])
    report = peer(openedx_python, kafka_stack, "consume", "--topic", topic, "--count", "2")
    received = report["received"]
    assert [r["metadata"]["id"] for r in received] == [str(m.id) for m, _ in sent]
    for event, (metadata, data) in zip(received, sent, strict=True):
        expected = metadata_json(metadata)
        for field in ("id", "time", "source", "minorversion", "sourcehost", "sourcelib"):
            assert event["metadata"][field] == expected[field], field
        assert event["data"] == openedx_sample.as_plain(data)
        assert event["types"] == {"enrollment": "CourseEnrollmentData", "channel": "str"}
        assert event["from_event_bus"] is True and event["sender"] is None
    assert not [w for w in report["warnings"] if "Missing" in w], report["warnings"]
    assert not [w for w in report["warnings"] if w.startswith(("ERROR", "CRITICAL"))]


def test_mixed_producers_share_partitions_and_subject_history(
    kafka_stack, unique_topic, openedx_python
):
    topic = unique_topic(partitions=4)
    keys = [f"course-v1:flowbus+k{index}" for index in range(6)]
    key_args = [arg for key in keys for arg in ("--course-key", key)]
    peer(openedx_python, kafka_stack, "produce", "--topic", topic, "--count", "6", *key_args)
    subject = f"{topic}-{openedx_sample.EVENT_TYPE}.CloudEvent"
    registry = SchemaRegistry(kafka_stack.schema_registry_url)
    registry.set_compatibility(subject, CompatibilityMode.BACKWARD)
    send_openedx(topic, keys)
    records = read_to_end(topic)
    assert len(records) == 12
    by_key: dict[bytes, set[int]] = {}
    for record in records:
        by_key.setdefault(record.key(), set()).add(record.partition())
    assert len(by_key) == 6  # the same key bytes from both producers
    assert all(len(partitions) == 1 for partitions in by_key.values()), by_key
    assert len({p for ps in by_key.values() for p in ps}) > 1  # not all on one partition
    assert registry._client.get_versions(f"{topic}-string")
    # One history: the subject Open edX created holds flowbus's schema (one version when
    # the registry finds them equal), and either side's compatible change is accepted.
    schema = codec_for(SIGNAL, OPENEDX).schema.schema
    assert registry.is_compatible(subject, parse_schema(schema)) is True

    def evolved(*fields: dict[str, Any]) -> dict[str, Any]:
        return {**schema, "fields": [*schema["fields"], *fields]}

    referrer = {"name": "referrer", "type": "string", "default": ""}
    registry.register(subject, parse_schema(evolved(referrer)))  # flowbus's change
    campaign = {"name": "campaign", "type": "string", "default": "none"}
    required = {"name": "required_now", "type": "string"}  # old events lack it: refused
    for fields, accepted in (((referrer, campaign), True), ((referrer, campaign, required), False)):
        path = Path(get_settings().cache_dir) / f"evolved-{uuid.uuid4().hex}.avsc"
        path.write_text(json.dumps(evolved(*fields)))
        try:
            verdict = peer(
                openedx_python, kafka_stack, "register", "--subject", subject, "--schema", str(path)
            )
        finally:
            path.unlink()
        assert verdict["registered"] is accepted, verdict  # Open edX's client, same history
    assert len(registry._client.get_versions(subject)) >= 3
