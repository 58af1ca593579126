"""The delivery engine's dispatcher: its waits after errors come from the project's Backoff."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from flowbus.backoff import Backoff
from flowbus.consumer.webhooks.delivery import DeliveryEngine, EngineLimits
from flowbus.errors import WebhookStoreError


class FlakyStore:
    """A store whose dispatcher queries fail or find nothing due, as ``plan`` says."""

    display_url = "sqlite:///flaky"

    def __init__(self, *plan: bool) -> None:
        self.plan = list(plan)  # True: the query fails
        self.done = threading.Event()

    def due_deliveries(self, **kwargs: Any) -> list[Any]:
        if not self.plan:
            self.done.set()
            return []
        if self.plan.pop(0):
            raise WebhookStoreError("webhook store sqlite:///flaky: database is locked")
        return []

    def next_due_at(self) -> None:
        return None


def test_dispatcher_errors_wait_per_the_error_backoff(caplog: pytest.LogCaptureFixture) -> None:
    store = FlakyStore(True, True, True, False, True)
    limits = EngineLimits(
        poll_interval=0.01, error_backoff=Backoff(initial=0.01, maximum=0.03, jitter=0.0)
    )
    engine = DeliveryEngine(store, limits=limits)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="flowbus.consumer.webhooks.delivery"), engine:
        assert store.done.wait(10)
    errors = [r.args for r in caplog.records if "in a row" in r.getMessage()]
    assert errors == [(1, 0.01), (2, 0.02), (3, 0.03), (1, 0.01)]  # a success starts over
