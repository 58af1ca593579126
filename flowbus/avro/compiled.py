"""An Avro encoder and decoder generated for one event type's own schema.

Why: fastavro walks the parsed schema for every value, and the codec converts between
models and datums on top (:meth:`EventCodec.to_datum`, :meth:`EventCodec.from_datum`).
The Python code generated here once per codec does the same work in straight lines per
record: it writes validated data (models, enum members, UUIDs, datetimes) straight to
bytes, and reads a body straight to the signal's keyword arguments (figures:
``benchmarks/README.md``).

Scope: only bodies written with the codec's own schema layout, and only values of the
exact types validated data has (a model instance, not a dict or a subclass instance; an
aware datetime; an int in the long range; ...). For anything else the generated code
raises, :class:`_Unhandled` or whatever failed, and the caller falls back to the reference
path (``to_datum`` + fastavro, fastavro + ``from_datum``): results are byte for byte and
value for value the reference's, and errors are the reference's own.

Records, inner ones first, are built in one of two ways:

* Models whose validation would only store the values decoded (``ModelType.constructible``:
  no validator, constraint or check Avro does not carry) are built without validating, as
  ``model_construct`` builds them: the same ``__dict__``, fields set, no extra, no private
  values. Their values are already of the exact types validation returns: UUIDs are
  ``uuid.UUID`` (as fastavro builds them), and JSON values nested deep enough for
  pydantic's recursion limit to matter are validated as the model would.
* Every other model is validated as ``from_datum`` does: one ``model_validate`` per record,
  passing ``by_alias=False, by_name=True`` only to models with aliases (it costs time). A
  plain ``UUID`` field gets the UUID's text, which pydantic parses to the same value faster
  than ``uuid.UUID``, unless strict mode or a validator could tell the difference.

The keyword arguments come back as a :class:`~flowbus.signals.DecodedData` naming those
whose values validation would return unchanged (``FieldSpec.exact``), so that
``WorkflowSignal.validate_decoded`` validates only the others.
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import json
import json.encoder
import json.scanner
import re
import struct
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from typing import Any, cast

from pydantic import BaseModel, JsonValue, TypeAdapter

from flowbus.avro.schema import (
    ArrayType,
    DecimalType,
    EnumType,
    EventType,
    FieldSpec,
    JsonType,
    MapType,
    ModelType,
    NullType,
    PrimitiveType,
    TypeNode,
    UnionType,
    has_validators,
    parse_isotime,
)
from flowbus.prebuilt import FILLABLE, fill, uuid_from_text
from flowbus.signals import DecodedData

__all__ = ["Decoder", "Encoder", "compile_decoder", "compile_encoder"]

#: Validated data -> the Avro body written with the codec's own schema.
Encoder = Callable[[Mapping[str, Any]], bytearray]
#: An Avro body written with the codec's own schema -> the signal's keyword arguments.
Decoder = Callable[[bytes], dict[str, Any]]


class _Unhandled(Exception):
    """A value or a body the generated code does not handle; the caller falls back."""


_LONG_RANGE = range(-(1 << 63), 1 << 63)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_DAY = dt.date(1970, 1, 1).toordinal()
_MICROSECOND = dt.timedelta(microseconds=1)
_IDENTIFIER_GAPS = re.compile(r"\W")
_UUID_TEXT_SIZE = b"\x48"  # the text of a UUID is always 36 characters: 36, zigzagged
#: JSON text with fewer opening brackets than this nests less deep than pydantic's recursion
#: limit for JSON values (255 levels), the one check validating it could fail.
_JSON_BRACKETS_UNCHECKED = 128


def _long_bytes(value: int) -> bytearray:
    """``value`` as an Avro long: zigzag, then 7 bits a byte, low bits first."""
    if value not in _LONG_RANGE:
        raise _Unhandled  # fastavro raises OverflowError
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return out


def _long(value: int) -> bytes:
    """:func:`_long_bytes` without the loop for up to 8 bytes (timestamps take 8): the
    7-bit groups are spread into bytes in three steps, and the continuation bits set on
    all bytes but the last, about twice as fast."""
    if value not in _LONG_RANGE:
        raise _Unhandled
    n = (value << 1) ^ (value >> 63)
    if n >> 56:
        return bytes(_long_bytes(value))
    n = (n & 0xFFFFFFF) | (n >> 28) << 32
    n = (n & 0x00003FFF00003FFF) | (n & 0x0FFFC0000FFFC000) << 2
    n = (n & 0x007F007F007F007F) | (n & 0x3F803F803F803F80) << 1
    size = (n.bit_length() + 7) // 8 or 1
    return (n | _CONTINUATION[size]).to_bytes(size, "little")


#: The continuation bits of an encoding ``size`` bytes long (every byte but the last).
_CONTINUATION = (0, *(0x8080808080808080 & ((1 << (8 * size - 8)) - 1) for size in range(1, 9)))

#: The encoding of -64 .. 63, indexed by the value (a negative index counts from the end).
_SMALL_LONGS = tuple(bytes(_long_bytes(n)) for n in (*range(64), *range(-64, 0)))


def _read_long(body: bytes, pos: int) -> tuple[int, int]:
    """The Avro long at ``pos``, and the position after it."""
    n = shift = 0
    while True:
        byte = body[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
    if n >> 64:
        raise _Unhandled  # fastavro's 64-bit reader drops the high bits: leave it to fastavro
    return (n >> 1) ^ -(n & 1), pos


def _read_size(body: bytes, pos: int) -> tuple[int, int]:
    """A length, index or block count at ``pos``, and the position after it."""
    size, pos = _read_long(body, pos)
    if size < 0:
        raise _Unhandled  # a block with its byte size, or a corrupt length: left to fastavro
    return size, pos


def _decimal_bytes(value: decimal.Decimal, precision: int, scale: int) -> bytes:
    """fastavro's decimal encoding: the unscaled value, big-endian two's complement."""
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int) or len(digits) > precision or exponent + scale < 0:
        raise _Unhandled  # NaN, infinity, or a value fastavro rejects
    unscaled: int = int("".join(map(str, digits))) * 10 ** (exponent + scale)
    size = (unscaled.bit_length() + 8) // 8
    return (-unscaled if sign else unscaled).to_bytes(size, "big", signed=True)


class _Source:
    """Python source being generated, the objects it names, and its record functions."""

    def __init__(self, prefix: str) -> None:
        self.lines: list[str] = []
        self.namespace: dict[str, Any] = {
            "_Unhandled": _Unhandled,
            "_EPOCH": _EPOCH,
            "_EPOCH_DAY": _EPOCH_DAY,
            "_MICROSECOND": _MICROSECOND,
        }
        self._prefix = prefix
        self._temps = itertools.count()
        self._refs: dict[int, str] = {}
        self._records: dict[type[BaseModel], str] = {}
        self._pending: list[ModelType] = []

    def line(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def temp(self) -> str:
        """A fresh local variable name."""
        return f"v{next(self._temps)}"

    def ref(self, obj: object, hint: str) -> str:
        """The global name the generated code knows ``obj`` by."""
        name = self._refs.get(id(obj))
        if name is None:
            name = self._refs[id(obj)] = f"_{_IDENTIFIER_GAPS.sub('_', hint)}_{len(self._refs)}"
            self.namespace[name] = obj
        return name

    def record(self, node: ModelType) -> str:
        """The name of the function for records of ``node``, generated by :meth:`build`."""
        name = self._records.get(node.cls)
        if name is None:
            short = node.fullname.rpartition(".")[2]
            name = self._records[node.cls] = f"{self._prefix}_{short}_{len(self._records)}"
            self._pending.append(node)
        return name

    def record_function(self, node: ModelType, name: str) -> None:
        raise NotImplementedError

    def build(self, event: EventType, entry: str) -> Any:
        """Generate the pending record functions, run the source, return ``entry``."""
        while self._pending:
            node = self._pending.pop()
            self.record_function(node, self._records[node.cls])
        code = compile("\n".join(self.lines), f"<avro {self._prefix} {event.event_type}>", "exec")
        # The source is built from the type tree only: names are Avro names (checked by the
        # analysis) written with repr(); every object is passed in the namespace.
        exec(code, self.namespace)  # noqa: S102
        return self.namespace[entry]


def _check(source: _Source, value: str, cls: type, depth: int) -> None:
    source.line(depth, f"if type({value}) is not {source.ref(cls, cls.__name__)}:")
    source.line(depth + 1, "raise _Unhandled")


class _EncoderSource(_Source):
    """Emits, per node kind, the statements appending a value's encoding to ``buf``."""

    def __init__(self, json_encoder: json.JSONEncoder) -> None:
        super().__init__("write")
        self.namespace.update(
            _SMALL_LONGS=_SMALL_LONGS,
            _long=_long,
            _double=struct.Struct("<d").pack,
            _json_text=_json_text_function(json_encoder),
            _decimal_bytes=_decimal_bytes,
        )

    def event(self, event: EventType) -> Encoder:
        self.line(0, "def encode(data):")
        self.line(1, "buf = bytearray()")
        for spec in event.fields:
            self.field("data", spec, 1)
        self.line(1, "return buf")
        return cast(Encoder, self.build(event, "encode"))

    def record_function(self, node: ModelType, name: str) -> None:
        self.line(0, f"def {name}(buf, record):")
        self.line(1, "fields = record.__dict__")
        for spec in node.fields:
            self.field("fields", spec, 1)

    def field(self, owner: str, spec: FieldSpec, depth: int) -> None:
        value = self.temp()
        self.line(depth, f"{value} = {owner}[{spec.name!r}]")
        self.write(spec.type, value, depth)

    def write(self, node: TypeNode, value: str, depth: int) -> None:
        match node:
            case PrimitiveType(kind=kind):
                self.primitive(kind, value, depth)
            case DecimalType(precision=precision, scale=scale):
                _check(self, value, decimal.Decimal, depth)
                data = self.temp()
                self.line(depth, f"{data} = _decimal_bytes({value}, {precision}, {scale})")
                self.sized(data, depth)
            case JsonType():
                self.text(f"_json_text({value})", depth)
            case NullType():
                self.line(depth, f"if {value} is not None:")
                self.line(depth + 1, "raise _Unhandled")
            case EnumType(cls=cls, symbols=symbols):
                _check(self, value, cls, depth)
                indexes = {cls(symbol): bytes(_long_bytes(i)) for i, symbol in enumerate(symbols)}
                self.line(depth, f"buf += {self.ref(indexes, 'ENUM')}[{value}]")
            case ModelType():
                _check(self, value, node.cls, depth)
                self.line(depth, f"{self.record(node)}(buf, {value})")
            case ArrayType(items=items):
                item = self.temp()
                self.blocks(value, list, f"for {item} in {value}:", depth)
                self.write(items, item, depth + 2)
                self.line(depth, "buf += b'\\x00'")
            case MapType(values=values):
                key, item = self.temp(), self.temp()
                self.blocks(value, dict, f"for {key}, {item} in {value}.items():", depth)
                _check(self, key, str, depth + 2)
                self.text(key, depth + 2)
                self.write(values, item, depth + 2)
                self.line(depth, "buf += b'\\x00'")
            case UnionType(members=members):
                self.union(members, value, depth)
            case _:
                raise NotImplementedError(f"no encoder for {node!r}")

    def primitive(self, kind: str, value: str, depth: int) -> None:
        match kind:
            case "string" | "literal":
                _check(self, value, str, depth)
                self.text(value, depth)
            case "uuid":
                _check(self, value, uuid.UUID, depth)
                self.line(depth, f"buf += {_UUID_TEXT_SIZE!r}")
                self.line(depth, f"buf += str({value}).encode()")
            case "long":
                _check(self, value, int, depth)
                self.line(
                    depth,
                    f"buf += _SMALL_LONGS[{value}] if -64 <= {value} < 64 else _long({value})",
                )
            case "double":
                _check(self, value, float, depth)
                self.line(depth, f"buf += _double({value})")
            case "boolean":
                self.line(depth, f"if {value} is True:")
                self.line(depth + 1, "buf += b'\\x01'")
                self.line(depth, f"elif {value} is False:")
                self.line(depth + 1, "buf += b'\\x00'")
                self.line(depth, "else:")
                self.line(depth + 1, "raise _Unhandled")
            case "bytes":
                _check(self, value, bytes, depth)
                self.sized(value, depth)
            case "timestamp":
                # A naive datetime cannot be subtracted from the aware epoch: it falls back.
                _check(self, value, dt.datetime, depth)
                self.line(depth, f"buf += _long(({value} - _EPOCH) // _MICROSECOND)")
            case "isotime":
                _check(self, value, dt.datetime, depth)
                self.line(depth, f"if {value}.utcoffset() is None:")
                self.line(depth + 1, "raise _Unhandled")  # the reference path names the error
                self.text(f"{value}.isoformat()", depth)
            case "date":
                _check(self, value, dt.date, depth)
                self.line(depth, f"buf += _long({value}.toordinal() - _EPOCH_DAY)")
            case _:
                raise NotImplementedError(f"no encoder for the primitive kind {kind!r}")

    def text(self, value: str, depth: int) -> None:
        data = self.temp()
        self.line(depth, f"{data} = {value}.encode()")
        self.sized(data, depth)

    def sized(self, data: str, depth: int) -> None:
        size = self.temp()
        self.line(depth, f"{size} = len({data})")
        self.line(depth, f"buf += _SMALL_LONGS[{size}] if {size} < 64 else _long({size})")
        self.line(depth, f"buf += {data}")

    def blocks(self, value: str, cls: type, loop: str, depth: int) -> None:
        """An array's or map's one block of all items (fastavro's layout), then ``loop``."""
        _check(self, value, cls, depth)
        size = self.temp()
        self.line(depth, f"if {value}:")
        self.line(depth + 1, f"{size} = len({value})")
        self.line(depth + 1, f"buf += _SMALL_LONGS[{size}] if {size} < 64 else _long({size})")
        self.line(depth + 1, loop)

    def union(self, members: tuple[TypeNode, ...], value: str, depth: int) -> None:
        # Either T | None or models (and maybe None): records and None are told apart by
        # type, the one other member takes the rest.
        keyword = "if"
        other: tuple[int, TypeNode] | None = None
        for index, member in enumerate(members):
            if isinstance(member, NullType):
                self.line(depth, f"{keyword} {value} is None:")
            elif isinstance(member, ModelType):
                self.line(depth, f"{keyword} type({value}) is {self.ref(member.cls, 'Model')}:")
            else:
                other = (index, member)
                continue
            keyword = "elif"
            self.line(depth + 1, f"buf += {bytes(_long_bytes(index))!r}")
            if isinstance(member, ModelType):
                self.line(depth + 1, f"{self.record(member)}(buf, {value})")
        self.line(depth, "else:")
        if other is None:
            self.line(depth + 1, "raise _Unhandled")
        else:
            self.line(depth + 1, f"buf += {bytes(_long_bytes(other[0]))!r}")
            self.write(other[1], value, depth + 1)


class _DecoderSource(_Source):
    """Emits, per node kind, the statements reading a value at ``pos`` into a variable."""

    def __init__(self) -> None:
        super().__init__("read")
        self.namespace.update(
            _read_long=_read_long,
            _read_size=_read_size,
            _double=struct.Struct("<d").unpack_from,
            # What json.loads uses (its typeshed stub asks for a scanner, not the decoder).
            _json_scan=json.scanner.make_scanner(cast(Any, json.JSONDecoder())),
            _UUID=uuid_from_text,
            _date=dt.date.fromordinal,
            _int_from_bytes=int.from_bytes,
            _json_value=TypeAdapter(JsonValue).validate_python,
            _fill=fill,
            _isotime=parse_isotime,
        )

    def event(self, event: EventType) -> Decoder:
        decoded = type(
            "DecodedData",
            (DecodedData,),
            {
                "__slots__": (),
                "event_type": event.event_type,
                "exact": frozenset(spec.name for spec in event.fields if spec.exact),
            },
        )
        self.line(0, "def decode(body):")
        self.line(1, "pos = 0")
        values = self.fields(event.fields, None)
        self.line(1, "if pos != len(body):")
        self.line(2, "raise _Unhandled")
        self.line(1, f"return {self.ref(decoded, 'Decoded')}({values})")
        return cast(Decoder, self.build(event, "decode"))

    def record_function(self, node: ModelType, name: str) -> None:
        self.line(0, f"def {name}(body, pos):")
        cls = self.ref(node.cls, "Model")
        if node.constructible and FILLABLE:
            values = self.fields(node.fields, None)
            names = self.ref(frozenset(spec.name for spec in node.fields), "FIELDS")
            self.line(1, f"return _fill({cls}, {values}, set({names})), pos")
            return
        values = self.fields(node.fields, node.cls)
        by_name = ", by_alias=False, by_name=True" if _has_aliases(node.cls) else ""
        self.line(1, f"return {cls}.model_validate({values}{by_name}), pos")

    def fields(self, specs: typing.Sequence[FieldSpec], model: type[BaseModel] | None) -> str:
        """Read ``specs`` at depth 1; the dict display of their values. ``model``: the model
        that validates them (``None``: nothing does)."""
        items = []
        for spec in specs:
            value = self.temp()
            uuid_text = model is not None and _takes_uuid_text(model, spec.name)
            self.read(spec.type, value, 1, uuid_text)
            items.append(f"{spec.name!r}: {value}")
        return "{" + ", ".join(items) + "}"

    def read(self, node: TypeNode, target: str, depth: int, uuid_text: bool = False) -> None:
        match node:
            case PrimitiveType(kind=kind):
                self.primitive(kind, target, depth, uuid_text)
            case DecimalType(precision=precision, scale=scale):
                context = self.ref(decimal.Context(prec=precision), "DECIMAL_CONTEXT")
                self.sized(target, depth)
                self.line(
                    depth,
                    f"{target} = {context}.create_decimal("
                    f"_int_from_bytes({target}, 'big', signed=True)).scaleb(-{scale}, {context})",
                )
            case JsonType():
                # json.loads without its set-up; text it would take with whitespace around
                # the value, or reject, falls back.
                text, end = self.temp(), self.temp()
                self.text(text, depth)
                self.line(depth, f"{target}, {end} = _json_scan({text}, 0)")
                self.line(depth, f"if {end} != len({text}):")
                self.line(depth + 1, "raise _Unhandled")
                # Fewer characters than twice the bound: fewer opening brackets than it.
                brackets = f"{text}.count('[') + {text}.count('{{')"
                limit = _JSON_BRACKETS_UNCHECKED
                self.line(depth, f"if len({text}) >= {2 * limit} and {brackets} >= {limit}:")
                self.line(depth + 1, f"{target} = _json_value({target})")
            case NullType():
                self.line(depth, f"{target} = None")
            case EnumType(cls=cls, symbols=symbols):
                members = self.ref(tuple(cls(symbol) for symbol in symbols), "ENUM")
                self.size(target, depth)
                self.line(depth, f"{target} = {members}[{target}]")
            case ModelType():
                self.line(depth, f"{target}, pos = {self.record(node)}(body, pos)")
            case ArrayType(items=items):
                item = self.temp()
                self.blocks(target, "[]", depth)
                self.read(items, item, depth + 2, uuid_text)
                self.line(depth + 2, f"{target}.append({item})")
                self.size(f"{target}_size", depth + 1)
            case MapType(values=values):
                key, item = self.temp(), self.temp()
                self.blocks(target, "{}", depth)
                self.text(key, depth + 2)
                self.read(values, item, depth + 2, uuid_text)
                self.line(depth + 2, f"{target}[{key}] = {item}")
                self.size(f"{target}_size", depth + 1)
            case UnionType(members=members):
                self.union(members, target, depth, uuid_text)
            case _:
                raise NotImplementedError(f"no decoder for {node!r}")

    def primitive(self, kind: str, target: str, depth: int, uuid_text: bool) -> None:
        match kind:
            case "string" | "literal":
                self.text(target, depth)
            case "uuid":
                self.text(target, depth)
                if not uuid_text:
                    self.line(depth, f"{target} = _UUID({target})")
            case "long":
                self.line(depth, f"{target} = body[pos]")
                self.line(depth, f"if {target} < 0x80:")
                self.line(depth + 1, f"{target} = ({target} >> 1) ^ -({target} & 1)")
                self.line(depth + 1, "pos += 1")
                self.line(depth, "else:")
                self.line(depth + 1, f"{target}, pos = _read_long(body, pos)")
            case "double":
                self.line(depth, f"{target} = _double(body, pos)[0]")
                self.line(depth, "pos += 8")
            case "boolean":
                self.line(depth, f"{target} = body[pos] != 0")  # as fastavro: any byte but 0
                self.line(depth, "pos += 1")
            case "bytes":
                self.sized(target, depth)
            case "timestamp":
                self.line(depth, f"{target}, pos = _read_long(body, pos)")
                self.line(depth, f"{target} = _EPOCH + _MICROSECOND * {target}")
            case "isotime":
                self.text(target, depth)
                self.line(depth, f"{target} = _isotime({target})")
            case "date":
                self.line(depth, f"{target}, pos = _read_long(body, pos)")
                self.line(depth, f"{target} = _date({target} + _EPOCH_DAY)")
            case _:
                raise NotImplementedError(f"no decoder for the primitive kind {kind!r}")

    def size(self, target: str, depth: int) -> None:
        """A non-negative long: one byte inline, longer (or negative) ones by a call."""
        self.line(depth, f"{target} = body[pos]")
        self.line(depth, f"if {target} & 0x81:")
        self.line(depth + 1, f"{target}, pos = _read_size(body, pos)")
        self.line(depth, "else:")
        self.line(depth + 1, f"{target} >>= 1")
        self.line(depth + 1, "pos += 1")

    def sized(self, target: str, depth: int) -> None:
        """Bytes with their length. A body that ends early ends up with ``pos`` past its
        end, which the final ``pos != len(body)`` check (or the next read) rejects."""
        end = self.temp()
        self.size(end, depth)
        self.line(depth, f"{end} += pos")
        self.line(depth, f"{target} = body[pos:{end}]")
        self.line(depth, f"pos = {end}")

    def text(self, target: str, depth: int) -> None:
        self.sized(target, depth)
        self.line(depth, f"{target} = {target}.decode()")

    def blocks(self, target: str, empty: str, depth: int) -> None:
        """Start reading an array or map: the loop over blocks and over a block's items."""
        size = f"{target}_size"
        self.line(depth, f"{target} = {empty}")
        self.size(size, depth)
        self.line(depth, f"while {size}:")
        self.line(depth + 1, f"for _ in range({size}):")

    def union(
        self, members: tuple[TypeNode, ...], target: str, depth: int, uuid_text: bool
    ) -> None:
        # Indexes 0 .. 63 are one byte; longer encodings (non-minimal ones too) fall back.
        tag = self.temp()
        self.line(depth, f"{tag} = body[pos]")
        self.line(depth, "pos += 1")
        keyword = "if"
        for index, member in enumerate(members[:64]):
            self.line(depth, f"{keyword} {tag} == {index << 1}:")
            self.read(member, target, depth + 1, uuid_text)
            keyword = "elif"
        self.line(depth, "else:")
        self.line(depth + 1, "raise _Unhandled")


_UUID_ANNOTATIONS = ({uuid.UUID}, {uuid.UUID, type(None)})


def _takes_uuid_text(model: type[BaseModel], name: str) -> bool:
    """Whether field ``name`` of ``model`` may be given its UUID as text: a plain ``UUID``
    or ``UUID | None`` field, in lax mode, with no validator that would see the text."""
    info = model.model_fields[name]
    annotation = info.annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kinds = set(typing.get_args(annotation))
    else:
        kinds = {annotation}
    return (
        kinds in _UUID_ANNOTATIONS
        and not info.metadata
        and not model.model_config.get("strict")
        and not has_validators(model)
    )


def _has_aliases(model: type[BaseModel]) -> bool:
    return any(
        info.alias is not None or info.validation_alias is not None
        for info in model.model_fields.values()
    )


def _json_text_function(encoder: json.JSONEncoder) -> Callable[[Any], str]:
    """``encoder.encode`` without its per-call set-up: the C encoder it builds for every
    call, built once. Without the circular-reference check, whose state
    would outlive a failed call: a circular value recurses until RecursionError instead,
    and falls back."""
    make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if make_encoder is None or type(encoder) is not json.JSONEncoder or encoder.indent:
        return encoder.encode
    chunks = make_encoder(
        None,
        encoder.default,
        json.encoder.encode_basestring_ascii
        if encoder.ensure_ascii
        else json.encoder.encode_basestring,
        encoder.indent,
        encoder.key_separator,
        encoder.item_separator,
        encoder.sort_keys,
        encoder.skipkeys,
        encoder.allow_nan,
    )
    return lambda value: "".join(chunks(value, 0))


def compile_encoder(event: EventType, json_encoder: json.JSONEncoder) -> Encoder:
    """The encoder of ``event``'s own schema; JSON values are written as ``json_encoder``
    writes them."""
    return _EncoderSource(json_encoder).event(event)


def compile_decoder(event: EventType) -> Decoder:
    """The decoder of bodies written with ``event``'s own schema."""
    return _DecoderSource().event(event)
