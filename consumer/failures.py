"""What kind of failure a handling error is, which decides what happens to the message.

- **Data** errors (undecodable value, invalid data, unknown event type, malformed
  CloudEvents headers): the message can never be handled. Dead-lettered at once.
- **Receiver** errors (a receiver raised or ran past its deadline): maybe transient.
  Retried with backoff, then dead-lettered.
- **Infrastructure** errors (registry unreachable, dead-letter topic not writable, a
  broker error): nothing is wrong with the message. Its partition is paused and the
  message retried with backoff, never dead-lettered and never committed past.

A receiver's exception counts as a receiver error unless the :class:`FailureClassifier`
says otherwise: a service whose receivers write to a database can declare the database's
connection errors as infrastructure (``infrastructure=(psycopg.OperationalError,)``), so
that an outage pauses the worker instead of dead-lettering every event.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable

from .dead_letter import Reason

__all__ = ["Failure", "FailureClassifier", "FailureKind"]


class FailureKind(enum.StrEnum):
    DATA = "data"
    RECEIVER = "receiver"
    INFRASTRUCTURE = "infrastructure"


@dataclasses.dataclass(frozen=True, slots=True)
class Failure:
    """One failed handling attempt: its kind, the error, and the dead-letter reason it
    would be given (``receivers``: the receivers that failed, by name)."""

    kind: FailureKind
    reason: Reason
    error: BaseException
    receivers: tuple[str, ...] = ()

    def describe(self) -> str:
        """The kind and error type, never the error's message (it may hold payload values)."""
        return f"{self.kind.value} failure ({type(self.error).__name__})"


class FailureClassifier:
    """Tells which kind of failure a receiver's exception is.

    ``infrastructure`` and ``data``: exception types (subclasses included) that count as
    that kind; ``classify``: a function deciding first (``None``: no opinion). Everything
    else is a receiver failure.
    """

    def __init__(
        self,
        *,
        infrastructure: Iterable[type[BaseException]] = (),
        data: Iterable[type[BaseException]] = (),
        classify: Callable[[BaseException], FailureKind | None] | None = None,
    ) -> None:
        self.infrastructure = tuple(infrastructure)
        self.data = tuple(data)
        self._classify = classify

    def receiver_failure_kind(self, error: BaseException) -> FailureKind:
        if self._classify is not None:
            kind = self._classify(error)
            if kind is not None:
                return kind
        if self.infrastructure and isinstance(error, self.infrastructure):
            return FailureKind.INFRASTRUCTURE
        if self.data and isinstance(error, self.data):
            return FailureKind.DATA
        return FailureKind.RECEIVER
