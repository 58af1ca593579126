"""The optional parts of flowbus, installed by extras (``pip install 'flowbus[webhooks]'``).

``webhooks`` (httpcore, certifi), ``metrics`` (prometheus-client), ``postgres`` (psycopg).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flowbus.errors import MissingExtraError


@contextmanager
def requires_extra(extra: str, feature: str) -> Iterator[None]:
    """Imports in the block that find no third-party module raise :class:`MissingExtraError`.

    The message names the extra: ``webhooks need the 'webhooks' extra: pip install
    'flowbus[webhooks]'`` for ``requires_extra("webhooks", "webhooks")``.
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] == "flowbus":
            raise
        raise MissingExtraError(
            f"{feature} need the {extra!r} extra: pip install 'flowbus[{extra}]'"
        ) from exc
