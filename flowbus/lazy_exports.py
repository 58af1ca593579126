"""Public names of a package, imported on first use.

A package door (``flowbus``, ``flowbus.producer``, ``flowbus.consumer``) lists its names
here instead of importing them, so that importing the package - which every ``flowbus``
command does - pays only for what it uses. Type checkers do not run ``__getattr__``: a door
also imports its lazy names under ``TYPE_CHECKING`` (``tests/unit/test_doors.py`` checks
that the two agree).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["import_named", "lazy_exports_by_module"]


def _lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of ``package``.

    ``exports`` maps each public name to the module defining it (absolute, or relative to
    ``package``).
    """
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__


def lazy_exports_by_module(
    package: str, modules: Mapping[str, Sequence[str]]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """The names ``modules`` declares (each module, absolute or relative to ``package``,
    with the public names it defines), for ``__all__``, and the module ``__getattr__`` and
    ``__dir__`` that import them.

    One declaration gives a door both its ``__all__`` (or the lazy part of it) and the
    map its ``__getattr__`` imports from.
    """
    exports = {name: module for module, names in modules.items() for name in names}
    if len(exports) != sum(len(names) for names in modules.values()):
        raise ValueError(f"{package}: a name is declared twice")
    return [*exports], *_lazy_exports(package, exports)


def import_named(reference: str) -> Any:
    """The object a ``"module:attribute"`` reference names, its module imported now (how
    the core reaches a side's commands and checks without importing the side itself)."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)
