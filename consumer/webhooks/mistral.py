"""Mistral-style listeners: the webhook subscriptions that follow one execution or one task.

An execution listener gets the execution's own events and those of its tasks (two
subscriptions, one per event pattern); a task listener gets that task's events. Naming
Mistral events (``WORKFLOW_SUCCEEDED``, ``TASK_FAILED``, ...) narrows either to those types.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

__all__ = [
    "MISTRAL_TASK_PATTERN",
    "MISTRAL_WORKFLOW_PATTERN",
    "ListenerError",
    "ListenerKind",
    "listener_description",
    "listener_subscriptions",
]

MISTRAL_WORKFLOW_PATTERN = "org.flowbus.mistral.workflow_execution.*"
MISTRAL_TASK_PATTERN = "org.flowbus.mistral.task_execution.*"

#: What a listener follows: a workflow execution (and its tasks) or one task.
ListenerKind = Literal["execution", "task"]


class ListenerError(ValueError):
    """A listener that cannot be built; ``param`` names the argument at fault."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def listener_subscriptions(
    kind: ListenerKind, target_id: str, event_names: Sequence[str] = ()
) -> list[tuple[str, dict[str, Any]]]:
    """The ``(event pattern, filters)`` of each subscription a listener needs.

    ``event_names``: Mistral event names (any case), or none for every event. Raises
    :class:`ListenerError`.
    """
    from flowbus.catalog.mistral import MISTRAL_EVENTS

    if any(c in target_id for c in "*?"):
        raise ListenerError("must not contain '*' or '?'", "ID")
    unknown = [n for n in event_names if n.upper() not in MISTRAL_EVENTS]
    if unknown:
        known = ", ".join(MISTRAL_EVENTS)
        raise ListenerError(f"unknown {', '.join(unknown)} (known: {known})", "--event")
    wanted = [MISTRAL_EVENTS[n.upper()].event_type for n in event_names]
    workflow_types = [t for t in wanted if ".workflow_execution." in t]
    task_types = [t for t in wanted if ".task_execution." in t]

    plans: list[tuple[str, dict[str, Any], list[str]]] = []
    if kind == "execution":
        if not wanted or workflow_types:
            plans.append((MISTRAL_WORKFLOW_PATTERN, {"execution.id": target_id}, workflow_types))
        if not wanted or task_types:
            plans.append(
                (MISTRAL_TASK_PATTERN, {"task.workflow_execution_id": target_id}, task_types)
            )
    else:
        if workflow_types:
            raise ListenerError("a task listener gets task events only", "--event")
        plans.append((MISTRAL_TASK_PATTERN, {"task.id": target_id}, task_types))
    # Only the named types of the pattern (its filters' "$type"), when some are named.
    return [
        (pattern, {**filters, "$type": types} if types else filters)
        for pattern, filters, types in plans
    ]


def listener_description(kind: ListenerKind, target_id: str) -> str:
    """The description a listener's subscriptions carry."""
    return f"Mistral listener: {kind} {target_id}"
