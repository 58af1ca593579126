"""Definition checks: what else a signal's definition must pass, said by the layers that
carry signals.

The signal knows its data, not how it travels: whether a wire can carry that data is the
wire layer's to say. The composition root, ``flowbus/__init__.py`` (which runs before any
flowbus module), registers the Avro layer's check, so every
:class:`~flowbus.signals.WorkflowSignal` is checked however it is imported. A check raises
a :class:`~flowbus.errors.SignalDefinitionError` (such as an
:class:`~flowbus.errors.UnsupportedDataTypeError` naming the field); the signal is then
not defined and its event type stays free.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowbus.signals import WorkflowSignal

__all__ = ["DefinitionCheck", "definition_checks", "register_definition_check"]

#: Called with a signal being defined; its event type, data, doc and wire are set.
DefinitionCheck = Callable[["WorkflowSignal"], None]

_checks: dict[str, DefinitionCheck] = {}


def register_definition_check(name: str, check: DefinitionCheck) -> None:
    """Run ``check`` on every signal defined from now on, after the signal's own checks
    and before its key path is checked. Registering ``name`` again replaces its check."""
    _checks[name] = check


def definition_checks() -> tuple[DefinitionCheck, ...]:
    """The registered checks, in registration order."""
    return tuple(_checks.values())
