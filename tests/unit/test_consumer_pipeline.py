"""The consumer pipeline without a broker: the in-memory bus runs the real serializer,
headers, handler, middlewares, engine and dead-letter path."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import defaultdict
from typing import Annotated, Any

import pytest
import sample_events
from pydantic import Field

from flowbus import cloudevents
from flowbus.avro.serializer import EventDeserializer, EventSerializer
from flowbus.catalog import caluma
from flowbus.catalog.models import UserInfo
from flowbus.consumer.dead_letter import (
    ORIGINAL_SHA256,
    POINTER,
    DeadLetter,
    Reason,
)
from flowbus.consumer.engine import DeadLetterTooLargeError
from flowbus.consumer.failures import FailureClassifier
from flowbus.consumer.in_memory import InMemoryDeadLetterSink
from flowbus.consumer.middleware import (
    DeadLetterNow,
    Middleware,
    Outcome,
    default_middlewares,
)
from flowbus.consumer.retry import ReceiverRetryPolicy as RetryPolicy
from flowbus.consumer.testing import InMemoryBus
from flowbus.errors import FlowbusError, ReceiversAbandonedError, SchemaRegistryError
from flowbus.signals import DecodedData, WorkflowSignal
from flowbus.testing import isolated_receivers

SIGNAL = caluma.WORK_ITEM_POST_COMPLETE


@pytest.fixture(autouse=True)
def _isolated():
    with isolated_receivers():
        yield


@pytest.fixture
def bus_factory():
    buses: list[InMemoryBus] = []

    def make(**options: Any) -> InMemoryBus:
        bus = InMemoryBus(**options)
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        bus.close()


def event(case_id: uuid.UUID | None = None, slug: str = "review") -> dict[str, Any]:
    return sample_events.work_item_event(case_id, task_slug=slug)


class KeyedRecorder:
    """Records (case, slug) per call, and whether a key was ever in flight twice."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.seen: list[tuple[str, str]] = []
        self.in_flight: dict[str, int] = defaultdict(int)
        self.overlaps = 0
        self.lock = threading.Lock()

    def enter(self, work_item: Any) -> str:
        key = str(work_item.case_id)
        with self.lock:
            self.in_flight[key] += 1
            if self.in_flight[key] > 1:
                self.overlaps += 1
        return key

    def leave(self, key: str, work_item: Any) -> None:
        with self.lock:
            self.in_flight[key] -= 1
            self.seen.append((key, work_item.task_slug))

    def __call__(self, sender, work_item, **kwargs):
        key = self.enter(work_item)
        time.sleep(self.delay)
        self.leave(key, work_item)

    def assert_in_order(self, expected_per_key: int) -> None:
        per_key: dict[str, list[str]] = defaultdict(list)
        for key, slug in self.seen:
            per_key[key].append(slug)
        assert self.overlaps == 0
        assert all(len(slugs) == expected_per_key for slugs in per_key.values())
        assert all(slugs == sorted(slugs) for slugs in per_key.values())


def publish_keys(bus: InMemoryBus, keys: int, per_key: int) -> None:
    cases = [uuid.uuid4() for _ in range(keys)]
    for n in range(per_key):
        for case in cases:
            bus.publish(SIGNAL, topic="events", **event(case, f"step-{n:04d}"))


# --- re-sending --------------------------------------------------------------------------


def test_event_is_resent_with_its_metadata_sender_and_data(bus_factory):
    seen = []
    SIGNAL.connect(lambda sender, **kw: seen.append((sender, kw)))
    bus = bus_factory()
    data = event()
    metadata = SIGNAL.generate_signal_metadata()
    bus.publish(SIGNAL, topic="events", sender="svc.Sender", metadata=metadata, **data)
    stats = bus.run()
    assert (stats.handled, stats.dead_lettered) == (1, 0)
    [(sender, kwargs)] = seen
    assert sender == "svc.Sender"
    assert kwargs["metadata"] == metadata and kwargs["from_event_bus"] is True
    assert kwargs["work_item"] == data["work_item"]
    assert bus.engine.committable() == {("events", 0): 1}


def test_sender_filter_applies_to_events_from_the_bus(bus_factory):
    seen = []
    SIGNAL.connect(lambda sender, **kw: seen.append(sender), sender="svc.Other")
    bus = bus_factory()
    bus.publish(SIGNAL, topic="events", sender="svc.Sender", **event())
    bus.publish(SIGNAL, topic="events", sender="svc.Other", **event())
    bus.run()
    assert seen == ["svc.Other"]


def test_a_foreign_binary_header_does_not_dead_letter_a_valid_event(bus_factory):
    seen = []
    SIGNAL.connect(lambda sender, **kw: seen.append(kw["metadata"].id))
    bus = bus_factory()
    record = bus.publish(SIGNAL, topic="events", **event())
    headers = [*record.headers, ("uber-trace-bin", b"\xff\xfe\x00binary")]
    bus.topics["events"][0][0] = record._replace(headers=headers)
    bus.run()
    assert len(seen) == 1 and bus.dead_letters == []


# --- retries and dead letters -----------------------------------------------------------


def test_only_failing_receivers_are_called_again(bus_factory):
    calls = defaultdict(int)

    def steady(sender, **kw):
        calls["steady"] += 1

    def flaky(sender, **kw):
        calls["flaky"] += 1
        if calls["flaky"] < 3:
            raise RuntimeError("not yet")

    SIGNAL.connect(steady)
    SIGNAL.connect(flaky)
    bus = bus_factory()
    bus.publish(SIGNAL, topic="events", **event())
    stats = bus.run()
    assert dict(calls) == {"steady": 1, "flaky": 3}
    assert (stats.handled, stats.retried, stats.dead_lettered) == (1, 1, 0)


def test_a_receiver_still_failing_is_dead_lettered_with_the_reason(bus_factory):
    def broken(sender, **kw):
        raise ValueError("always")

    SIGNAL.connect(broken)
    bus = bus_factory(retry=RetryPolicy(max_attempts=2, initial_delay=0.001))
    record = bus.publish(SIGNAL, topic="events", **event())
    bus.run()
    [letter] = bus.dead_letters
    assert letter.topic == "events.dlq" and letter.value == record.value
    assert letter.reason == Reason.RECEIVER_FAILED
    assert letter.info["attempts"] == "2" and "broken" in letter.info["failed-receivers"]
    assert letter.info["error-type"] == "builtins.ValueError"
    assert bus.engine.committable() == {("events", 0): 1}


def test_a_propagating_signal_stops_at_the_failure_and_resumes_there(bus_factory):
    calls = []

    def first(sender, **kw):
        calls.append("first")

    def second(sender, **kw):
        calls.append("second")
        if calls.count("second") == 1:
            raise RuntimeError("once")

    def third(sender, **kw):
        calls.append("third")

    for receiver in (first, second, third):
        SIGNAL.connect(receiver)
    SIGNAL.allow_send_event_failure()
    bus = bus_factory()
    bus.publish(SIGNAL, topic="events", **event())
    bus.run()
    assert calls == ["first", "second", "second", "third"]


@pytest.mark.parametrize(
    ("headers", "words"),
    [([], "missing"), ([(cloudevents.ID, b"x")], "ce_")],
)
def test_unreadable_headers_are_dead_lettered_at_once(bus_factory, headers, words):
    bus = bus_factory()
    bus.publish_raw("events", b"body", headers)
    bus.run()
    [letter] = bus.dead_letters
    assert letter.reason == Reason.MALFORMED_HEADERS and words in letter.info["error-message"]
    assert letter.info["attempts"] == "1"


def test_unknown_event_type_and_undecodable_and_invalid_data_are_dead_lettered(bus_factory):
    bus = bus_factory()
    good = bus.publish(SIGNAL, topic="events", **event())
    unknown = [
        (k, b"org.flowbus.unknown.thing.done.v1" if k == cloudevents.TYPE else v)
        for k, v in good.headers
    ]
    bus.publish_raw("events", good.value, unknown)
    bus.publish_raw("events", b"\x00\x00\x00\x00\x01garbage", good.headers)
    other = caluma.CASE_POST_COMPLETE.generate_signal_metadata()
    bus.publish_raw("events", good.value, cloudevents.to_headers(other))  # wrong schema
    bus.run()
    reasons = [letter.reason for letter in bus.dead_letters]
    assert reasons == [Reason.UNKNOWN_EVENT_TYPE, Reason.UNDECODABLE, Reason.UNDECODABLE]
    assert bus.engine.stats.handled == 4


def test_a_middleware_decides_before_the_default_chain(bus_factory):
    class NoRetriesForValueErrors(Middleware):
        def on_failure(self, context, failure):
            return DeadLetterNow() if isinstance(failure.error, ValueError) else None

    outcomes = []

    class Recorder(Middleware):
        def after_handle(self, context, outcome):
            outcomes.append(outcome)

    attempts = []

    def broken(sender, **kw):
        attempts.append(1)
        raise ValueError("no")

    SIGNAL.connect(broken)
    chain = [
        Recorder(),
        NoRetriesForValueErrors(),
        *default_middlewares(retry=RetryPolicy(max_attempts=5), receiver_timeout=None),
    ]
    bus = bus_factory(middlewares=chain)
    bus.publish(SIGNAL, topic="events", **event())
    bus.run()
    assert len(attempts) == 1 and outcomes == [Outcome.DEAD_LETTERING]


def test_classifier_makes_a_receiver_error_data_or_infrastructure(bus_factory):
    class Refused(Exception):
        pass

    class DatabaseDown(Exception):
        pass

    down = {"left": 2}

    def receiver(sender, work_item, **kw):
        if work_item.task_slug == "refused":
            raise Refused("bad")
        if down["left"]:
            down["left"] -= 1
            raise DatabaseDown("db")

    SIGNAL.connect(receiver)
    classifier = FailureClassifier(infrastructure=[DatabaseDown], data=[Refused])
    chain = default_middlewares(retry=RetryPolicy(max_attempts=1), receiver_timeout=None)
    chain[-2].backoff = type(chain[-2].backoff)(initial=0.01, maximum=0.02)  # InfrastructurePauses
    bus = bus_factory(classifier=classifier, middlewares=chain)
    bus.publish(SIGNAL, topic="events", **event(slug="refused"))
    bus.publish(SIGNAL, topic="events", **event(slug="fine"))
    bus.run()
    # The data error is dead-lettered at once; the infrastructure error is retried past
    # max_attempts=1 (it never uses up attempts) and then handled.
    [letter] = bus.dead_letters
    assert letter.reason == Reason.RECEIVER_FAILED and letter.info["attempts"] == "1"
    assert down["left"] == 0 and bus.engine.stats.handled == 2


# --- infrastructure: the partition pauses, nothing is dead-lettered ---------------------


class FlakyRegistry(EventDeserializer):
    """A deserializer whose registry is down until ``up`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.up = threading.Event()
        self.refused = 0

    def deserialize(self, signal, value, topic):
        if not self.up.is_set():
            self.refused += 1
            raise SchemaRegistryError("registry unreachable while fetching schema id 2")
        return super().deserialize(signal, value, topic)


def test_registry_outage_pauses_the_partition_and_dead_letters_nothing(bus_factory):
    seen = []
    SIGNAL.connect(lambda sender, **kw: seen.append(kw["metadata"].id))
    registry = FlakyRegistry()
    bus = bus_factory(deserializer=registry)
    for _ in range(3):
        bus.publish(SIGNAL, topic="events", **event())
    with pytest.raises(FlowbusError, match="paused: infrastructure failure"):
        bus.run(timeout=1.5)
    assert bus.dead_letters == [] and seen == []
    assert bus.engine.paused() == {("events", 0)}
    assert bus.engine.committable() == {("events", 0): 0}
    assert any("SchemaRegistryError" in reason for reason in bus.engine.degraded())
    registry.up.set()
    bus.run(timeout=40)
    assert len(seen) == 3 and bus.dead_letters == []
    assert bus.engine.paused() == set() and bus.engine.degraded() == []
    assert bus.engine.committable() == {("events", 0): 3}


def test_a_dead_letter_too_large_becomes_a_pointer_record(bus_factory):
    def refuse_large(topic, parts):
        return DeadLetterTooLargeError("too large") if parts.value else None

    bus = bus_factory(sink=InMemoryDeadLetterSink(refuse_large))
    value = b"\x00" * 5000
    bus.publish_raw("events", value, [])
    bus.run()
    [pointer] = bus.dead_letters
    assert pointer.value is None and pointer.reason == Reason.MALFORMED_HEADERS
    assert pointer.info["pointer"] == "true" and pointer.info["original-size"] == "5000"
    headers = dict(pointer.headers)
    assert headers[POINTER] == b"true"
    import hashlib

    assert headers[ORIGINAL_SHA256] == hashlib.sha256(value).hexdigest().encode()
    assert bus.engine.committable() == {("events", 0): 1}


def test_a_dead_letter_topic_refusing_writes_pauses_then_retries(bus_factory):
    refusals = {"left": 2}

    def refuse_twice(topic, parts):
        if refusals["left"]:
            refusals["left"] -= 1
            return RuntimeError("topic authorization failed")
        return None

    bus = bus_factory(sink=InMemoryDeadLetterSink(refuse_twice))
    bus.engine.dead_letter_backoff = type(bus.engine.dead_letter_backoff)(0.01, 0.02)
    bus.publish_raw("events", b"poison", [])
    bus.run()
    assert refusals["left"] == 0 and len(bus.dead_letters) == 1
    assert bus.engine.committable() == {("events", 0): 1}


def test_dead_letter_helpers_keep_one_set_of_our_headers():
    letter = DeadLetter(
        reason=Reason.UNDECODABLE, error=ValueError("x"), topic="t", partition=0, offset=1,
        key=b"k", value=b"v", headers=[("flowbus-dlq-reason", b"old"), ("ce_id", b"1")], group="g",
    )  # fmt: skip
    names = [name for name, _ in letter.record().headers]
    assert names.count("flowbus-dlq-reason") == 1 and "ce_id" in names
    bare = letter.pointer(keep_original=False)
    assert bare.key is None and bare.value is None
    assert "ce_id" not in [name for name, _ in bare.headers]


# --- concurrency, deadlines, async receivers --------------------------------------------


def test_concurrent_handling_keeps_each_keys_order(bus_factory):
    recorder = KeyedRecorder(delay=0.002)
    SIGNAL.connect(recorder)
    bus = bus_factory(partitions=3, concurrency=16)
    publish_keys(bus, keys=40, per_key=10)
    stats = bus.run()
    assert stats.handled == 400
    recorder.assert_in_order(10)
    assert sum(bus.engine.committable().values()) == 400


def test_async_receivers_are_awaited_and_keep_each_keys_order(bus_factory):
    recorder = KeyedRecorder()
    threads = set()

    async def receiver(sender, work_item, **kw):
        threads.add(threading.current_thread().name)
        key = recorder.enter(work_item)
        await asyncio.sleep(0.002)
        recorder.leave(key, work_item)

    SIGNAL.connect(receiver)
    bus = bus_factory(partitions=3, concurrency=16)
    publish_keys(bus, keys=30, per_key=8)
    bus.run()
    recorder.assert_in_order(8)
    assert threads == {"flowbus-async-receivers"}


def test_an_async_receiver_past_its_deadline_is_cancelled_and_dead_lettered(bus_factory):
    cancelled = []

    async def hangs(sender, work_item, **kw):
        if work_item.task_slug == "hang":
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.append(1)
                raise

    SIGNAL.connect(hangs)
    bus = bus_factory(receiver_timeout=0.05, retry=RetryPolicy(max_attempts=2, initial_delay=0.001))
    bus.publish(SIGNAL, topic="events", **event(slug="hang"))
    bus.publish(SIGNAL, topic="events", **event(slug="fine"))
    bus.run(timeout=10)
    [letter] = bus.dead_letters
    assert letter.reason == Reason.TIMEOUT and letter.info["attempts"] == "2"
    # future.cancel() is delivered to the coroutine on the event loop's thread, soon after.
    deadline = time.monotonic() + 5
    while len(cancelled) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(cancelled) == 2 and bus.engine.abandoned_now == 0
    assert (bus.engine.stats.timeouts, bus.engine.stats.abandoned) == (2, 0)


def test_a_hanging_receiver_times_out_while_other_keys_flow(bus_factory):
    release = threading.Event()
    hung_key = uuid.uuid4()
    recorder = KeyedRecorder()

    def receiver(sender, work_item, **kw):
        if work_item.case_id == hung_key and work_item.task_slug == "step-0000":
            release.wait(30)
            return
        recorder(sender, work_item)

    SIGNAL.connect(receiver)
    bus = bus_factory(
        concurrency=4, receiver_timeout=0.2,
        retry=RetryPolicy(max_attempts=2, initial_delay=0.001),
    )  # fmt: skip
    bus.publish(SIGNAL, topic="events", **event(hung_key, "step-0000"))
    bus.publish(SIGNAL, topic="events", **event(hung_key, "step-0001"))  # behind it
    publish_keys(bus, keys=10, per_key=5)
    started = time.monotonic()
    bus.run(timeout=20)
    try:
        [letter] = bus.dead_letters
        assert letter.reason == Reason.TIMEOUT and letter.info["attempts"] == "2"
        assert (
            "timeout" in letter.info["error-message"]
            or "still running" in (letter.info["error-message"])
        )
        assert (str(hung_key), "step-0001") in recorder.seen  # its key moved on after it
        assert len(recorder.seen) == 51
        assert bus.engine.stats.abandoned == 2 and bus.engine.abandoned_now == 2
        assert bus.engine.stats.timeouts == 2
        assert time.monotonic() - started < 15
    finally:
        release.set()
    deadline = time.monotonic() + 5
    while bus.engine.abandoned_now and time.monotonic() < deadline:
        time.sleep(0.01)
    assert bus.engine.abandoned_now == 0  # the stuck threads returned and ended


def test_too_many_abandoned_receivers_make_the_engine_give_up(bus_factory):
    release = threading.Event()
    SIGNAL.connect(lambda sender, **kw: release.wait(30))
    bus = bus_factory(
        concurrency=2, receiver_timeout=0.05, max_abandoned=2,
        retry=RetryPolicy(max_attempts=5, initial_delay=0.001),
    )  # fmt: skip
    bus.publish(SIGNAL, topic="events", **event())
    try:
        with pytest.raises((ReceiversAbandonedError, FlowbusError)):
            bus.run(timeout=10)
        assert isinstance(bus.engine.fatal, ReceiversAbandonedError)
    finally:
        release.set()


SHORT_CODE = WorkflowSignal(
    "org.flowbus.test.pipeline.short_code.v1",
    {"code": Annotated[str, Field(max_length=3)], "user": UserInfo},
)


def test_decoded_data_violating_a_constraint_is_invalid_data(bus_factory):
    # The generated decoder builds UserInfo without validating it; "code" is still validated.
    data = {"code": "too long", "user": UserInfo(username="u")}
    value = EventSerializer().serialize(SHORT_CODE, data, "events").value
    assert isinstance(EventDeserializer().deserialize(SHORT_CODE, value, "events"), DecodedData)
    bus = bus_factory()
    bus.publish_raw("events", value, cloudevents.to_headers(SHORT_CODE.generate_signal_metadata()))
    bus.run()
    [letter] = bus.dead_letters
    assert letter.reason == Reason.INVALID_DATA
    assert "argument 'code'" in letter.info["error-message"]
