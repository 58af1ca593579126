"""Importing the user's own modules (receivers, signals, exception types) by dotted name.

Modules of the current directory are found, as with ``python -m``:
``flowbus consume --receivers billing.receivers`` imports ``./billing/receivers.py``
without ``PYTHONPATH=.``. Installed modules come first, so a local file never shadows a
package the command itself imports later.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

from flowbus.errors import ConfigurationError

__all__ = ["import_user_module"]


def import_user_module(name: str, what: str = "module") -> ModuleType:
    """Import module ``name``, found also in the current directory (as with ``python -m``).

    Any failure (no such module, an error inside it) raises
    :class:`~flowbus.errors.ConfigurationError` naming the module; ``what`` says what it
    was for ("receiver module").
    """
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
        importlib.invalidate_caches()
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise ConfigurationError(f"could not import {what} '{name}': {exc}") from exc
