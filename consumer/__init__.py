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

from flowbus.lazy_exports import lazy_exports_by_module

# Type checkers do not run __getattr__: they read the names here (`X as X` re-exports them).
if TYPE_CHECKING:
    from .dead_letter import DeadLetter as DeadLetter
    from .dead_letter import Reason as Reason
    from .dead_letter import dead_letter_topic as dead_letter_topic
    from .engine import WorkerStats as WorkerStats
    from .failures import Failure as Failure
    from .failures import FailureClassifier as FailureClassifier
    from .failures import FailureKind as FailureKind
    from .metrics import WorkerMetrics as WorkerMetrics
    from .middleware import ConsumedRecord as ConsumedRecord
    from .middleware import DeadLetterNow as DeadLetterNow
    from .middleware import DeadLetters as DeadLetters
    from .middleware import Deadlines as Deadlines
    from .middleware import Decision as Decision
    from .middleware import DecodedEvent as DecodedEvent
    from .middleware import InfrastructurePauses as InfrastructurePauses
    from .middleware import MessageContext as MessageContext
    from .middleware import Metrics as Metrics
    from .middleware import Middleware as Middleware
    from .middleware import Outcome as Outcome
    from .middleware import PausePartition as PausePartition
    from .middleware import Retries as Retries
    from .middleware import RetryLater as RetryLater
    from .middleware import Tracing as Tracing
    from .middleware import default_middlewares as default_middlewares
    from .retry import ReceiverRetryPolicy as ReceiverRetryPolicy
    from .worker import Worker as Worker
# Imported on first use: `flowbus consume --help` must not pay for confluent-kafka, and
# WorkerMetrics needs the 'metrics' extra only when it is used.
__all__, __getattr__, __dir__ = lazy_exports_by_module(
    __name__,
    {
        ".dead_letter": ["DeadLetter", "Reason", "dead_letter_topic"],
        ".engine": ["WorkerStats"],
        ".failures": ["Failure", "FailureClassifier", "FailureKind"],
        ".metrics": ["WorkerMetrics"],
        # The handling pipeline's seam: every public name of the middleware module.
        ".middleware": [
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
        ".retry": ["ReceiverRetryPolicy"],
        ".worker": ["Worker"],
    },
)
