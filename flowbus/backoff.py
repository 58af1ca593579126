"""Exponential backoff with jitter: the one waiting rule of every retry in flowbus.

Receivers a worker calls again, a dead-letter produce the broker refused, a partition
paused because the registry is unreachable, a webhook attempt that failed: each waits
``Backoff.delay(n)`` before try ``n + 1``.
"""

from __future__ import annotations

import dataclasses
import random

__all__ = ["Backoff"]


@dataclasses.dataclass(frozen=True, slots=True)
class Backoff:
    """Delays growing from ``initial`` by ``multiplier`` per failure, capped at ``maximum``.

    Each delay is scaled by a random factor in ``[1 - jitter, 1 + jitter]`` (and never
    exceeds ``maximum``) so that many clients failing together do not retry in lockstep.
    """

    initial: float = 0.2
    maximum: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < self.initial:
            raise ValueError("backoff delays must satisfy 0 <= initial <= maximum")
        if self.multiplier < 1:
            raise ValueError("backoff multiplier must be >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("backoff jitter must be between 0 and 1")

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after ``failures`` (>= 1) failures in a row."""
        exponent = min(max(failures, 1) - 1, 64)  # 2**64 is far past any maximum
        base = min(self.maximum, self.initial * self.multiplier**exponent)
        factor = 1.0 + self.jitter * (2.0 * (rng or random).random() - 1.0)
        return min(self.maximum, base * factor)
