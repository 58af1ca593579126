"""Encode a signal's data to Avro bytes and back, with fastavro.

:class:`EventCodec` is built once per event type from the analysed data types
(:func:`flowbus.avro.schema.analyze_data`). It holds the parsed reader/writer schema, its
fingerprint, and converters compiled from the type tree:

* ``to_datum``: validated data (model instances, enums, ...) -> the datum fastavro writes:
  models become dicts (their ``__dict__`` when no field needs converting), enum members their
  values, JSON values compact JSON text, members of a union of models fastavro's
  ``(record name, datum)`` tuple notation, so the branch written is the model's own.
* ``from_datum``: the datum fastavro read -> keyword arguments of the signal's data types.

fastavro handles the logical types (timestamp-micros, date, uuid, decimal) itself.
Schemas are parsed once: :func:`parse_schema` caches by the schema's JSON text, so writer
schemas met again on the hot path cost a dict lookup.

That is the reference path. For bodies of its own schema layout the codec first tries the
encoder and decoder generated from the same type tree (:mod:`flowbus.avro.compiled`, about
twice as fast), which refuse any value or body they do not handle exactly: the reference
path then gives the result, or the error.
"""

from __future__ import annotations

import collections
import enum
import functools
import io
import json
import logging
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import fastavro
from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form
from pydantic import BaseModel, ValidationError

from flowbus.avro.compiled import compile_decoder, compile_encoder
from flowbus.avro.schema import (
    ArrayType,
    EventType,
    JsonType,
    MapType,
    ModelType,
    NullType,
    PrimitiveType,
    TypeNode,
    UnionType,
    parse_isotime,
    to_avro,
)
from flowbus.avro.schema import EnumType as EnumNode
from flowbus.errors import EncodeError, SchemaMismatchError, TruncatedDataError

log = logging.getLogger(__name__)

__all__ = [
    "EventCodec",
    "ParsedSchema",
    "canonical_json",
    "fingerprint",
    "parse_schema",
]

Converter = Callable[[Any], Any]


@dataclass(frozen=True, slots=True, eq=False)
class ParsedSchema:
    """An Avro schema parsed by fastavro, with its Parsing Canonical Form and fingerprint."""

    schema: Any
    parsed: Any
    canonical_form: str
    fingerprint: bytes  # CRC-64-AVRO of the canonical form, 8 bytes little-endian
    #: What decoding depends on: the canonical form plus logical types (which the Parsing
    #: Canonical Form drops); docs, defaults, aliases and namespace spelling do not count.
    layout: str


def canonical_json(schema: Any) -> str:
    """The schema as compact JSON with sorted keys: the cache key of :func:`parse_schema`."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@functools.lru_cache(maxsize=1024)
def _parse_text(text: str) -> ParsedSchema:
    schema = json.loads(text)
    parsed = fastavro.parse_schema(schema)
    canonical = to_parsing_canonical_form(parsed)
    fp = bytes.fromhex(_fastavro_fingerprint(canonical, "CRC-64-AVRO"))
    return ParsedSchema(schema, parsed, canonical, fp, canonical_json(_layout(parsed)))


_NOT_LAYOUT = frozenset({"doc", "aliases", "default", "order", "namespace"})


def _layout(node: Any) -> Any:
    if isinstance(node, list):
        return [_layout(item) for item in node]
    if isinstance(node, dict):
        return {
            key: _layout(value)
            for key, value in node.items()
            if key not in _NOT_LAYOUT and not key.startswith("__")
        }
    return node


def parse_schema(schema: Any) -> ParsedSchema:
    """``schema`` (JSON-compatible value or JSON text) parsed by fastavro; cached."""
    text = schema if isinstance(schema, str) else canonical_json(schema)
    try:
        return _parse_text(text)
    except (ValueError, TypeError, KeyError, fastavro.schema.SchemaParseException) as exc:
        from flowbus.errors import InvalidSchemaError

        raise InvalidSchemaError(f"not a valid Avro schema: {exc}") from exc


def fingerprint(schema: Any) -> bytes:
    """The CRC-64-AVRO fingerprint (8 bytes, little-endian) of ``schema``'s canonical form."""
    return parse_schema(schema).fingerprint


class _ConversionError(ValueError):
    """A value cannot be converted; the message names the field and never holds the value."""


# -- encoding ------------------------------------------------------------------------------


def _aware(value: Any) -> Any:
    if value.tzinfo is None or value.utcoffset() is None:
        raise _ConversionError(
            "naive datetime: flowbus sends datetimes as UTC instants, pass a timezone-aware one"
        )
    return value


def _iso_text(value: Any) -> Any:
    return _aware(value).isoformat()


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


# One encoder for every call: json.dumps with non-default options builds a new one each time.
_JSON_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _json_text(value: Any) -> str:
    return _JSON_ENCODER.encode(value)


class _Compiler:
    """Turns a type tree into one converter per node, once; the recursion both ways share.

    Subclasses say what happens at the leaves, for a record, and for a union of records.
    """

    def __init__(self) -> None:
        self.models: dict[type[BaseModel], Converter] = {}

    def compile(self, node: TypeNode) -> Converter | None:
        """The node's converter, or ``None`` when values pass through unchanged."""
        if isinstance(node, ArrayType):
            item = self.compile(node.items)
            if item is None:
                return None
            return lambda values: [item(value) for value in values]
        if isinstance(node, MapType):
            value_converter = self.compile(node.values)
            if value_converter is None:
                return None
            return lambda values: {key: value_converter(v) for key, v in values.items()}
        if isinstance(node, UnionType):
            others = [m for m in node.members if not isinstance(m, NullType)]
            if len(others) == 1:
                inner = self.compile(others[0])
                if inner is None:
                    return None
                return lambda value: None if value is None else inner(value)
            return self._models_union(others)
        if isinstance(node, ModelType):
            return self._model(node)
        return self._leaf(node)

    def _leaf(self, node: TypeNode) -> Converter | None:
        raise NotImplementedError

    def _models_union(self, members: Sequence[TypeNode]) -> Converter:
        raise NotImplementedError

    def _model(self, node: ModelType) -> Converter:
        """The record's converter, compiled once per model class. A recursive model meets
        itself while its fields compile: it gets a stand-in calling the converter built."""
        if node.cls in self.models:
            return self.models[node.cls]
        cell: list[Converter] = []

        def convert(value: Any) -> Any:
            return cell[0](value)

        self.models[node.cls] = convert
        fields = [(spec.name, self.compile(spec.type)) for spec in node.fields]
        converting = [(name, conv) for name, conv in fields if conv is not None]
        record = self._record(node.cls, converting)
        cell.append(record)
        return record

    def _record(self, cls: type[BaseModel], converting: list[tuple[str, Converter]]) -> Converter:
        """The converter of a record of ``cls`` whose fields ``converting`` need converting."""
        raise NotImplementedError


class _EncoderCompiler(_Compiler):
    """Converters from data-type values to fastavro datums."""

    def _leaf(self, node: TypeNode) -> Converter | None:
        if isinstance(node, PrimitiveType):
            return {"timestamp": _aware, "isotime": _iso_text}.get(node.kind)
        if isinstance(node, JsonType):
            return _json_text
        if isinstance(node, EnumNode):
            return _enum_value
        return None  # DecimalType, NullType: fastavro takes the value itself

    def _models_union(self, members: Sequence[TypeNode]) -> Converter:
        branches: dict[type, tuple[str, Converter]] = {}
        for member in members:
            assert isinstance(member, ModelType)
            branches[member.cls] = (member.fullname, self._model(member))

        def convert(value: Any) -> Any:
            if value is None:
                return None
            branch = branches.get(type(value))
            if branch is None:
                branch = next((b for cls, b in branches.items() if isinstance(value, cls)), None)
            if branch is None:
                names = ", ".join(cls.__qualname__ for cls in branches)
                raise TypeError(f"{type(value).__qualname__} is none of {names}")
            name, to_datum = branch
            return (name, to_datum(value))

        return convert

    def _record(self, cls: type[BaseModel], converting: list[tuple[str, Converter]]) -> Converter:
        if not converting:

            def to_datum(value: Any) -> Any:
                if not isinstance(value, cls):
                    value = cls.model_validate(value)
                return value.__dict__

        else:

            def to_datum(value: Any) -> Any:
                if not isinstance(value, cls):
                    value = cls.model_validate(value)
                datum = dict(value.__dict__)
                for name, conv in converting:
                    datum[name] = conv(datum[name])
                return datum

        return to_datum


# -- decoding ------------------------------------------------------------------------------


class _DecoderCompiler(_Compiler):
    """Converters from fastavro datums back to data-type values."""

    def _leaf(self, node: TypeNode) -> Converter | None:
        if isinstance(node, PrimitiveType) and node.kind == "isotime":
            return parse_isotime
        if isinstance(node, JsonType):
            return json.loads
        if isinstance(node, EnumNode):
            return node.cls
        return None

    def _models_union(self, members: Sequence[TypeNode]) -> Converter:
        # Unions of several records come back as (record name, datum) (see
        # EventCodec.decode), except when the writer had a single record there: fastavro
        # then gives the datum of the reader branch it resolved to, which has exactly that
        # branch's fields.
        branches: dict[str, Converter] = {}
        by_fields: list[tuple[frozenset[str], Converter]] = []
        for member in members:
            assert isinstance(member, ModelType)
            branches[member.fullname] = self._model(member)
            by_fields.append(
                (frozenset(spec.name for spec in member.fields), branches[member.fullname])
            )

        def convert(value: Any) -> Any:
            if value is None:
                return None
            if isinstance(value, tuple):
                name, datum = value
                return branches[name](datum)
            keys = value.keys()
            for fields, to_model in by_fields:
                if fields == keys:
                    return to_model(value)
            raise TypeError("a record matching none of the union's models")

        return convert

    def _record(self, cls: type[BaseModel], converting: list[tuple[str, Converter]]) -> Converter:
        def from_datum(datum: dict[str, Any]) -> Any:
            for name, conv in converting:
                datum[name] = conv(datum[name])
            return cls.model_validate(datum, by_alias=False, by_name=True)

        return from_datum


# -- the codec -----------------------------------------------------------------------------


#: How a local-timestamp-millis/-micros logical type shows in a schema's layout.
_LOCAL_TIMESTAMP = '"logicalType":"local-timestamp-'


class EventCodec:
    """Encoder and decoder of one event type's data, the reader schema being its own."""

    def __init__(self, event: EventType) -> None:
        self.event_type = event.event_type
        self.schema: ParsedSchema = parse_schema(to_avro(event))
        encoders = _EncoderCompiler()
        decoders = _DecoderCompiler()
        self._effective_writers: dict[ParsedSchema, ParsedSchema] = {}
        self._encoders = tuple(
            (spec.name, conv)
            for spec in event.fields
            if (conv := encoders.compile(spec.type)) is not None
        )
        self._decoders = tuple(
            (spec.name, conv)
            for spec in event.fields
            if (conv := decoders.compile(spec.type)) is not None
        )
        self._encode_own = compile_encoder(event, _JSON_ENCODER)
        self._decode_own = compile_decoder(event)
        #: How often the generated encoder and decoder handed a value or body over to fastavro.
        self.fallbacks: collections.Counter[str] = collections.Counter()

    def to_datum(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Validated data -> the datum fastavro writes with :attr:`schema`."""
        datum = dict(data)
        for name, conv in self._encoders:
            if name in datum:
                try:
                    datum[name] = conv(datum[name])
                except (ValueError, TypeError, AttributeError) as exc:
                    raise _ConversionError(f"field {name}: {_reason(exc)}") from exc
        return datum

    def from_datum(self, datum: dict[str, Any]) -> dict[str, Any]:
        """A datum read with :attr:`schema` as reader schema -> the signal's keyword args."""
        for name, conv in self._decoders:
            datum[name] = conv(datum[name])
        return datum

    def write(self, out: io.BytesIO, data: Mapping[str, Any], schema: ParsedSchema) -> None:
        """Append ``data`` encoded with ``schema`` (normally :attr:`schema`) to ``out``."""
        if schema is self.schema or schema.layout == self.schema.layout:
            encoded = self._encoded_by_own_code(data)
            if encoded is not None:
                out.write(encoded)
                return
        self._write_reference(out, data, schema)

    def _write_reference(
        self, out: io.BytesIO, data: Mapping[str, Any], schema: ParsedSchema
    ) -> None:
        """``data`` through ``to_datum`` and fastavro: the result, or the error, of record."""
        try:
            datum = self.to_datum(data)
            fastavro.schemaless_writer(out, schema.parsed, datum)
        except (
            ValueError,
            TypeError,
            KeyError,
            AttributeError,
            OverflowError,  # an int beyond Avro's long
            ValidationError,
        ) as exc:
            raise EncodeError(self.event_type, _reason(exc)) from exc

    def _encoded_by_own_code(self, data: Mapping[str, Any]) -> bytearray | None:
        """``data`` encoded by the generated encoder; ``None`` when it does not handle it."""
        try:
            return self._encode_own(data)
        except Exception as exc:  # whatever it is, the reference path gives the result or error
            self._fell_back("encoder", exc)
            return None

    def _decoded_by_own_code(self, body: bytes | memoryview) -> dict[str, Any] | None:
        """``body`` decoded by the generated decoder; ``None`` when it does not handle it."""
        try:
            return self._decode_own(body if type(body) is bytes else bytes(body))
        except Exception as exc:  # whatever it is, the reference path gives the result or error
            self._fell_back("decoder", exc)
            return None

    def _fell_back(self, which: str, exc: Exception) -> None:
        # Counted and logged (the exception's type only: its text may quote the payload), so
        # that a generated path refusing everything shows up as more than a slowdown.
        self.fallbacks[which] += 1
        log.debug("%s: the generated %s refused (%s)", self.event_type, which, type(exc).__name__)

    def encode(self, data: Mapping[str, Any]) -> bytes:
        """``data`` as a bare Avro body (no framing) written with :attr:`schema`."""
        encoded = self._encoded_by_own_code(data)
        if encoded is not None:
            return bytes(encoded)
        out = io.BytesIO()
        self._write_reference(out, data, self.schema)
        return out.getvalue()

    def _effective_writer(self, writer: ParsedSchema) -> ParsedSchema:
        """``writer``, or this codec's schema when it decodes identically (no resolution)."""
        parsed = writer.parsed
        name = parsed.get("name") if isinstance(parsed, dict) else parsed
        if name != self.schema.parsed["name"]:
            # Avro's resolution compares unqualified names: "v1" for every event type.
            raise SchemaMismatchError(
                f"'{self.event_type}': the data was written with schema {name!r}"
            )
        if _LOCAL_TIMESTAMP in writer.layout:
            # fastavro would decode them to naive datetimes, which flowbus's data never holds
            # (and the consumer does not look for: see WorkflowSignal.validate_decoded).
            raise SchemaMismatchError(
                f"'{self.event_type}': the writer schema has local timestamps (no time zone); "
                "flowbus carries UTC instants (timestamp-millis/micros)"
            )
        effective = self.schema if writer.layout == self.schema.layout else writer
        self._effective_writers[writer] = effective
        return effective

    def decode(
        self, body: bytes | memoryview, writer: ParsedSchema | None = None
    ) -> dict[str, Any]:
        """A bare Avro body written with ``writer`` (default: :attr:`schema`) -> kwargs.

        Resolves the writer schema to this codec's schema. Raises
        :class:`~flowbus.errors.TruncatedDataError` when the body ends early and
        :class:`~flowbus.errors.SchemaMismatchError` when it does not match the writer
        schema, cannot be resolved, leaves bytes over, or does not fit the data types.
        """
        reader = None
        if writer is None:
            writer = self.schema
        elif writer is not self.schema:
            writer = self._effective_writers.get(writer) or self._effective_writer(writer)
            reader = None if writer is self.schema else self.schema.parsed
        if writer is self.schema:
            decoded = self._decoded_by_own_code(body)
            if decoded is not None:
                return decoded
        stream = io.BytesIO(body)
        try:
            datum = fastavro.schemaless_reader(
                stream,
                writer.parsed,
                reader,
                return_record_name=True,
                return_record_name_override=True,
            )
        except EOFError as exc:
            raise TruncatedDataError(
                f"'{self.event_type}': the Avro body ends early ({len(body)} bytes)"
            ) from exc
        except Exception as exc:  # fastavro raises many types for garbage bytes
            raise SchemaMismatchError(
                f"'{self.event_type}': the body does not match the writer schema "
                f"or cannot be resolved to the reader's: {_reason(exc)}"
            ) from exc
        left = len(body) - stream.tell()
        if left:
            raise SchemaMismatchError(
                f"'{self.event_type}': {left} bytes left over after the Avro body: "
                "it does not match its writer schema"
            )
        try:
            return self.from_datum(typing.cast(dict[str, Any], datum))
        except (ValueError, TypeError, KeyError, ValidationError) as exc:
            raise SchemaMismatchError(
                f"'{self.event_type}': decoded values do not fit the data types: {_reason(exc)}"
            ) from exc


# fastavro quotes the offending value ("'x' (type <class 'str'>) do not match ..."); events
# may carry personal data, so the value is replaced by its type.
_QUOTED_VALUE = re.compile(r"^.*? \(type <class '([\w.]+)'>\)", re.DOTALL)


def _reason(exc: BaseException) -> str:
    """What went wrong, without the offending value."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{exc.title}.{where}: {first['msg']}"
    text = str(exc).splitlines()[0] if str(exc) else ""
    text = _QUOTED_VALUE.sub(r"a \1 value", text)
    if isinstance(exc, _ConversionError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
