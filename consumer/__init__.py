"""The consumer side: workers that read event topics and re-send each event locally.

::

    from flowbus.consumer import ReceiverRetryPolicy, Worker

    Worker(["workflow-events"], "billing", receiver_modules=["billing.receivers"],
           retry=ReceiverRetryPolicy(max_attempts=5)).run()

Handling is a chain of :class:`Middleware` (:func:`default_middlewares`); a failing
receiver's exception is classified by the :class:`FailureClassifier`, and the first
middleware to return a decision (:class:`RetryLater`, :class:`DeadLetterNow`,
:class:`PausePartition`) wins. Webhooks: :mod:`flowbus.consumer.webhooks`; tests without a
broker: :mod:`flowbus.consumer.testing`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowbus.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from .dead_letter import DeadLetter, Reason, dead_letter_topic
    from .engine import WorkerStats
    from .failures import Failure, FailureClassifier, FailureKind
    from .metrics import WorkerMetrics
    from .middleware import (
        ConsumedRecord,
        DeadLetterNow,
        DeadLetters,
        Deadlines,
        Decision,
        DecodedEvent,
        InfrastructurePauses,
        MessageContext,
        Metrics,
        Middleware,
        Outcome,
        PausePartition,
        Retries,
        RetryLater,
        Tracing,
        default_middlewares,
    )
    from .retry import ReceiverRetryPolicy
    from .worker import Worker

__all__ = [
    "ConsumedRecord",
    "DeadLetter",
    "DeadLetterNow",
    "DeadLetters",
    "Deadlines",
    "Decision",
    "DecodedEvent",
    "Failure",
    "FailureClassifier",
    "FailureKind",
    "InfrastructurePauses",
    "MessageContext",
    "Metrics",
    "Middleware",
    "Outcome",
    "PausePartition",
    "Reason",
    "ReceiverRetryPolicy",
    "Retries",
    "RetryLater",
    "Tracing",
    "Worker",
    "WorkerMetrics",
    "WorkerStats",
    "dead_letter_topic",
    "default_middlewares",
]

# Imported on first use: `flowbus consume --help` must not pay for confluent-kafka, and
# WorkerMetrics needs the 'metrics' extra only when it is used.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DeadLetter": ".dead_letter",
        "Reason": ".dead_letter",
        "dead_letter_topic": ".dead_letter",
        "WorkerStats": ".engine",
        "Failure": ".failures",
        "FailureClassifier": ".failures",
        "FailureKind": ".failures",
        "WorkerMetrics": ".metrics",
        **dict.fromkeys(
            [
                "ConsumedRecord",
                "DeadLetterNow",
                "DeadLetters",
                "Deadlines",
                "Decision",
                "DecodedEvent",
                "InfrastructurePauses",
                "MessageContext",
                "Metrics",
                "Middleware",
                "Outcome",
                "PausePartition",
                "Retries",
                "RetryLater",
                "Tracing",
                "default_middlewares",
            ],
            ".middleware",
        ),
        "ReceiverRetryPolicy": ".retry",
        "Worker": ".worker",
    },
)
