"""flowbus: typed workflow signals that travel over Kafka."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from flowbus.lazy_exports import lazy_exports_by_module
from flowbus.signal_checks import register_definition_check

try:
    __version__ = version("flowbus")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

# Type checkers do not run __getattr__: they read the names here (`X as X` re-exports them).
if TYPE_CHECKING:
    from flowbus.errors import SenderValidationError as SenderValidationError
    from flowbus.metadata import EventMetadata as EventMetadata
    from flowbus.receivers import on as on
    from flowbus.signals import WorkflowSignal as WorkflowSignal

# The public names are imported on first use, so that `import flowbus` (and every `flowbus`
# command) does not pay for pydantic until a signal is needed.
_lazy, __getattr__, __dir__ = lazy_exports_by_module(
    __name__,
    {
        "flowbus.errors": ["SenderValidationError"],
        "flowbus.metadata": ["EventMetadata"],
        "flowbus.receivers": ["on"],
        "flowbus.signals": ["WorkflowSignal"],
    },
)
__all__ = [*_lazy, "__version__"]


def _check_wire(signal: WorkflowSignal) -> None:
    # Imported when the first signal is defined: `import flowbus` does not load the Avro
    # layer, and the signal modules do not depend on it (see flowbus.signal_checks).
    from flowbus.avro.signal_schemas import check_definition

    check_definition(signal)


# This package runs before any flowbus module, so every signal definition is checked.
register_definition_check("wire", _check_wire)
