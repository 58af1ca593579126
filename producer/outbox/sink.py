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
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from flowbus import cloudevents
from flowbus.errors import OutboxNotBoundError
from flowbus.metadata import EventMetadata
from flowbus.settings import FlowbusSettings, get_settings

from .store import OutboxRow, dialect_of_connection, insert_event

if TYPE_CHECKING:
    from flowbus.avro.serializer import EventSerializer
    from flowbus.signals import WorkflowSignal

__all__ = ["OutboxSink", "bind", "bound"]

_bound: contextvars.ContextVar[Any] = contextvars.ContextVar("flowbus_outbox_bound")


@contextlib.contextmanager
def bind(connection_or_session: Any) -> Iterator[None]:
    """Events sent inside go into this connection's current transaction.

    Takes a ``sqlite3`` or psycopg 3 connection, or a SQLAlchemy ``Session`` or
    ``Connection`` on either (the insert joins the session's transaction, beginning it if
    needed). It does not commit or roll back: the caller's transaction decides. Binding
    is per thread and per asyncio task (a context variable), and nests.
    """
    token = _bound.set(connection_or_session)
    try:
        yield
    finally:
        _bound.reset(token)


def bound() -> Any | None:
    """What :func:`bind` bound here, or None."""
    return _bound.get(None)


def dbapi_connection(bound_object: Any) -> Any:
    """The DB-API connection behind a bound connection, SQLAlchemy Session or Connection."""
    if type(bound_object).__module__.split(".")[0] != "sqlalchemy":
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
    ) -> None:
        """Write one event into the bound transaction; it is published after the commit.

        Raises :class:`OutboxNotBoundError` outside :func:`bind`.
        """
        target = bound()
        if target is None:
            raise OutboxNotBoundError(str(metadata.id), metadata.event_type)
        conn = dbapi_connection(target)
        from flowbus.avro.serializer import codec_for

        headers = cloudevents.to_headers(
            metadata,
            partitionkey=key,
            sender=sender,
            traceparent=cloudevents.current_traceparent(),
        )
        row = OutboxRow(
            id=str(metadata.id),
            topic=self.topic_name(topic),
            key=key,
            event_type=signal.event_type,
            payload=self._serializer.encode_body(signal, data),
            headers=json.dumps([(name, _text(value)) for name, value in headers]),
            schema_fingerprint=codec_for(signal).schema.fingerprint.hex(),
        )
        insert_event(conn, dialect_of_connection(conn), row)


def _text(value: str | bytes | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
