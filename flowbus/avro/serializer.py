"""What the producer and consumer call per message: signal data <-> framed Avro bytes.

Configured once, called per message, like confluent-kafka's ``AvroSerializer``. With a
registry URL, values use the Confluent wire format and TopicRecordName subjects;
without one (the default), Avro single-object encoding and the schema directory (``schemas/``). The
deserializer reads both, telling them apart by the first bytes.

The transactional outbox splits ``serialize`` in two: :meth:`EventSerializer.encode_body`
(no registry call, inside the caller's transaction) and :meth:`EventSerializer.frame`
(when the record is relayed), so a registry outage never fails a business transaction.

Wire profiles (:mod:`flowbus.wire`) are given to the methods that write: each profile of a
signal has its own codec (record name, type names, datetime encoding), and
:meth:`EventSerializer.frame_key` writes the ``openedx`` profile's Avro-string keys. The
deserializer needs no profile: it picks the signal's codec whose record name the writer
schema has, so one worker reads both.

Hot path: a dict lookup for the prepared writer (codec, header, parsed schema), the datum
conversion, and fastavro; no schema is parsed per message.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from flowbus.avro.codec import EventCodec, ParsedSchema, parse_schema
from flowbus.avro.compiled import _long_bytes
from flowbus.avro.framing import Framing, read_frame, single_object_header
from flowbus.avro.registry import SchemaRegistry, subject_name
from flowbus.avro.schema_dir import SchemaDirectory
from flowbus.avro.signal_schemas import signal_analysis
from flowbus.errors import ConfigurationError, UnknownSchemaError
from flowbus.wire import FLOWBUS, PROFILES, WireProfile

if TYPE_CHECKING:
    from flowbus.settings import FlowbusSettings
    from flowbus.signals import WorkflowSignal

__all__ = ["EventDeserializer", "EventSerializer", "SerializedEvent", "codec_for"]

log = logging.getLogger(__name__)

#: Bound of the deserializer's writer-schema cache (writer schemas come from the wire).
_WRITER_CODECS_MAX = 4096

#: Keyed by the signal for the flowbus profile, by (signal, profile name) for the others.
_codecs: dict[Any, EventCodec] = {}
_codecs_lock = threading.Lock()
#: The Avro schema of an ``openedx`` profile key.
_STRING_SCHEMA = parse_schema('"string"')


def codec_for(signal: WorkflowSignal, profile: WireProfile | None = None) -> EventCodec:
    """The codec of ``signal``'s data in ``profile`` (default: ``flowbus``); built on first
    use, then shared. Raises :class:`~flowbus.errors.UnsupportedDataTypeError` when the
    profile cannot carry the data."""
    key: Any = signal if profile is None or profile is FLOWBUS else (signal, profile.name)
    codec = _codecs.get(key)
    if codec is None:
        with _codecs_lock:
            codec = _codecs.get(key)
            if codec is None:
                codec = _codecs[key] = EventCodec(signal_analysis(signal, profile))
    return codec


def _writer_key(signal: WorkflowSignal, topic: str, profile: WireProfile | None) -> Any:
    return (signal, topic) if profile is None or profile is FLOWBUS else (signal, topic, profile)


class SerializedEvent(NamedTuple):
    """A message value and the ``dataschema`` naming the schema it was written with.

    ``dataschema`` is ``<subject>/<version>`` with a registry, and the schema file
    (``schemas/<event type>/<version>.avsc``) without one.
    """

    value: bytes
    dataschema: str


class _Framer(NamedTuple):
    """What goes in front of a body written with ``schema``, and the schema it names."""

    header: bytes
    schema: ParsedSchema
    dataschema: str


@dataclass(frozen=True, slots=True, eq=False)
class _Writer:
    codec: EventCodec
    header: bytes
    schema: ParsedSchema
    dataschema: str
    #: The writer schema is the signal's own (not a latest version the registry chose).
    own_schema: bool


class EventSerializer:
    """Encodes signal data; the framing is Confluent's when a registry URL is set."""

    def __init__(
        self,
        *,
        registry_url: str | None = None,
        registry_config: Mapping[str, Any] | None = None,
        auto_register: bool = False,
        use_latest_version: bool = False,
        schema_dir: SchemaDirectory | None = None,
    ) -> None:
        self.registry = SchemaRegistry(registry_url, registry_config) if registry_url else None
        self.auto_register = auto_register
        self.use_latest_version = use_latest_version
        self._schema_dir = schema_dir
        self._writers: dict[Any, _Writer] = {}
        self._framers: dict[tuple[str, bytes], _Framer] = {}
        self._key_headers: dict[str, bytes] = {}

    @classmethod
    def from_settings(cls, settings: FlowbusSettings) -> EventSerializer:
        """A serializer configured by ``SCHEMA_REGISTRY_URL`` and the ``FLOWBUS_SCHEMA*``
        settings."""
        return cls(
            registry_url=settings.schema_registry_url,
            registry_config=settings.schema_registry_config,
            auto_register=settings.schema_auto_register,
            use_latest_version=settings.schema_use_latest_version,
            schema_dir=SchemaDirectory(settings.schemas_dir) if settings.schemas_dir else None,
        )

    @property
    def framing(self) -> Framing:
        """The framing this serializer writes."""
        return Framing.CONFLUENT if self.registry is not None else Framing.SINGLE_OBJECT

    @property
    def schema_dir(self) -> SchemaDirectory:
        """The schema directory naming single-object schemas (default: the shipped one)."""
        if self._schema_dir is None:
            self._schema_dir = SchemaDirectory.default()
        return self._schema_dir

    def serialize(
        self,
        signal: WorkflowSignal,
        data: Mapping[str, Any],
        topic: str,
        profile: WireProfile | None = None,
    ) -> SerializedEvent:
        """Encode ``signal``'s validated ``data`` for ``topic``: :meth:`encode_body` and
        :meth:`frame` in one step (with the writer schema the settings choose) in
        ``profile`` (default: ``flowbus``).

        Raises :class:`~flowbus.errors.EncodeError` when the data does not fit the schema
        and :class:`~flowbus.errors.SchemaRegistryError` when the writer schema cannot be
        resolved (only possible before its id is known).
        """
        writer = self._writers.get(_writer_key(signal, topic, profile))
        if writer is None:
            writer = self._prepare(signal, topic, profile)
        value = _write(writer.header, writer.codec, data, writer.schema)
        return SerializedEvent(value, writer.dataschema)

    def encode_body(
        self, signal: WorkflowSignal, data: Mapping[str, Any], profile: WireProfile | None = None
    ) -> bytes:
        """The schemaless Avro body of ``data``, written with the signal's own schema in
        ``profile`` (default: ``flowbus``).

        Needs no registry: the transactional outbox stores this at write time, and
        :meth:`frame` puts the header in front of it when the record is relayed. Raises
        :class:`~flowbus.errors.EncodeError` when the data does not fit the schema.
        """
        return codec_for(signal, profile).encode(data)

    def frame_body(
        self,
        signal: WorkflowSignal,
        body: bytes,
        data: Mapping[str, Any],
        topic: str,
        profile: WireProfile | None = None,
    ) -> SerializedEvent:
        """:meth:`serialize` of an event whose :meth:`encode_body` is ``body``.

        The body is framed as it is when the writer schema is the signal's own (always
        without ``use_latest_version``); ``data`` is written again only when the registry's
        latest version is another schema. Raises as :meth:`serialize` does.
        """
        writer = self._writers.get(_writer_key(signal, topic, profile))
        if writer is None:
            writer = self._prepare(signal, topic, profile)
        if writer.own_schema:
            return SerializedEvent(writer.header + body, writer.dataschema)
        value = _write(writer.header, writer.codec, data, writer.schema)
        return SerializedEvent(value, writer.dataschema)

    def own_framing(
        self, signal: WorkflowSignal, topic: str
    ) -> tuple[bytes, str, Callable[[Mapping[str, Any]], bytes]] | None:
        """The header, ``dataschema`` and body encoder (:meth:`encode_body`'s) of the
        ``flowbus`` profile's events of ``signal`` on ``topic``, once their writer schema is
        resolved and is the signal's own; ``None`` until then, or when the registry's latest
        version is another schema (:meth:`frame_body` writes the data again)."""
        writer = self._writers.get(_writer_key(signal, topic, None))
        if writer is None or not writer.own_schema:
            return None
        return writer.header, writer.dataschema, writer.codec.encode

    def frame(
        self, event_type: str, schema: ParsedSchema, topic: str, body: bytes
    ) -> SerializedEvent:
        """``body`` (written with ``schema``) behind this serializer's framing header.

        With a registry the header names ``schema``'s own id under the topic's subject
        (registered first when ``auto_register``; ``use_latest_version`` does not apply,
        since the body is already written); without one, its fingerprint. Raises
        :class:`~flowbus.errors.SchemaRegistryError` while the id cannot be resolved.
        """
        key = (topic, schema.fingerprint)
        framer = self._framers.get(key)
        if framer is None:
            framer = self._framers[key] = self._framer(event_type, schema, topic, False)
        return SerializedEvent(framer.header + body, framer.dataschema)

    def frame_key(self, topic: str, key: str, profile: WireProfile) -> bytes:
        """``key`` as an Avro ``"string"`` in Confluent framing, the schema registered (or,
        without ``auto_register``, looked up) under ``profile.key_subject(topic)``, as
        edx-event-bus-kafka writes keys.

        Raises :class:`~flowbus.errors.ConfigurationError` without a registry and
        :class:`~flowbus.errors.SchemaRegistryError` while the id cannot be resolved.
        """
        header = self._key_headers.get(topic)
        if header is None:
            if self.registry is None:
                raise ConfigurationError(
                    f"the {profile.name} wire profile writes Confluent-framed keys: "
                    "set SCHEMA_REGISTRY_URL"
                )
            registered = self.registry.writer(
                profile.key_subject(topic),
                _STRING_SCHEMA,
                auto_register=self.auto_register,
                use_latest_version=False,
            )
            header = self._key_headers[topic] = registered.header
        text = key.encode()
        return header + bytes(_long_bytes(len(text))) + text

    def _prepare(
        self, signal: WorkflowSignal, topic: str, profile: WireProfile | None = None
    ) -> _Writer:
        codec = codec_for(signal, profile)
        framer = self._framer(signal.event_type, codec.schema, topic, self.use_latest_version)
        own = framer.schema.fingerprint == codec.schema.fingerprint
        writer = _Writer(codec, framer.header, framer.schema, framer.dataschema, own)
        self._writers[_writer_key(signal, topic, profile)] = writer
        return writer

    def _framer(
        self, event_type: str, schema: ParsedSchema, topic: str, use_latest_version: bool
    ) -> _Framer:
        if self.registry is not None:
            registered = self.registry.writer(
                subject_name(topic, schema.parsed["name"]),
                schema,
                auto_register=self.auto_register,
                use_latest_version=use_latest_version,
            )
            return _Framer(registered.header, registered.schema, registered.dataschema)
        return _Framer(
            single_object_header(schema.fingerprint),
            schema,
            self._schema_dir_reference(event_type, schema),
        )

    def _schema_dir_reference(self, event_type: str, schema: ParsedSchema) -> str:
        entry = self.schema_dir.by_fingerprint(schema.fingerprint)
        if entry is not None and entry.event_type == event_type:
            return entry.reference
        log.warning(
            "the schema of %s is not in the schema directory %s (run: flowbus schemas generate); "
            "consumers without this code cannot decode its events",
            event_type,
            self.schema_dir.directory,
        )
        return f"schemas/{event_type}/unreleased-{schema.fingerprint.hex()}"


def _write(
    header: bytes, codec: EventCodec, data: Mapping[str, Any], schema: ParsedSchema
) -> bytes:
    out = io.BytesIO()
    out.write(header)
    codec.write(out, data, schema)
    return out.getvalue()


class EventDeserializer:
    """Decodes message values of either framing into a signal's keyword arguments."""

    def __init__(
        self,
        *,
        registry_url: str | None = None,
        registry_config: Mapping[str, Any] | None = None,
        schema_dir: SchemaDirectory | None = None,
    ) -> None:
        self.registry = SchemaRegistry(registry_url, registry_config) if registry_url else None
        self._schema_dir = schema_dir
        #: (signal, writer schema) -> the codec of the signal's profile with its record name.
        self._writer_codecs: dict[tuple[WorkflowSignal, ParsedSchema], EventCodec] = {}

    @classmethod
    def from_settings(cls, settings: FlowbusSettings) -> EventDeserializer:
        """A deserializer configured by ``SCHEMA_REGISTRY_URL`` and ``FLOWBUS_SCHEMAS_DIR``."""
        return cls(
            registry_url=settings.schema_registry_url,
            registry_config=settings.schema_registry_config,
            schema_dir=SchemaDirectory(settings.schemas_dir) if settings.schemas_dir else None,
        )

    @property
    def schema_dir(self) -> SchemaDirectory:
        """The schema directory single-object fingerprints are looked up in."""
        if self._schema_dir is None:
            self._schema_dir = SchemaDirectory.default()
        return self._schema_dir

    def deserialize(self, signal: WorkflowSignal, value: bytes, topic: str) -> dict[str, Any]:
        """Decode ``value`` into keyword arguments of ``signal``'s data types.

        The writer schema is resolved to the signal's schema in the wire profile whose
        record name it has (``flowbus`` or ``openedx``), so either profile reads. Raises a
        :class:`~flowbus.errors.DecodeError` subclass (never a partial result), or
        :class:`~flowbus.errors.SchemaRegistryError` when the registry is needed but
        unreachable (worth retrying, unlike a decode error).
        """
        frame = read_frame(value)
        codec = codec_for(signal)
        if frame.framing is Framing.SINGLE_OBJECT:
            writer = self._by_fingerprint(signal, codec, frame.fingerprint or b"", topic)
        else:
            if self.registry is None:
                raise UnknownSchemaError(
                    f"topic {topic}: Confluent-framed value with schema id {frame.schema_id}, "
                    "but no schema registry is configured",
                    schema_id=frame.schema_id,
                )
            writer = self.registry.schema_by_id(frame.schema_id or 0)
        if writer is not codec.schema:
            codec = self._writer_codecs.get((signal, writer)) or self._codec_of(signal, writer)
        return codec.decode(frame.body, writer)

    def _codec_of(self, signal: WorkflowSignal, writer: ParsedSchema) -> EventCodec:
        """The codec of ``signal`` in the profile whose record name ``writer`` has (the
        flowbus one when none has: its decoder then names the mismatch)."""
        parsed = writer.parsed
        name = parsed.get("name") if isinstance(parsed, dict) else None
        codec = codec_for(signal)
        for profile in PROFILES.values():
            if profile is not FLOWBUS and name == profile.naming.record_name(signal.event_type):
                codec = codec_for(signal, profile)
        if len(self._writer_codecs) < _WRITER_CODECS_MAX:
            self._writer_codecs[(signal, writer)] = codec
        return codec

    def _by_fingerprint(
        self, signal: WorkflowSignal, codec: EventCodec, fingerprint: bytes, topic: str
    ) -> ParsedSchema:
        if fingerprint == codec.schema.fingerprint:
            return codec.schema
        wire = getattr(signal, "wire", FLOWBUS.name)
        if wire != FLOWBUS.name:
            own = codec_for(signal, PROFILES[wire]).schema
            if fingerprint == own.fingerprint:
                return own
        entry = self.schema_dir.by_fingerprint(fingerprint)
        if entry is None:
            raise UnknownSchemaError(
                f"topic {topic}: no schema with fingerprint {fingerprint.hex()} in the "
                f"schema directory {self.schema_dir.directory} or in the running code",
                fingerprint=fingerprint,
            )
        return entry.parsed
