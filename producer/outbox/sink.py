"""The outbox sink: ``send`` writes the prepared event into the caller's transaction.

Same call as :meth:`EventProducer.send`, so the forwarding layer can route to it. The
event is encoded here (schemaless Avro body with the signal's own schema, CloudEvents
headers, the topic with its prefix, the key) and INSERTed on the connection bound by
:func:`bind`; the caller commits or rolls back, and the row goes with it. No registry and
no broker is contacted: neither can fail the caller's transaction. Encoding errors (the
caller's bug) and database errors (the caller's transaction is broken anyway) raise.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from flowbus.errors import ConfigurationError, OutboxNotBoundError
from flowbus.metadata import EventMetadata
from flowbus.settings import FlowbusSettings, get_settings

from ..prepared import PreparedEvent, prepare_event
from .store import OutboxRow, dialect_of_connection, insert_event

if TYPE_CHECKING:
    from flowbus.avro.serializer import EventSerializer
    from flowbus.signals import WorkflowSignal

__all__ = ["OutboxSink", "bind", "bind_by_default", "bound", "outbox_row"]

_bound: contextvars.ContextVar[Any] = contextvars.ContextVar("flowbus_outbox_bound")
#: What events go to when nothing is bound here (see :func:`bind_by_default`).
_default: Callable[[], Any] | None = None


@contextlib.contextmanager
def bind(connection_or_session: Any) -> Iterator[None]:
    """Events sent inside go into this connection's current transaction.

    Takes a ``sqlite3`` or psycopg 3 connection, a SQLAlchemy ``Session`` or
    ``Connection`` on either (the insert joins the session's transaction, beginning it if
    needed), or a Django connection (``django.db.connections[alias]``). It does not commit
    or roll back: the caller's transaction decides. Binding is per thread and per asyncio
    task (a context variable), and nests.
    """
    token = _bound.set(connection_or_session)
    try:
        yield
    finally:
        _bound.reset(token)


def bind_by_default(provider: Callable[[], Any] | None) -> None:
    """Outside :func:`bind`, events go to ``provider()`` (called per event, in the sending
    thread); ``None`` removes it. The Django app registers its connection here."""
    global _default
    _default = provider


def bound() -> Any | None:
    """What :func:`bind` bound here, else the default binding's object, else None."""
    target = _bound.get(None)
    if target is None and _default is not None:
        target = _default()
    return target


def dbapi_connection(bound_object: Any) -> Any:
    """The DB-API connection behind a bound connection, SQLAlchemy Session or Connection,
    or Django connection."""
    # By the classes' packages, not the object's own: backends subclass Django's wrapper
    # (Caluma's comes from psqlextra).
    packages = {cls.__module__.split(".")[0] for cls in type(bound_object).__mro__}
    if "django" in packages:
        bound_object.ensure_connection()
        return bound_object.connection
    if "sqlalchemy" not in packages:
        return bound_object
    connection = bound_object.connection() if callable(bound_object.connection) else bound_object
    return connection.connection.dbapi_connection


class OutboxSink:
    """Writes events into the outbox table; see the module docstring for the contract."""

    def __init__(
        self,
        *,
        settings: FlowbusSettings | None = None,
        serializer: EventSerializer | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.topic_prefix = self.settings.topic_prefix
        if serializer is None:
            from flowbus.avro.serializer import EventSerializer

            serializer = EventSerializer()  # encode_body needs neither registry nor catalog
        self._serializer = serializer

    @classmethod
    def from_settings(cls, settings: FlowbusSettings) -> OutboxSink:
        """The ``outbox`` sink of the forwarding configuration (``FLOWBUS_PRODUCER_SINK``,
        a route's ``"sink"``): it writes into whatever :func:`bind` (or the Django app)
        binds when the signal is sent."""
        return cls(settings=settings)

    def topic_name(self, topic: str) -> str:
        return f"{self.topic_prefix}{topic}"

    def send(
        self,
        signal: WorkflowSignal,
        metadata: EventMetadata,
        data: Mapping[str, Any],
        *,
        topic: str,
        key: str | None = None,
        sender: str | None = None,
        wire: str | None = None,
    ) -> None:
        """Write one event into the bound transaction; it is published after the commit.

        Raises :class:`OutboxNotBoundError` outside :func:`bind` (and without the Django
        app), :class:`~flowbus.errors.EncodeError` for data that does not fit the schema,
        :class:`~flowbus.errors.ConfigurationError` for a wire profile other than
        ``flowbus`` (the relay writes flowbus's keys and headers).
        """
        if (wire or signal.wire) != "flowbus":
            raise ConfigurationError(
                f"{signal.event_type}: the outbox sink carries the flowbus wire profile only, "
                f"not {wire or signal.wire!r}"
            )
        target = bound()
        if target is None:
            raise OutboxNotBoundError(str(metadata.id), metadata.event_type)
        conn = dbapi_connection(target)
        event = prepare_event(
            self._serializer, self.topic_prefix, signal, metadata, data,
            topic=topic, key=key, sender=sender,
        )  # fmt: skip
        insert_event(conn, dialect_of_connection(conn), outbox_row(event))


def outbox_row(event: PreparedEvent) -> OutboxRow:
    """The row of a prepared event: its body unframed, its headers without
    ``ce_dataschema`` (the relay adds both when it frames the body)."""
    from flowbus.avro.serializer import codec_for

    return OutboxRow(
        id=str(event.metadata.id),
        topic=event.topic,
        key=event.key,
        event_type=event.signal.event_type,
        payload=event.body,
        headers=json.dumps([(name, _text(value)) for name, value in event.cloudevent_headers()]),
        schema_fingerprint=codec_for(event.signal).schema.fingerprint.hex(),
    )


def _text(value: str | bytes | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
