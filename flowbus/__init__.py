"""flowbus: typed workflow signals that travel over Kafka."""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("flowbus")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

if TYPE_CHECKING:
    from flowbus.errors import SenderValidationError
    from flowbus.metadata import EventMetadata
    from flowbus.receivers import on
    from flowbus.signals import WorkflowSignal

__all__ = ["EventMetadata", "SenderValidationError", "WorkflowSignal", "__version__", "on"]

# The public names are imported on first use, so that `import flowbus` (and every `flowbus`
# command) does not pay for pydantic until a signal is needed.
_EXPORTS = {
    "EventMetadata": "flowbus.metadata",
    "SenderValidationError": "flowbus.errors",
    "WorkflowSignal": "flowbus.signals",
    "on": "flowbus.receivers",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'flowbus' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
