"""Calling failed receivers again: how many times, and how far apart."""

from __future__ import annotations

import dataclasses
import functools
import random

from flowbus.backoff import Backoff


@dataclasses.dataclass(frozen=True)
class ReceiverRetryPolicy:
    """How often, and how far apart, receivers that raised (or timed out) are called again.

    ``max_attempts`` counts the first call: 3 means two retries. Delays follow
    :class:`~flowbus.backoff.Backoff` from ``initial_delay`` up to ``max_delay``. While a
    message waits for its retry, later messages of its key wait behind it and every other
    key goes on; what still fails after the last attempt is dead-lettered.
    """

    max_attempts: int = 3
    initial_delay: float = 0.2
    max_delay: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.backoff  # noqa: B018 (validates the delays now, not at the first retry)

    @functools.cached_property
    def backoff(self) -> Backoff:
        return Backoff(  # max_delay caps every delay, the first one included
            initial=min(self.initial_delay, self.max_delay),
            maximum=self.max_delay,
            multiplier=self.multiplier,
            jitter=self.jitter,
        )

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        return self.backoff.delay(retry, rng)
