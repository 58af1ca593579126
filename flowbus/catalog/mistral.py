"""Mistral-style workflow execution and task events, as Mistral's notifier reports them.

An HTTP listener receiving Mistral notifications (``WORKFLOW_LAUNCHED``, ``TASK_FAILED``,
...) finds the matching signal with :func:`signal_for_mistral_event`. Workflow execution
events are keyed by the execution id and task events by their workflow execution's id, so
the events of one execution share a partition and keep their order.
"""

from __future__ import annotations

from flowbus.catalog.models import TaskExecutionSnapshot, WorkflowExecutionSnapshot
from flowbus.signals import WorkflowSignal

__all__ = [
    "MISTRAL_EVENTS",
    "MISTRAL_SIGNALS",
    "TASK_EXECUTION_CANCELLED",
    "TASK_EXECUTION_FAILED",
    "TASK_EXECUTION_LAUNCHED",
    "TASK_EXECUTION_PAUSED",
    "TASK_EXECUTION_RESUMED",
    "TASK_EXECUTION_SUCCEEDED",
    "WORKFLOW_EXECUTION_CANCELLED",
    "WORKFLOW_EXECUTION_FAILED",
    "WORKFLOW_EXECUTION_LAUNCHED",
    "WORKFLOW_EXECUTION_PAUSED",
    "WORKFLOW_EXECUTION_RESUMED",
    "WORKFLOW_EXECUTION_SUCCEEDED",
    "signal_for_mistral_event",
]


def _execution_signal(action: str) -> WorkflowSignal:
    return WorkflowSignal(
        f"org.flowbus.mistral.workflow_execution.{action}.v1",
        {"execution": WorkflowExecutionSnapshot},
        key_path="execution.id",
        doc=f"A Mistral workflow execution {action} (Mistral: WORKFLOW_{action.upper()}).",
    )


def _task_signal(action: str) -> WorkflowSignal:
    return WorkflowSignal(
        f"org.flowbus.mistral.task_execution.{action}.v1",
        {"task": TaskExecutionSnapshot},
        key_path="task.workflow_execution_id",
        doc=f"A Mistral task execution {action} (Mistral: TASK_{action.upper()}).",
    )


WORKFLOW_EXECUTION_LAUNCHED = _execution_signal("launched")
WORKFLOW_EXECUTION_SUCCEEDED = _execution_signal("succeeded")
WORKFLOW_EXECUTION_FAILED = _execution_signal("failed")
WORKFLOW_EXECUTION_CANCELLED = _execution_signal("cancelled")
WORKFLOW_EXECUTION_PAUSED = _execution_signal("paused")
WORKFLOW_EXECUTION_RESUMED = _execution_signal("resumed")

TASK_EXECUTION_LAUNCHED = _task_signal("launched")
TASK_EXECUTION_SUCCEEDED = _task_signal("succeeded")
TASK_EXECUTION_FAILED = _task_signal("failed")
TASK_EXECUTION_CANCELLED = _task_signal("cancelled")
TASK_EXECUTION_PAUSED = _task_signal("paused")
TASK_EXECUTION_RESUMED = _task_signal("resumed")

#: Mistral's notification event names and the signal each becomes.
MISTRAL_EVENTS: dict[str, WorkflowSignal] = {
    "WORKFLOW_LAUNCHED": WORKFLOW_EXECUTION_LAUNCHED,
    "WORKFLOW_SUCCEEDED": WORKFLOW_EXECUTION_SUCCEEDED,
    "WORKFLOW_FAILED": WORKFLOW_EXECUTION_FAILED,
    "WORKFLOW_CANCELLED": WORKFLOW_EXECUTION_CANCELLED,
    "WORKFLOW_PAUSED": WORKFLOW_EXECUTION_PAUSED,
    "WORKFLOW_RESUMED": WORKFLOW_EXECUTION_RESUMED,
    "TASK_LAUNCHED": TASK_EXECUTION_LAUNCHED,
    "TASK_SUCCEEDED": TASK_EXECUTION_SUCCEEDED,
    "TASK_FAILED": TASK_EXECUTION_FAILED,
    "TASK_CANCELLED": TASK_EXECUTION_CANCELLED,
    "TASK_PAUSED": TASK_EXECUTION_PAUSED,
    "TASK_RESUMED": TASK_EXECUTION_RESUMED,
}

#: Every Mistral signal.
MISTRAL_SIGNALS: tuple[WorkflowSignal, ...] = tuple(MISTRAL_EVENTS.values())


def signal_for_mistral_event(event: str) -> WorkflowSignal:
    """The signal for a Mistral notification event name (``"TASK_FAILED"``)."""
    try:
        return MISTRAL_EVENTS[event]
    except KeyError:
        raise KeyError(
            f"unknown Mistral event {event!r} (known: {', '.join(MISTRAL_EVENTS)})"
        ) from None
