"""The tracing middleware: one consumer span per attempt, child of the producer's trace."""

from __future__ import annotations

import pytest
import sample_events

from flowbus import cloudevents
from flowbus.catalog import caluma
from flowbus.consumer.middleware import Tracing, default_middlewares
from flowbus.consumer.retry import ReceiverRetryPolicy as RetryPolicy
from flowbus.consumer.testing import InMemoryBus
from flowbus.testing import isolated_receivers

trace = pytest.importorskip("opentelemetry.trace")
sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
export = pytest.importorskip("opentelemetry.sdk.trace.export")
in_memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")

SIGNAL = caluma.WORK_ITEM_POST_COMPLETE


@pytest.fixture
def spans(monkeypatch):
    exporter = in_memory.InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(export.SimpleSpanProcessor(exporter))
    # The producer side injects the context of the current span (through the global API).
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    with isolated_receivers():
        yield exporter, provider


def test_without_a_configured_provider_no_span_is_started():
    tracing = Tracing()
    assert tracing._current_tracer() is None  # the global provider is still the proxy


def test_each_attempt_is_a_consumer_span_under_the_producers_trace(spans):
    exporter, provider = spans
    calls = []

    def flaky(sender, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("once")

    SIGNAL.connect(flaky)
    chain = default_middlewares(retry=RetryPolicy(initial_delay=0.001), receiver_timeout=None)
    assert isinstance(chain[0], Tracing)
    chain[0] = Tracing(tracer_provider=provider)
    with InMemoryBus(middlewares=chain) as bus:
        with provider.get_tracer("producer").start_as_current_span("send") as parent:
            record = bus.publish(SIGNAL, topic="events", **sample_events.work_item_event())
        names = [name for name, _ in record.headers]
        assert cloudevents.TRACEPARENT in names
        bus.run()
    finished = [s for s in exporter.get_finished_spans() if s.name == "events process"]
    assert len(finished) == 2
    failed, handled = finished
    assert failed.kind is trace.SpanKind.CONSUMER
    assert failed.attributes["flowbus.outcome"] == "retrying"
    assert failed.status.status_code is trace.StatusCode.ERROR
    assert "RuntimeError" in failed.status.description
    assert handled.attributes["flowbus.outcome"] == "handled"
    assert handled.attributes["messaging.kafka.offset"] == 0
    for span in finished:
        assert span.context.trace_id == parent.get_span_context().trace_id
        assert span.parent.span_id == parent.get_span_context().span_id
