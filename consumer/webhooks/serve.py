"""``flowbus webhooks serve``: a consumer worker whose only receiver delivers webhooks.

:func:`serve` wires the store, the :class:`DeliveryEngine`, the :class:`WebhookForwarder`
and the worker, runs until SIGTERM/SIGINT and shuts down in order: the worker stops, the
attempts in flight finish (a second signal abandons them to their leases), the engine stops.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .output import display_time
from .store import WebhookStore

if TYPE_CHECKING:
    from .delivery import DeliveryEngine

__all__ = ["serve"]


def serve(
    *,
    database_url: str | None,
    topics: Sequence[str],
    group: str,
    dlq_suffix: str | None,
    metrics_port: int | None,
    health_timeout: float,
    say: Callable[[str], None],
) -> None:
    """Deliver the events of ``topics`` (as consumer ``group``) until a signal stops it.

    ``say`` reports progress (start, shutdown, attempts waited for or abandoned).
    """
    from flowbus.settings import get_settings

    from ..dead_letter import DEFAULT_SUFFIX
    from ..metrics import WorkerMetrics
    from ..worker import Worker
    from .delivery import DeliveryEngine
    from .forwarder import WebhookForwarder
    from .metrics import DeliveryMetrics

    settings = get_settings()
    # Only webhooks receive events in this process, whatever FLOWBUS_RECEIVER_MODULES says.
    worker_settings = settings.model_copy(update={"receiver_modules": []})
    store = WebhookStore.open(database_url)
    metrics = None if metrics_port is None else WorkerMetrics()
    delivery_metrics = None if metrics is None else DeliveryMetrics(metrics.registry)
    engine = DeliveryEngine.from_settings(store, settings, metrics=delivery_metrics)
    worker = Worker(
        topics,
        group,
        settings=worker_settings,
        dead_letter_suffix=dlq_suffix or DEFAULT_SUFFIX,
        metrics=metrics,
    )
    if metrics is not None and metrics_port is not None:  # once every metric is there
        metrics.serve(metrics_port, health_timeout=health_timeout)
    forwarder = WebhookForwarder(engine)
    engine.start()
    forwarder.connect()
    try:
        # The first SIGTERM/SIGINT stops the worker, also one right after the line below.
        with worker.stopped_by_signals():
            say(
                f"delivering webhooks for {', '.join(worker.topics)} as group {group} "
                f"(database {store.display_url})"
            )
            stats = worker.run(install_signal_handlers=False)
    finally:
        forwarder.disconnect()
        # A signal once the worker returned (while attempts finish) abandons them.
        abandon = threading.Event()
        previous = {
            signum: signal.signal(signum, lambda *_: abandon.set())
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        _finish_attempts(engine, abandon, say)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        engine.stop()
        if metrics is not None:
            metrics.close()
        store.close()
    say(f"stopped: {stats.handled} events handled, {stats.dead_lettered} dead-lettered")


def _finish_attempts(
    engine: DeliveryEngine, abandon: threading.Event, say: Callable[[str], None]
) -> None:
    """Let the attempts in flight finish, saying which and until when; ``abandon`` (a
    second signal) exits at once, leaving them to their leases."""
    running = engine.stop_dispatching()
    if not running:
        return
    latest = max(a.times_out_at for a in running)
    say(
        f"waiting for {len(running)} webhook attempt(s) in flight (their timeouts end "
        f"them by about {display_time(latest)}); SIGTERM/SIGINT again abandons them:"
    )
    for attempt in running:
        say(
            f"  delivery {attempt.delivery_id} (event {attempt.event_id}, subscription "
            f"{attempt.subscription_id}) since {display_time(attempt.started_at)}, "
            f"times out {display_time(attempt.times_out_at)}"
        )
    while not engine.wait_for_attempts(timeout=0.2):
        if abandon.is_set():
            left = engine.attempts_in_flight()
            until = max(a.lease_until for a in left) if left else latest
            say(
                f"abandoned {len(left)} webhook attempt(s): each delivery stays pending and "
                f"its lease makes it due again for the next worker (by {display_time(until)})"
            )
            sys.stdout.flush()
            sys.stderr.flush()
            # Their threads block in HTTP calls that cannot be interrupted, and the
            # interpreter would join them at exit: leave without waiting. The offsets are
            # committed and every delivery is in the database.
            os._exit(0)
