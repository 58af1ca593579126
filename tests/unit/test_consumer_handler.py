"""MessageHandler decisions, with a fake message and deserializer (no broker)."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
import sample_events
from pydantic import Field

from flowbus import cloudevents
from flowbus.avro.serializer import EventDeserializer, EventSerializer
from flowbus.catalog import caluma
from flowbus.catalog.models import UserInfo
from flowbus.consumer.deadletter import DeadLetter, Reason, read_dead_letter_headers
from flowbus.consumer.handler import MessageHandler
from flowbus.consumer.retry import RetryPolicy
from flowbus.errors import SchemaMismatchError
from flowbus.signals import DecodedData, WorkflowSignal
from flowbus.testing import isolated_receivers

SIGNAL = caluma.WORK_ITEM_POST_COMPLETE
NO_WAIT = RetryPolicy(max_attempts=3, initial_delay=0, max_delay=0)


class FakeMessage:
    def __init__(self, headers, value=b"body", key=b"k", topic="events", offset=7):
        self._headers, self._value, self._key, self._topic, self._offset = (
            headers, value, key, topic, offset,
        )  # fmt: skip

    def headers(self):
        return self._headers

    def value(self):
        return self._value

    def key(self):
        return self._key

    def topic(self):
        return self._topic

    def partition(self):
        return 2

    def offset(self):
        return self._offset


class FakeDeserializer:
    def __init__(self, data: dict[str, Any] | Exception):
        self.data = data

    def deserialize(self, signal, value, topic):
        if isinstance(self.data, Exception):
            raise self.data
        return self.data


@pytest.fixture
def event():
    data = SIGNAL.validate_data(**sample_events.work_item_event())
    metadata = SIGNAL.generate_signal_metadata()
    return metadata, data, FakeMessage(cloudevents.to_headers(metadata, sender="svc.Sender"))


def handler(data, retry=NO_WAIT) -> MessageHandler:
    return MessageHandler("group-1", FakeDeserializer(data), retry)


def test_good_message_is_resent_with_its_metadata_and_sender(event):
    metadata, data, message = event
    seen = []
    with isolated_receivers():
        SIGNAL.connect(lambda sender, **kw: seen.append((sender, kw)))
        result = handler(data).handle(message)
    assert result.dead_letter is None and result.attempts == 1
    assert result.event_id == str(metadata.id)
    [(sender, kwargs)] = seen
    assert sender == "svc.Sender"
    assert kwargs["metadata"] == metadata and kwargs["from_event_bus"] is True
    assert kwargs["work_item"] == data["work_item"]


def test_only_failing_receivers_are_retried(event):
    _, data, message = event
    calls = {"flaky": 0, "steady": 0}

    def flaky(sender, **kw):
        calls["flaky"] += 1
        if calls["flaky"] < 3:
            raise ValueError("not yet")

    def steady(sender, **kw):
        calls["steady"] += 1

    with isolated_receivers():
        SIGNAL.connect(flaky)
        SIGNAL.connect(steady)
        result = handler(data).handle(message)
    assert calls == {"flaky": 3, "steady": 1}
    assert result.dead_letter is None and result.attempts == 3 and result.retried


def test_receiver_still_failing_becomes_a_dead_letter(event):
    _, data, message = event

    def broken(sender, **kw):
        raise KeyError("nope")

    with isolated_receivers():
        SIGNAL.connect(broken)
        result = handler(data).handle(message)
    letter = result.dead_letter
    assert isinstance(letter, DeadLetter)
    assert letter.reason is Reason.RECEIVER_FAILED and letter.attempts == 3
    assert letter.failed_receivers == [
        f"{__name__}.test_receiver_still_failing_becomes_a_dead_letter.<locals>.broken"
    ]
    assert (letter.topic, letter.partition, letter.offset, letter.group) == (
        "events",
        2,
        7,
        "group-1",
    )
    assert (letter.key, letter.value) == (b"k", b"body")
    headers = read_dead_letter_headers(letter.record_headers())
    assert headers["error-type"] == "builtins.KeyError"


def test_propagating_signal_retries_the_whole_dispatch(event):
    _, data, message = event
    calls = []

    def first(sender, **kw):
        calls.append("first")
        if calls.count("first") == 1:
            raise RuntimeError("once")

    def second(sender, **kw):
        calls.append("second")

    with isolated_receivers():
        SIGNAL.connect(first)
        SIGNAL.connect(second)
        SIGNAL.allow_send_event_failure()
        result = handler(data).handle(message)
    assert result.dead_letter is None
    assert calls == ["first", "first", "second"]


@pytest.mark.parametrize(
    ("headers", "reason", "words"),
    [
        ([], Reason.MALFORMED_HEADERS, "missing"),
        ([(cloudevents.ID, b"x")], Reason.MALFORMED_HEADERS, "ce_"),
    ],
)
def test_unreadable_headers_are_dead_lettered(headers, reason, words):
    result = handler({}).handle(FakeMessage(headers))
    assert result.dead_letter is not None and result.dead_letter.reason is reason
    assert words in str(result.dead_letter.error)


def test_unknown_event_type_is_dead_lettered(event):
    metadata, data, _ = event
    headers = [
        (k, b"org.flowbus.unknown.thing.done.v1" if k == cloudevents.TYPE else v)
        for k, v in cloudevents.to_headers(metadata)
    ]
    result = handler(data).handle(FakeMessage(headers))
    assert result.dead_letter.reason is Reason.UNKNOWN_EVENT_TYPE
    assert "org.flowbus.unknown.thing.done.v1" in str(result.dead_letter.error)


def test_undecodable_value_is_dead_lettered(event):
    _, _, message = event
    result = handler(SchemaMismatchError("body does not match")).handle(message)
    assert result.dead_letter.reason is Reason.UNDECODABLE


def test_decoder_bug_is_dead_lettered_not_raised(event):
    _, _, message = event
    result = handler(ZeroDivisionError("bug")).handle(message)
    assert result.dead_letter.reason is Reason.UNDECODABLE
    assert isinstance(result.dead_letter.error, ZeroDivisionError)


def test_data_the_signal_refuses_is_dead_lettered(event):
    _, _, message = event
    result = handler({"work_item": "not a work item"}).handle(message)
    assert result.dead_letter.reason is Reason.INVALID_DATA


SHORT_CODE = WorkflowSignal(
    "org.flowbus.test.handler.short_code.v1",
    {"code": Annotated[str, Field(max_length=3)], "user": UserInfo},
)


def test_decoded_data_violating_a_constraint_is_invalid_data():
    # The generated decoder builds UserInfo without validating it; "code" is still validated.
    data = {"code": "too long", "user": UserInfo(username="u")}
    value = EventSerializer().serialize(SHORT_CODE, data, "events").value
    metadata = SHORT_CODE.generate_signal_metadata()
    message = FakeMessage(cloudevents.to_headers(metadata), value=value)
    deserializer = EventDeserializer()
    assert isinstance(deserializer.deserialize(SHORT_CODE, value, "events"), DecodedData)
    result = MessageHandler("group-1", deserializer, NO_WAIT).handle(message)
    assert result.dead_letter.reason is Reason.INVALID_DATA
    assert "argument 'code'" in str(result.dead_letter.error)


def test_earlier_dead_letter_headers_are_replaced_not_stacked():
    letter = DeadLetter(
        reason=Reason.UNDECODABLE, error=ValueError("x"), topic="t", partition=0, offset=1,
        key=None, value=b"", headers=[("flowbus-dlq-reason", b"old"), ("ce_id", b"1")], group="g",
    )  # fmt: skip
    names = [name for name, _ in letter.record_headers()]
    assert names.count("flowbus-dlq-reason") == 1 and "ce_id" in names


def test_retry_policy_grows_and_caps():
    policy = RetryPolicy(max_attempts=5, initial_delay=1, max_delay=3, multiplier=2, jitter=0)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [1, 2, 3, 3]
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
