"""Connecting receivers: the ``@on`` decorator and the receiver modules workers import.

A receiver is called ``fn(sender, signal=..., metadata=..., from_event_bus=..., **data)``.
Accept ``**kwargs`` so that data added to a signal later (a minor version) does not break
it::

    from flowbus import on
    from flowbus.catalog import post_complete_work_item

    @on(post_complete_work_item)
    def notify(sender, work_item, **kwargs):
        ...
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any, TypeVar

from flowbus.errors import ConfigurationError
from flowbus.settings import get_settings
from flowbus.signals import WorkflowSignal

__all__ = ["connect", "import_receiver_modules", "on"]

F = TypeVar("F", bound=Callable[..., Any])


def _as_signals(signals: WorkflowSignal | Iterable[WorkflowSignal]) -> list[WorkflowSignal]:
    items = [signals] if isinstance(signals, WorkflowSignal) else list(signals)
    if not items:
        raise TypeError("no signal given to connect to")
    for item in items:
        if not isinstance(item, WorkflowSignal):
            raise TypeError(f"expected a WorkflowSignal, got {item!r}")
    return items


def connect(
    signals: WorkflowSignal | Iterable[WorkflowSignal],
    receiver: Callable[..., Any],
    sender: object = None,
) -> None:
    """Connect ``receiver`` to one signal or to each of several."""
    for signal in _as_signals(signals):
        signal.connect(receiver, sender=sender)


def on(
    signals: WorkflowSignal | Iterable[WorkflowSignal], sender: object = None
) -> Callable[[F], F]:
    """Decorator connecting a function to a signal or a list of signals (Caluma's ``on``).

    ``sender`` (a class or a name) restricts the receiver to events of that sender, also for
    events that arrive over the bus. The function is returned unchanged.
    """
    targets = _as_signals(signals)

    def decorator(receiver: F) -> F:
        for signal in targets:
            signal.connect(receiver, sender=sender)
        return receiver

    return decorator


def import_receiver_modules(modules: Iterable[str] | None = None) -> list[ModuleType]:
    """Import the modules whose ``@on`` receivers should be connected.

    Defaults to the ``FLOWBUS_RECEIVER_MODULES`` setting. Any failure while importing one
    (missing module, error inside it) raises :class:`~flowbus.errors.ConfigurationError`
    naming the module, so a worker never starts without its receivers. Modules of the
    current directory are found, as with ``python -m`` (installed ones come first).
    """
    names = list(get_settings().receiver_modules if modules is None else modules)
    if names and "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    imported = []
    for name in names:
        try:
            imported.append(importlib.import_module(name))
        except Exception as exc:
            raise ConfigurationError(f"could not import receiver module '{name}': {exc}") from exc
    return imported
