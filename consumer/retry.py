"""In-process retries of failed receivers: bounded exponential backoff."""

from __future__ import annotations

import dataclasses
import random


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often, and how far apart, receivers that raised are called again.

    ``max_attempts`` counts the first call: 3 means two retries. Delays grow from
    ``initial_delay`` by ``multiplier`` up to ``max_delay``, with up to ``jitter`` of
    each delay added at random so that workers do not retry in lockstep. The worker
    holds its partition while it retries, so keep the total short; what still fails is
    dead-lettered, not retried forever.
    """

    max_attempts: int = 3
    initial_delay: float = 0.2
    max_delay: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ValueError("delays must be >= 0 and multiplier >= 1")

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** (retry - 1))
        return base + base * self.jitter * random.random()  # noqa: S311 (not cryptographic)
