"""Forwarding configuration: parsing, validation at start, and what the forwarder sends."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sample_events
from pydantic import ValidationError
from pydantic_settings import SettingsError

from flowbus.catalog import caluma
from flowbus.errors import ConfigurationError, OutboxNotBoundError
from flowbus.metadata import EventMetadata
from flowbus.producer import outbox
from flowbus.producer.forwarding import Route, parse_forwarding_config, start_forwarding
from flowbus.settings import FlowbusSettings
from flowbus.signals import WorkflowSignal
from flowbus.testing import isolated_receivers

COMPLETED = caluma.WORK_ITEM_POST_COMPLETE
CASE_COMPLETED = caluma.CASE_POST_COMPLETE
CASE_PRE_CREATE = caluma.CASE_PRE_CREATE
CONFIG_ENTRY = f"FLOWBUS_PRODUCER_CONFIG[{COMPLETED.event_type!r}]"


@dataclass
class Sent:
    signal: WorkflowSignal
    metadata: EventMetadata
    data: Mapping[str, Any]
    topic: str
    key: str | None
    sender: str | None


@dataclass
class RecordingProducer:
    """Stands in for EventProducer: records what it is asked to send."""

    settings: FlowbusSettings = field(default_factory=FlowbusSettings)
    sent: list[Sent] = field(default_factory=list)

    def send(
        self,
        signal: WorkflowSignal,
        metadata: EventMetadata,
        data: Mapping[str, Any],
        *,
        topic: str,
        key: str | None = None,
        sender: str | None = None,
    ) -> None:
        self.sent.append(Sent(signal, metadata, data, topic, key, sender))


@pytest.fixture(autouse=True)
def _isolated_receivers() -> Iterator[None]:
    with isolated_receivers():
        yield


# --- parsing --------------------------------------------------------------------------------


def test_parses_routes_with_defaults() -> None:
    config = parse_forwarding_config(
        json.dumps(
            {
                COMPLETED.event_type: [
                    {"topic": "workflow-events"},
                    {"topic": "work-items", "key_path": "work_item.id", "enabled": False},
                ],
                CASE_COMPLETED.event_type: {"topic": "cases"},  # one route needs no list
            }
        )
    )
    assert config == {
        COMPLETED.event_type: [
            Route(topic="workflow-events", key_path=None, enabled=True),
            Route(topic="work-items", key_path="work_item.id", enabled=False),
        ],
        CASE_COMPLETED.event_type: [Route(topic="cases")],
    }


def test_accepts_a_mapping_as_well_as_json_text() -> None:
    config = parse_forwarding_config({COMPLETED.event_type: [{"topic": "t"}]})
    assert config == {COMPLETED.event_type: [Route(topic="t")]}


def test_unknown_event_type_is_named() -> None:
    unknown = "org.flowbus.caluma.work_item.post_explode.v1"
    with pytest.raises(ConfigurationError) as caught:
        parse_forwarding_config({COMPLETED.event_type: [{"topic": "t"}], unknown: [{"topic": "t"}]})
    assert str(caught.value) == f"FLOWBUS_PRODUCER_CONFIG[{unknown!r}]: unknown event type"


def test_key_path_that_does_not_exist_is_named_with_its_entry() -> None:
    config = {COMPLETED.event_type: [{"topic": "a"}, {"topic": "b", "key_path": "work_item.case"}]}
    with pytest.raises(ConfigurationError) as caught:
        parse_forwarding_config(config)
    message = str(caught.value)
    assert message.startswith(f"{CONFIG_ENTRY}[1]: key_path 'work_item.case':")
    assert "'case' is not a field of WorkItemSnapshot" in message


def test_key_path_to_something_that_is_not_a_scalar_is_rejected() -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_forwarding_config({COMPLETED.event_type: [{"topic": "t", "key_path": "work_item"}]})
    assert str(caught.value).startswith(f"{CONFIG_ENTRY}[0]: key_path 'work_item':")
    assert "not a scalar value" in str(caught.value)


def test_bad_json_is_rejected() -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_forwarding_config('{"org.flowbus.caluma.work_item.post_complete.v1": [')
    assert str(caught.value).startswith("FLOWBUS_PRODUCER_CONFIG is not valid JSON:")


def test_configuration_must_be_an_object() -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_forwarding_config('[{"topic": "t"}]')
    assert str(caught.value) == "FLOWBUS_PRODUCER_CONFIG must be a JSON object"


@pytest.mark.parametrize(
    ("route", "problem"),
    [
        ({"key_path": "work_item.id"}, "topic: Field required"),
        ({"topic": ""}, "topic: String should have at least 1 character"),
        ({"topic": "t", "key_path": ""}, "key_path: String should have at least 1 character"),
        ({"topic": "t", "enabled": "sometimes"}, "enabled: Input should be a valid boolean"),
        ({"topic": "t", "partition": 3}, "partition: Extra inputs are not permitted"),
        ("workflow-events", "Input should be a valid dictionary"),
    ],
    ids=["no-topic", "empty-topic", "empty-key-path", "bad-enabled", "unknown-field", "string"],
)
def test_invalid_route_is_named(route: Any, problem: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_forwarding_config({COMPLETED.event_type: [{"topic": "ok"}, route]})
    assert str(caught.value).startswith(f"{CONFIG_ENTRY}[1]: ")
    assert problem in str(caught.value)


# --- starting from the settings -------------------------------------------------------------


def test_start_forwarding_reads_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    routes = {COMPLETED.event_type: [{"topic": "workflow-events"}]}
    monkeypatch.setenv("FLOWBUS_PRODUCER_CONFIG", json.dumps(routes))
    producer = RecordingProducer(FlowbusSettings())
    forwarder = start_forwarding(producer)  # type: ignore[arg-type]
    case_id = uuid.uuid4()
    COMPLETED.send_event(**sample_events.work_item_event(case_id))
    forwarder.stop()
    COMPLETED.send_event(**sample_events.work_item_event(case_id))  # disconnected: not sent
    assert [(s.topic, s.key) for s in producer.sent] == [("workflow-events", str(case_id))]


def test_start_forwarding_fails_on_a_bad_entry_in_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    routes = {COMPLETED.event_type: [{"topic": "t", "key_path": "work_item.nope"}]}
    monkeypatch.setenv("FLOWBUS_PRODUCER_CONFIG", json.dumps(routes))
    producer = RecordingProducer(FlowbusSettings())
    before = COMPLETED.receivers
    with pytest.raises(ConfigurationError) as caught:
        start_forwarding(producer)  # type: ignore[arg-type]
    assert str(caught.value).startswith(f"{CONFIG_ENTRY}[0]: key_path 'work_item.nope':")
    assert COMPLETED.receivers == before  # nothing was connected


def test_bad_json_in_the_environment_fails_when_settings_are_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLOWBUS_PRODUCER_CONFIG", "{not json")
    with pytest.raises(SettingsError) as caught:
        FlowbusSettings()
    assert "producer_config" in str(caught.value)


# --- forwarding -----------------------------------------------------------------------------


def forwarding(config: Mapping[str, Any]) -> RecordingProducer:
    producer = RecordingProducer()
    start_forwarding(producer, config)  # type: ignore[arg-type]
    return producer


def test_each_enabled_route_gets_the_event_with_its_key() -> None:
    producer = forwarding(
        {
            COMPLETED.event_type: [
                {"topic": "by-case"},
                {"topic": "by-item", "key_path": "work_item.id"},
                {"topic": "paused", "enabled": False},
            ]
        }
    )
    data = sample_events.work_item_event()
    COMPLETED.send_event(sender="caluma.workflow", **data)
    assert [(s.topic, s.key, s.sender) for s in producer.sent] == [
        ("by-case", str(data["work_item"].case_id), "caluma.workflow"),
        ("by-item", str(data["work_item"].id), "caluma.workflow"),
    ]
    first, second = producer.sent
    assert first.metadata == second.metadata  # one event, two copies
    assert first.signal is COMPLETED
    assert first.data["work_item"] == data["work_item"]


def test_a_class_sender_travels_by_name() -> None:
    producer = forwarding({COMPLETED.event_type: [{"topic": "t"}]})

    class WorkItemCompletion:
        pass

    COMPLETED.send_event(sender=WorkItemCompletion, **sample_events.work_item_event())
    (sent,) = producer.sent
    assert sent.sender == f"{__name__}.{WorkItemCompletion.__qualname__}"


def test_disabled_route_and_unconfigured_signal_send_nothing() -> None:
    producer = forwarding({CASE_COMPLETED.event_type: [{"topic": "cases", "enabled": False}]})
    CASE_COMPLETED.send_event(**sample_events.case_event())
    COMPLETED.send_event(**sample_events.work_item_event())
    assert producer.sent == []


def test_events_from_the_bus_are_not_forwarded_again() -> None:
    producer = forwarding({COMPLETED.event_type: [{"topic": "t"}]})
    metadata = COMPLETED.generate_signal_metadata()
    results = COMPLETED.send_event_with_custom_metadata(
        metadata, sender="caluma.workflow", **sample_events.work_item_event()
    )
    assert 0 in [response for _, response in results]  # the forwarder's answer: none sent
    assert producer.sent == []


def test_an_event_without_a_key_value_is_sent_without_key() -> None:
    # Caluma's pre_create_case has no case yet, so its key path leads to nothing.
    producer = forwarding({CASE_PRE_CREATE.event_type: [{"topic": "cases"}]})
    CASE_PRE_CREATE.send_event(
        case=None, user=sample_events.user(), context={}, validated_data={"form": "building"}
    )
    (sent,) = producer.sent
    assert (sent.topic, sent.key) == ("cases", None)


# --- sinks ----------------------------------------------------------------------------------


def test_routes_choose_their_sink_and_the_rest_use_the_default() -> None:
    producer, outbox = RecordingProducer(), RecordingProducer()
    config = {
        COMPLETED.event_type: [
            {"topic": "direct-events", "sink": "direct"},
            {"topic": "outboxed"},  # the default sink: outbox, as given below
        ]
    }
    start_forwarding(producer, config, sinks={"outbox": outbox}, default_sink="outbox")  # type: ignore[arg-type, dict-item]
    COMPLETED.send_event(**sample_events.work_item_event())
    assert [s.topic for s in producer.sent] == ["direct-events"]
    assert [s.topic for s in outbox.sent] == ["outboxed"]
    assert producer.sent[0].metadata == outbox.sent[0].metadata


def test_the_default_sink_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWBUS_PRODUCER_SINK", "on_commit")
    producer, held = RecordingProducer(FlowbusSettings()), RecordingProducer()
    start_forwarding(producer, {COMPLETED.event_type: [{"topic": "t"}]}, sinks={"on_commit": held})  # type: ignore[arg-type, dict-item]
    COMPLETED.send_event(**sample_events.work_item_event())
    assert (len(producer.sent), len(held.sent)) == (0, 1)


def test_an_unknown_sink_name_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_forwarding_config({COMPLETED.event_type: [{"topic": "t", "sink": "carrier-pigeon"}]})
    assert str(caught.value).startswith(f"{CONFIG_ENTRY}[0]: sink: Input should be")
    monkeypatch.setenv("FLOWBUS_PRODUCER_SINK", "carrier-pigeon")
    with pytest.raises(ValidationError) as invalid:
        FlowbusSettings()
    assert "producer_sink" in str(invalid.value)


def test_on_commit_without_its_sink_fails_at_start_naming_the_entry() -> None:
    config = {COMPLETED.event_type: [{"topic": "a"}, {"topic": "b", "sink": "on_commit"}]}
    before = COMPLETED.receivers
    with pytest.raises(ConfigurationError) as caught:
        start_forwarding(RecordingProducer(), config)  # type: ignore[arg-type]
    assert str(caught.value).startswith(f"{CONFIG_ENTRY}[1]: sink 'on_commit' needs")
    assert "OnCommitSink(producer" in str(caught.value)
    assert COMPLETED.receivers == before


def test_the_outbox_sink_writes_into_the_bound_transaction(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FLOWBUS_PRODUCER_SINK", "outbox")
    monkeypatch.setenv("FLOWBUS_TOPIC_PREFIX", "dev.")
    url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    outbox.migrate(url)
    producer = RecordingProducer(FlowbusSettings())
    start_forwarding(producer, {COMPLETED.event_type: [{"topic": "cases"}]})  # type: ignore[arg-type]
    conn = sqlite3.connect(tmp_path / "app.sqlite3")
    event = sample_events.work_item_event()
    with conn, outbox.bind(conn):
        [(_, committed)] = COMPLETED.send_event(send_robust=False, **event)
    with outbox.bind(conn):
        COMPLETED.send_event(send_robust=False, **event)
        conn.rollback()
    rows = conn.execute("SELECT aggregatetype, aggregateid, type FROM flowbus_outbox").fetchall()
    assert rows == [("dev.cases", str(event["work_item"].case_id), COMPLETED.event_type)]
    assert committed == 1 and producer.sent == []  # one route, to the outbox, none direct
    with pytest.raises(OutboxNotBoundError):
        COMPLETED.send_event(send_robust=False, **event)


def test_a_default_binding_takes_the_events_sent_outside_bind(tmp_path: Path) -> None:
    for name in ("app", "other"):
        outbox.migrate(f"sqlite:///{tmp_path / name}.sqlite3")
    conn = sqlite3.connect(tmp_path / "app.sqlite3")
    other = sqlite3.connect(tmp_path / "other.sqlite3")
    sink = outbox.OutboxSink.from_settings(FlowbusSettings())
    event = sample_events.work_item_event()
    data = COMPLETED.validate_data(**event)
    outbox.bind_by_default(lambda: conn)
    try:
        sink.send(COMPLETED, COMPLETED.generate_signal_metadata(), data, topic="t")
        with outbox.bind(other):  # an explicit binding wins
            sink.send(COMPLETED, COMPLETED.generate_signal_metadata(), data, topic="t")
        other.commit()
        conn.commit()
    finally:
        outbox.bind_by_default(None)
    for db in (conn, other):
        assert db.execute("SELECT count(*) FROM flowbus_outbox").fetchone() == (1,)
    assert outbox.bound() is None


def test_a_disabled_route_needs_no_sink() -> None:
    config = {COMPLETED.event_type: [{"topic": "t", "sink": "on_commit", "enabled": False}]}
    producer = RecordingProducer()
    start_forwarding(producer, config)  # type: ignore[arg-type]
    COMPLETED.send_event(**sample_events.work_item_event())
    assert producer.sent == []
