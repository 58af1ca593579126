"""flowbus.testing: capturing events and isolating receivers."""

from __future__ import annotations

import uuid
from typing import Any

from flowbus import WorkflowSignal
from flowbus.testing import CapturedEvent, capture_events, isolated_receivers


def new_signal() -> WorkflowSignal:
    return WorkflowSignal(f"org.flowbus.test.t{uuid.uuid4().hex[:12]}.happened.v1", {"x": int})


def test_capture_events_records_what_was_sent() -> None:
    signal = new_signal()
    with capture_events(signal) as events:
        signal.send_event(x=1, sender="me")
        signal.send_event(x=0)
    assert [(e.signal, e.data, e.sender, e.from_event_bus) for e in events] == [
        (signal, {"x": 1}, "me", False),
        (signal, {"x": 0}, None, False),
    ]
    assert all(isinstance(e, CapturedEvent) for e in events)
    assert events[0].metadata.event_type == signal.event_type
    assert events[0].metadata.id != events[1].metadata.id


def test_capture_stops_at_the_end_of_the_block() -> None:
    signal = new_signal()
    with capture_events(signal) as events:
        pass
    signal.send_event(x=1)
    assert events == []
    assert signal.receivers == ()


def test_capture_only_the_given_signals() -> None:
    watched, other = new_signal(), new_signal()
    with capture_events(watched) as events:
        other.send_event(x=1)
        watched.send_event(x=2)
    assert [e.data["x"] for e in events] == [2]


def test_capture_without_arguments_records_every_signal() -> None:
    first, second = new_signal(), new_signal()
    with capture_events() as events:
        second.send_event(x=2)
        first.send_event(x=1)
    assert [e.signal for e in events] == [second, first]


def test_capture_sees_bus_events_with_their_metadata() -> None:
    signal = new_signal()
    metadata = signal.generate_signal_metadata()
    with capture_events(signal) as events:
        signal.send_event_with_custom_metadata(metadata, x=3, sender="remote.Sender")
    assert events[0].metadata is metadata
    assert events[0].from_event_bus is True
    assert events[0].sender == "remote.Sender"


def test_disabled_signal_captures_nothing() -> None:
    signal = new_signal()
    signal.disable()
    with capture_events(signal) as events:
        signal.send_event(x=1)
    assert events == []


def test_isolated_receivers_removes_receivers_added_inside() -> None:
    signal = new_signal()

    def kept(sender: Any, **kwargs: Any) -> str:
        return "kept"

    def temporary(sender: Any, **kwargs: Any) -> str:
        return "temporary"

    signal.connect(kept)
    with isolated_receivers():
        signal.connect(temporary)
        assert signal.send_event(x=1) == [(kept, "kept"), (temporary, "temporary")]
    assert signal.send_event(x=1) == [(kept, "kept")]


def test_isolated_receivers_restores_disconnected_receivers_and_switches() -> None:
    signal = new_signal()

    def kept(sender: Any, **kwargs: Any) -> str:
        return "kept"

    signal.connect(kept)
    with isolated_receivers():
        signal.disconnect(kept)
        signal.disable()
        signal.allow_send_event_failure()
    assert signal.enabled
    assert not signal.send_event_failure_allowed
    assert signal.send_event(x=1) == [(kept, "kept")]


def test_isolated_receivers_clears_signals_defined_inside() -> None:
    with isolated_receivers():
        signal = new_signal()
        signal.connect(lambda sender, **kwargs: None)
        signal.disable()
    assert signal.receivers == ()
    assert signal.enabled
    assert WorkflowSignal.get_signal_by_type(signal.event_type) is signal


def test_isolated_receivers_restores_after_an_exception() -> None:
    signal = new_signal()
    try:
        with isolated_receivers():
            signal.connect(lambda sender, **kwargs: None)
            raise RuntimeError("test failed")
    except RuntimeError:
        pass
    assert signal.receivers == ()
