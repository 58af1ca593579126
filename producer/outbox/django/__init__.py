"""The outbox as a Django app: the insert joins the ORM's transaction.

Add ``"flowbus.producer.outbox.django"`` to ``INSTALLED_APPS`` and run ``manage.py
migrate``. Then the outbox sink (``FLOWBUS_PRODUCER_SINK=outbox`` or a route's
``"sink": "outbox"``) writes each event on Django's own connection: inside
``transaction.atomic()`` the row commits or rolls back with the view's changes, and outside
any ``atomic()`` block (autocommit) it commits at once, as the ORM's own writes do. An
explicit :func:`flowbus.producer.outbox.bind` still wins. The relay runs as
``manage.py flowbus_outbox_relay`` (or ``flowbus outbox relay --database URL`` on the same
database); the delivery contract is the outbox's (:mod:`flowbus.producer.outbox`).

**One source of truth for the table.** The model is unmanaged (Django never generates DDL
for it) and the app's migration runs flowbus's own outbox migrations
(:data:`~flowbus.producer.outbox.store.MIGRATIONS`) on the migrating connection, inside
Django's migration transaction: the table, indexes, lease tables and (PostgreSQL) NOTIFY
trigger are exactly those of ``flowbus outbox migrate``, and either may run first.

**Settings**, each a Django setting or else an environment variable of the same name:

- ``FLOWBUS_OUTBOX_USING``: the connection alias of the outbox (default ``"default"``).
- ``FLOWBUS_SETTINGS`` (Django settings only): a dict of :class:`~flowbus.settings.
  FlowbusSettings` fields for the relay command, over the environment's ``FLOWBUS_*`` /
  ``KAFKA_BOOTSTRAP_SERVERS`` / ``SCHEMA_REGISTRY_URL``.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote, urlencode

from flowbus.settings import FlowbusSettings

__all__ = ["bind_django_connection", "database_url", "flowbus_settings", "outbox_alias"]


def outbox_alias() -> str:
    """The Django connection alias the outbox lives on."""
    from django.conf import settings

    alias = getattr(settings, "FLOWBUS_OUTBOX_USING", None) or os.environ.get(
        "FLOWBUS_OUTBOX_USING", "default"
    )
    return str(alias)


def bind_django_connection(alias: str | None = None) -> None:
    """Write outbox rows through Django's connection ``alias`` (default:
    :func:`outbox_alias`) unless :func:`~flowbus.producer.outbox.bind` says otherwise:
    ``connections[alias]`` is the calling thread's connection, the one its ``atomic()``
    blocks use, so the rows commit and roll back with them."""
    from django.db import connections

    from ..sink import bind_by_default

    chosen = alias or outbox_alias()
    bind_by_default(lambda: connections[chosen])


def flowbus_settings() -> FlowbusSettings:
    """flowbus's settings: ``settings.FLOWBUS_SETTINGS`` over the environment."""
    from django.conf import settings

    overrides: dict[str, Any] = dict(getattr(settings, "FLOWBUS_SETTINGS", None) or {})
    return FlowbusSettings(**overrides)


def database_url(alias: str) -> str:
    """A flowbus database URL for Django's connection ``alias`` (the relay opens its own
    connections: SQLite, or PostgreSQL through psycopg 3; ``OPTIONS`` become URL query
    parameters)."""
    from django.db import connections

    from flowbus.errors import ConfigurationError

    db = connections[alias].settings_dict
    vendor = connections[alias].vendor
    if vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    if vendor != "postgresql":
        raise ConfigurationError(
            f"the flowbus outbox supports SQLite and PostgreSQL, not {vendor} ({alias!r})"
        )
    user = quote(str(db.get("USER") or ""), safe="")
    password = quote(str(db.get("PASSWORD") or ""), safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = str(db.get("HOST") or "")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    options = {k: v for k, v in (db.get("OPTIONS") or {}).items() if isinstance(v, str | int)}
    query = f"?{urlencode(options)}" if options else ""
    return f"postgresql://{credentials}{host}{port}/{quote(str(db['NAME']), safe='')}{query}"
