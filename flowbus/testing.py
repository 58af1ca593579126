"""Helpers for testing code that sends or receives flowbus signals.

Capture what a block of code sends::

    from flowbus.testing import capture_events

    with capture_events(post_complete_work_item) as events:
        complete(work_item)
    assert [e.data["work_item"].id for e in events] == [work_item.id]

Keep receivers that one test connects out of the next (pytest)::

    @pytest.fixture(autouse=True)
    def _isolated_receivers():
        with isolated_receivers():
            yield

To run events through the whole consumer pipeline without a broker (serializer, headers,
handler, middlewares, dead letters), use :class:`flowbus.consumer.testing.InMemoryBus`:
it lives on the consumer side, because the core imports neither side.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from flowbus.metadata import EventMetadata
from flowbus.signals import Receiver, WorkflowSignal

__all__ = ["CapturedEvent", "capture_events", "isolated_receivers"]


@dataclass(frozen=True)
class CapturedEvent:
    """One event sent while capturing: as its receivers saw it."""

    signal: WorkflowSignal
    metadata: EventMetadata
    data: dict[str, Any]
    sender: object
    from_event_bus: bool


@contextmanager
def capture_events(*signals: WorkflowSignal) -> Iterator[list[CapturedEvent]]:
    """Record the events of ``signals`` (default: every signal defined) sent inside the block.

    Yields a list that fills up as events are sent, in sending order. Only events that reach
    receivers are recorded: a disabled signal sends nothing, and a sender filter does not
    apply to the capture. The capturing receiver is disconnected when the block ends.
    """
    targets = signals or tuple(WorkflowSignal.all_signals())
    captured: list[CapturedEvent] = []

    def record(
        sender: object,
        *,
        signal: WorkflowSignal,
        metadata: EventMetadata,
        from_event_bus: bool,
        **data: Any,
    ) -> None:
        captured.append(CapturedEvent(signal, metadata, data, sender, from_event_bus))

    for signal in targets:
        signal.connect(record)
    try:
        yield captured
    finally:
        for signal in targets:
            signal.disconnect(record)


@dataclass(frozen=True)
class _SignalState:
    receivers: tuple[Receiver, ...]
    enabled: bool
    allow_send_event_failure: bool


@contextmanager
def isolated_receivers() -> Iterator[None]:
    """Undo, when the block ends, every receiver change made inside it.

    Each signal defined before the block gets back the receivers it had, its enabled state
    and its :meth:`~flowbus.WorkflowSignal.allow_send_event_failure` setting. Signals defined
    inside the block lose the receivers connected to them (they stay defined: their module
    stays imported).
    """
    saved = {
        signal: _SignalState(signal.receivers, signal.enabled, signal.send_event_failure_allowed)
        for signal in WorkflowSignal.all_signals()
    }
    try:
        yield
    finally:
        for signal in WorkflowSignal.all_signals():
            state = saved.get(signal, _SignalState((), True, False))
            signal._set_receivers(state.receivers)
            if state.enabled:
                signal.enable()
            else:
                signal.disable()
            signal.allow_send_event_failure(state.allow_send_event_failure)
