"""Derive Avro schemas from a signal's data types.

A signal's data is a mapping of argument name to type. :func:`analyze_data` turns it into
a small type tree (:class:`EventType` and the node classes below); :func:`to_avro` turns
that tree into an Avro schema, and :mod:`flowbus.avro.codec` compiles the same tree into
converters between Python values and Avro datums, so schema and codec cannot drift apart.

Type mapping (anything else raises :class:`~flowbus.errors.UnsupportedDataTypeError`
naming the field):

=============================  ==========================================================
Python                         Avro
=============================  ==========================================================
``str``                        ``string``
``int``                        ``long``
``float``                      ``double``
``bool``                       ``boolean``
``bytes``                      ``bytes``
``datetime`` (aware)           ``long`` / ``timestamp-micros`` (UTC instant)
``date``                       ``int`` / ``date``
``UUID``                       ``string`` / ``uuid``
``Decimal`` (max_digits and    ``bytes`` / ``decimal`` (precision = max_digits,
decimal_places constraints)    scale = decimal_places)
``Enum`` with str values       ``enum`` named after the class, symbols = the values
``Literal["a", "b"]``          ``string`` (pydantic checks the value on both sides;
                               adding a value stays compatible, unlike an Avro enum)
``T | None``                   ``["null", T]``, default ``null``
``list[T]``                    ``array``
``dict[str, T]``               ``map``
``ModelA | ModelB``            union of the records
pydantic ``BaseModel``         ``record`` named after the class
``pydantic.JsonValue``         ``{"type": "string", "logicalType": "json"}``: the value as
                               compact JSON text (readers that do not know the logical
                               type see a plain string); an empty-object default is
                               written ``"{ }"`` (Apicurio rejects a ``"{}"`` default)
=============================  ==========================================================

Names: the event's record full name is the event type (each dotted part made a valid Avro
name: characters outside ``[A-Za-z0-9_]`` become ``_``, a leading digit gets a ``_``
prefix). Models and enums are named by module and qualified class name, e.g.
``flowbus.catalog.caluma.User``, so two ``User`` classes in different modules never
collide. Renaming or moving a class renames its Avro type, which breaks compatibility.
Avro's resolution rules compare unqualified names (``v1`` for every event type), so the
flowbus decoder also requires the writer's record full name to be the reader's.

An enum may declare the symbol readers fall back to for symbols they do not know (Avro's
enum default, needed to add symbols under forward compatibility) as a class attribute:
``__avro_default__ = "UNKNOWN"``.

Naming and the datetime encoding are a strategy, :class:`AvroNaming`, given to
:func:`analyze_data` by the wire profile (:mod:`flowbus.wire`): :data:`FLOWBUS_NAMING` (the
table above) or :data:`OPENEDX_NAMING`, openedx-events' ``schema_from_signal`` layout: the
record ``<event type>.CloudEvent``, models named by their class name in the event type's
namespace, datetimes as ISO 8601 strings (``"isotime"``, read back as aware UTC
datetimes; a string without an offset is read as UTC), and only the types Open edX can
carry (refused otherwise, naming the field and the reason).
"""

from __future__ import annotations

import datetime as dt
import enum
import inspect
import json
import re
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, TypeAlias

import pydantic
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from typing_extensions import TypeAliasType

from flowbus.errors import UnsupportedDataTypeError

__all__ = [
    "FLOWBUS_NAMING",
    "OPENEDX_NAMING",
    "ArrayType",
    "AvroNaming",
    "DecimalType",
    "EnumType",
    "EventType",
    "FieldSpec",
    "JsonType",
    "MapType",
    "ModelType",
    "NullType",
    "PrimitiveType",
    "TypeNode",
    "UnionType",
    "analyze_data",
    "avro_name",
    "derive_record_schema",
    "parse_isotime",
    "record_name_for_event_type",
    "to_avro",
]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_NOT_NAME_CHAR = re.compile(r"[^A-Za-z0-9_]")

#: Marks a field without an Avro default.
NO_DEFAULT: Any = PydanticUndefined


@dataclass(frozen=True, slots=True)
class PrimitiveType:
    """string, long, double, boolean, bytes, or a logical type on one of them.

    ``kind`` is one of: string, long, double, boolean, bytes, timestamp, date, uuid,
    literal (a string restricted by ``Literal``), isotime (an aware datetime as its ISO
    8601 text, the :data:`OPENEDX_NAMING` encoding).
    """

    kind: str


@dataclass(frozen=True, slots=True)
class DecimalType:
    """``Decimal`` as Avro bytes with the decimal logical type."""

    precision: int
    scale: int


@dataclass(frozen=True, slots=True)
class JsonType:
    """Free-form JSON (``pydantic.JsonValue``) carried as JSON text."""


@dataclass(frozen=True, slots=True)
class NullType:
    """The ``None`` branch of a union."""


@dataclass(frozen=True, slots=True, eq=False)
class EnumType:
    """An ``Enum`` whose values are strings; the symbols are the values."""

    cls: type[enum.Enum]
    fullname: str
    symbols: tuple[str, ...]
    doc: str | None
    default: str | None


@dataclass(eq=False, slots=True)
class ModelType:
    """A pydantic model, an Avro record. ``fields`` is filled after creation (recursion).

    ``constructible``: validating a record of this model, every field holding the exact
    value its decoder built (see :attr:`FieldSpec.exact`), would give an instance with those
    very values: the model has no validator, ``__init__``, post-init hook, private
    attribute, or configuration that changes what validation returns (see
    :func:`validation_returns_input`). The decoder may then build it without validating.
    """

    cls: type[BaseModel]
    fullname: str
    doc: str | None
    fields: list[FieldSpec] = field(default_factory=list)
    constructible: bool = False


@dataclass(frozen=True, slots=True)
class ArrayType:
    """``list[T]``."""

    items: TypeNode


@dataclass(frozen=True, slots=True)
class MapType:
    """``dict[str, T]``."""

    values: TypeNode


@dataclass(frozen=True, slots=True)
class UnionType:
    """``T | None`` or a union of models (optionally with ``None``), in Avro order."""

    members: tuple[TypeNode, ...]


TypeNode: TypeAlias = (
    PrimitiveType
    | DecimalType
    | JsonType
    | NullType
    | EnumType
    | ModelType
    | ArrayType
    | MapType
    | UnionType
)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One record field: name, type, doc and the default as an Avro JSON value.

    ``exact``: the value a decoder builds for the field from its Avro type (an ``str``, an
    aware UTC ``datetime``, an enum member, a ``UUID``, a model instance of exactly the
    declared class, JSON values as ``json.loads`` gives them, lists and dicts of those...)
    is what pydantic's validation against the declared type returns for it: an equal value
    of the same type, the same instance for a model. False when the declared type has a
    constraint, validator, literal, discriminator or any other check or conversion Avro does
    not carry (see :func:`validation_returns_input`).
    """

    name: str
    type: TypeNode
    doc: str | None
    default: Any = NO_DEFAULT
    exact: bool = False

    @property
    def has_default(self) -> bool:
        """Whether the field carries an Avro default."""
        return self.default is not NO_DEFAULT


@dataclass(frozen=True, slots=True)
class EventType:
    """The analysed data of one event type: the top-level Avro record."""

    event_type: str
    fullname: str
    doc: str | None
    fields: tuple[FieldSpec, ...]


@dataclass(frozen=True, slots=True)
class AvroNaming:
    """How one wire profile names Avro types, writes datetimes, and what it can carry.

    ``record_name(event_type)``: the top-level record's full name.
    ``type_name(event_type, cls)``: the full name of a model's record or an enum.
    ``datetimes``: the primitive kind of an aware datetime (``"timestamp"`` or ``"isotime"``).
    ``check(node, path, top_level)``: raises :class:`~flowbus.errors.UnsupportedDataTypeError`
    for a type the profile's peers cannot carry (``None``: everything flowbus carries).
    """

    name: str
    record_name: Callable[[str], str]
    type_name: Callable[[str, type], str]
    datetimes: str = "timestamp"
    check: Callable[[TypeNode, str, bool], None] | None = None


def avro_name(part: str) -> str:
    """``part`` as a valid Avro name component (invalid characters become ``_``)."""
    name = _NOT_NAME_CHAR.sub("_", part) or "_"
    return f"_{name}" if name[0].isdigit() else name


def record_name_for_event_type(event_type: str) -> str:
    """The Avro full name of an event type's record: the event type, made a valid name."""
    return ".".join(avro_name(part) for part in event_type.split("."))


def _class_fullname(cls: type) -> str:
    parts = [*cls.__module__.split("."), *cls.__qualname__.split(".")]
    return ".".join(avro_name(part.strip("<>") if part == "<locals>" else part) for part in parts)


def _flowbus_type_name(event_type: str, cls: type) -> str:
    return _class_fullname(cls)


def _openedx_record_name(event_type: str) -> str:
    return f"{record_name_for_event_type(event_type)}.CloudEvent"


def _openedx_type_name(event_type: str, cls: type) -> str:
    # openedx-events names a record by the class name; it inherits the event's namespace.
    return f"{record_name_for_event_type(event_type)}.{avro_name(cls.__name__)}"


_OPENEDX_SIMPLE = frozenset({"string", "long", "double", "boolean", "bytes"})


def _openedx_check(node: TypeNode, path: str, top_level: bool) -> None:
    """Refuse what openedx-events' ``schema_from_signal`` cannot express."""
    why: str | None = None
    if isinstance(node, PrimitiveType) and node.kind not in (*_OPENEDX_SIMPLE, "isotime"):
        why = {
            "date": "date has no Open edX type (use a datetime or a str)",
            "uuid": "UUID travels as a plain string in Open edX (declare it str)",
            "literal": "Literal has no Open edX type (declare it str)",
        }.get(node.kind, f"{node.kind} has no Open edX type")
    elif isinstance(node, DecimalType):
        why = "Decimal has no Open edX type"
    elif isinstance(node, JsonType):
        why = "JsonValue has no Open edX type (send the JSON text as a str)"
    elif isinstance(node, EnumType):
        why = "enums have no Open edX type (declare a str)"
    elif isinstance(node, ArrayType | MapType):
        inner = node.items if isinstance(node, ArrayType) else node.values
        if not (isinstance(inner, PrimitiveType) and inner.kind in _OPENEDX_SIMPLE):
            why = "Open edX lists and dicts hold only str, int, float, bool or bytes"
    elif isinstance(node, UnionType):
        others = [member for member in node.members if not isinstance(member, NullType)]
        if len(others) > 1:
            why = "unions of models have no Open edX type"
        elif top_level:
            why = "a top-level argument cannot be None in Open edX (it refuses falsy arguments)"
        else:
            _openedx_check(others[0], path, False)
    if why is not None:
        raise UnsupportedDataTypeError(path, f"the openedx wire profile cannot carry it: {why}")


def _openedx_optional_field(node: TypeNode, default: Any, path: str) -> None:
    """Open edX writes ``["null", T]`` only for an attrs field whose default is None."""
    if isinstance(node, UnionType) and default is not None:
        raise UnsupportedDataTypeError(
            path,
            "the openedx wire profile cannot carry it: an optional field needs the default None",
        )


#: flowbus's own names and encodings (see the module docstring).
FLOWBUS_NAMING = AvroNaming("flowbus", record_name_for_event_type, _flowbus_type_name)
#: openedx-events' ``schema_from_signal`` layout (see the module docstring).
OPENEDX_NAMING = AvroNaming(
    "openedx", _openedx_record_name, _openedx_type_name, "isotime", _openedx_check
)


def _own_doc(cls: type) -> str | None:
    doc = cls.__dict__.get("__doc__")
    return inspect.cleandoc(doc) if isinstance(doc, str) and doc.strip() else None


def _is_json_value(tp: Any) -> bool:
    return tp is pydantic.JsonValue


class _Analyzer:
    """One derivation run; remembers the named types it has seen (for reuse and recursion)."""

    def __init__(self, event_type: str = "", naming: AvroNaming | None = None) -> None:
        self.event_type = event_type
        self.naming = naming or FLOWBUS_NAMING
        self.named: dict[str, object] = {}
        self.models: dict[type[BaseModel], ModelType] = {}
        self.enums: dict[type[enum.Enum], EnumType] = {}

    def _claim_name(self, fullname: str, owner: object, path: str) -> None:
        other = self.named.setdefault(fullname, owner)
        if other is not owner:
            raise UnsupportedDataTypeError(
                path, f"two different types map to the Avro name '{fullname}'"
            )

    def node(self, tp: Any, path: str, constraints: tuple[Any, ...] = ()) -> TypeNode:
        """The type node of annotation ``tp`` found at field ``path``."""
        if typing.get_origin(tp) is typing.Annotated:
            inner, *metadata = typing.get_args(tp)
            extra: list[Any] = []
            for item in metadata:
                extra.extend(item.metadata if isinstance(item, FieldInfo) else [item])
            return self.node(inner, path, (*constraints, *extra))
        if _is_json_value(tp):
            return JsonType()
        if isinstance(tp, TypeAliasType):
            return self.node(tp.__value__, path, constraints)
        origin = typing.get_origin(tp)
        if origin is typing.Union or origin is types.UnionType:
            return self._union(typing.get_args(tp), path)
        if origin is Literal:
            values = typing.get_args(tp)
            if not values or not all(isinstance(value, str) for value in values):
                raise UnsupportedDataTypeError(path, "only Literal of strings is supported")
            return PrimitiveType("literal")
        if origin is list:
            (item,) = typing.get_args(tp) or (Any,)
            return ArrayType(self.node(item, f"{path}[]"))
        if origin is dict:
            key, value = typing.get_args(tp) or (Any, Any)
            if key is not str:
                raise UnsupportedDataTypeError(path, f"map keys must be str, not {key!r}")
            return MapType(self.node(value, f"{path}{{}}"))
        if origin is not None:
            raise UnsupportedDataTypeError(path, f"{tp!r} is not supported")
        if tp is type(None) or tp is None:
            return NullType()
        if isinstance(tp, type):
            return self._class(tp, path, constraints)
        raise UnsupportedDataTypeError(path, f"{tp!r} is not supported")

    def _class(self, tp: type, path: str, constraints: tuple[Any, ...]) -> TypeNode:
        if issubclass(tp, enum.Enum):
            return self._enum(tp, path)
        if issubclass(tp, BaseModel):
            return self._model(tp, path)
        if tp is pydantic.AwareDatetime or tp is dt.datetime:
            return PrimitiveType(self.naming.datetimes)
        simple = {
            bool: "boolean",
            str: "string",
            int: "long",
            float: "double",
            bytes: "bytes",
            dt.date: "date",
            uuid.UUID: "uuid",
        }
        if tp in simple:
            return PrimitiveType(simple[tp])
        if tp is Decimal:
            return self._decimal(path, constraints)
        hint = (
            "; use pydantic.JsonValue for free-form JSON" if tp in (object, dict, list, Any) else ""
        )
        raise UnsupportedDataTypeError(path, f"{tp.__qualname__} is not supported{hint}")

    def _decimal(self, path: str, constraints: tuple[Any, ...]) -> DecimalType:
        precision = scale = None
        for item in constraints:
            precision = getattr(item, "max_digits", None) or precision
            found_scale = getattr(item, "decimal_places", None)
            scale = found_scale if found_scale is not None else scale
        if precision is None or scale is None:
            raise UnsupportedDataTypeError(
                path,
                "Decimal needs max_digits and decimal_places "
                "(e.g. Annotated[Decimal, Field(max_digits=12, decimal_places=2)]): "
                "they become the Avro decimal's precision and scale",
            )
        if scale > precision:
            raise UnsupportedDataTypeError(path, "decimal_places must not exceed max_digits")
        return DecimalType(precision=precision, scale=scale)

    def _union(self, members: tuple[Any, ...], path: str) -> UnionType:
        nodes: list[TypeNode] = []
        for member in members:
            node = self.node(member, path)
            flat = node.members if isinstance(node, UnionType) else (node,)
            nodes.extend(n for n in flat if n not in nodes)
        nulls = [n for n in nodes if isinstance(n, NullType)]
        others = [n for n in nodes if not isinstance(n, NullType)]
        if not others:
            raise UnsupportedDataTypeError(path, "a union needs a type besides None")
        if len(others) > 1 and not all(isinstance(n, ModelType) for n in others):
            raise UnsupportedDataTypeError(
                path, "unions are supported for T | None and for pydantic models only"
            )
        return UnionType((*nulls, *others))

    def _enum(self, cls: type[enum.Enum], path: str) -> EnumType:
        if cls in self.enums:
            return self.enums[cls]
        symbols = tuple(member.value for member in cls)
        for symbol in symbols:
            if not isinstance(symbol, str) or not _NAME.match(symbol):
                raise UnsupportedDataTypeError(
                    path,
                    f"enum {cls.__qualname__} value {symbol!r} is not a valid Avro symbol "
                    "(a string matching [A-Za-z_][A-Za-z0-9_]*)",
                )
        default = getattr(cls, "__avro_default__", None)
        if default is not None and default not in symbols:
            raise UnsupportedDataTypeError(
                path, f"enum {cls.__qualname__} __avro_default__ {default!r} is not a value"
            )
        name = self.naming.type_name(self.event_type, cls)
        node = EnumType(cls, name, symbols, _own_doc(cls), default)
        self._claim_name(node.fullname, cls, path)
        self.enums[cls] = node
        return node

    def _model(self, cls: type[BaseModel], path: str) -> ModelType:
        if cls in self.models:
            return self.models[cls]
        if not cls.__pydantic_complete__:
            try:
                cls.model_rebuild()
            except pydantic.PydanticUserError as exc:
                raise UnsupportedDataTypeError(
                    path, f"model {cls.__qualname__} is not fully defined: {exc}"
                ) from exc
        node = ModelType(cls, self.naming.type_name(self.event_type, cls), _own_doc(cls))
        self._claim_name(node.fullname, cls, path)
        self.models[cls] = node
        node.fields.extend(
            self.field(name, info.annotation, info, f"{path}.{name}")
            for name, info in cls.model_fields.items()
        )
        node.constructible = _plain_model(cls) and all(spec.exact for spec in node.fields)
        return node

    def field(
        self,
        name: str,
        annotation: Any,
        info: FieldInfo | None,
        path: str,
        *,
        top_level: bool = False,
    ) -> FieldSpec:
        """The spec of one record field; ``info`` carries description and default."""
        if not _NAME.match(name):
            raise UnsupportedDataTypeError(path, f"'{name}' is not a valid Avro field name")
        constraints = tuple(info.metadata) if info is not None else ()
        node = self.node(annotation, path, constraints)
        if self.naming.check is not None:
            self.naming.check(node, path, top_level)
        default: Any = NO_DEFAULT
        if info is not None and info.default is not PydanticUndefined:
            default = info.default
        elif info is not None and info.default_factory in (list, dict):
            default = info.default_factory()
        elif isinstance(node, UnionType) and isinstance(node.members[0], NullType):
            default = None
        if self.naming is OPENEDX_NAMING and not top_level:
            _openedx_optional_field(node, default, path)
        if default is not NO_DEFAULT:
            node = _put_default_branch_first(node, default, path)
            default = _avro_default(node, default, path)
        doc = info.description if info is not None else None
        return FieldSpec(name, node, doc, default, _exact_field(annotation, info))


def has_validators(model: type[BaseModel]) -> bool:
    """Whether ``model`` declares validators (field, model, or pydantic v1 style)."""
    decorators = model.__pydantic_decorators__
    return bool(
        decorators.validators
        or decorators.field_validators
        or decorators.root_validators
        or decorators.model_validators
    )


#: Model configuration that does not change what validating values of the exact declared
#: types returns: the key, and the values that do not (``None``: any value).
_NEUTRAL_CONFIG: dict[str, tuple[Any, ...] | None] = {
    "title": None,
    "frozen": None,
    "json_schema_extra": None,
    "use_attribute_docstrings": None,
    "populate_by_name": None,
    "validate_by_name": None,
    "validate_by_alias": None,
    "extra": (None, "ignore", "forbid"),  # "allow" gives __pydantic_extra__ == {}
    "revalidate_instances": ("never",),
    "strict": (None, False),
    "use_enum_values": (None, False),
    "allow_inf_nan": (None, True),
}

#: The classes whose decoded values (exactly of that class) validation returns as they are.
_EXACT_CLASSES: frozenset[type] = frozenset(
    {str, int, float, bool, bytes, dt.datetime, dt.date, uuid.UUID}
)


def _plain_model(cls: type[BaseModel]) -> bool:
    """Whether validating ``cls`` from field values is just storing them (see
    :attr:`ModelType.constructible`), provided each field's validation returns its value."""
    return (
        not cls.__pydantic_root_model__
        and not cls.__pydantic_custom_init__
        and cls.__pydantic_post_init__ is None
        and not cls.__private_attributes__
        and not has_validators(cls)
        and all(_neutral_config(key, value) for key, value in cls.model_config.items())
    )


def _neutral_config(key: str, value: Any) -> bool:
    if key not in _NEUTRAL_CONFIG:
        return False
    allowed = _NEUTRAL_CONFIG[key]
    return allowed is None or value in allowed


def _exact_field(annotation: Any, info: FieldInfo | None) -> bool:
    """:attr:`FieldSpec.exact` of a field declared ``annotation`` (``info``: its merged
    ``Field()``, a model field's or the one in a data type's ``Annotated``)."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation, *extras = typing.get_args(annotation)
        if not all(isinstance(item, FieldInfo) for item in extras):
            return False  # a validator or a constraint of annotated-types
    if info is not None and (info.metadata or info.discriminator is not None):
        return False  # constraints (max_length, ge, pattern, strict, union_mode, ...)
    return validation_returns_input(annotation)


def validation_returns_input(tp: Any) -> bool:
    """Whether pydantic's validation against ``tp`` returns what a decoder builds for it
    unchanged (an equal value of the same type; a model instance itself).

    True for the classes in ``_EXACT_CLASSES``, string enums, ``pydantic.JsonValue``, models
    that keep instances as they are (``revalidate_instances`` ``"never"``), and ``list``,
    ``dict[str, ...]``, ``T | None`` and unions of models made of those. False for anything
    else: ``Annotated`` (constraints, validators), ``Literal`` (its values are checked),
    ``Decimal`` (its digits are), type aliases, other classes, and unions where one model
    subclasses another (an instance would then match two branches).
    """
    if tp is pydantic.JsonValue:
        return True
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        members = [arg for arg in args if arg is not type(None)]
        models = [arg for arg in members if isinstance(arg, type) and issubclass(arg, BaseModel)]
        overlapping = any(a is not b and issubclass(a, b) for a in models for b in models)
        return not overlapping and all(validation_returns_input(arg) for arg in members)
    if origin is list:
        return len(args) == 1 and validation_returns_input(args[0])
    if origin is dict:
        return len(args) == 2 and args[0] is str and validation_returns_input(args[1])
    if origin is not None or not isinstance(tp, type):
        return False
    if tp in _EXACT_CLASSES:
        return True
    if issubclass(tp, enum.Enum):
        return getattr(tp, "__get_pydantic_core_schema__", None) is None
    if issubclass(tp, BaseModel):
        return (
            getattr(tp.__get_pydantic_core_schema__, "__func__", None) is _MODEL_CORE_SCHEMA
            and tp.model_config.get("revalidate_instances", "never") == "never"
        )
    return False


_MODEL_CORE_SCHEMA = getattr(BaseModel.__get_pydantic_core_schema__, "__func__", None)


def _branch_matches(node: TypeNode, value: Any) -> bool:
    if isinstance(node, NullType):
        return value is None
    if isinstance(node, ModelType):
        return isinstance(value, node.cls)
    return value is not None


def _put_default_branch_first(node: TypeNode, value: Any, path: str) -> TypeNode:
    """Avro requires a union field's default to match the union's first branch."""
    if not isinstance(node, UnionType):
        return node
    for index, member in enumerate(node.members):
        if _branch_matches(member, value):
            rest = node.members[:index] + node.members[index + 1 :]
            return UnionType((member, *rest))
    raise UnsupportedDataTypeError(path, f"default {value!r} matches no branch of the union")


def parse_isotime(text: str) -> dt.datetime:
    """The ``isotime`` kind read back: an aware UTC datetime (text without an offset: UTC)."""
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _decimal_bytes(value: Decimal, scale: int) -> bytes:
    unscaled = int(value.scaleb(scale))
    length = max(1, (unscaled.bit_length() + 8) // 8)
    return unscaled.to_bytes(length, "big", signed=True)


def _avro_default(node: TypeNode, value: Any, path: str) -> Any:
    """``value`` as an Avro JSON default for a field of type ``node``."""
    try:
        return _default_value(node, value, path)
    except UnsupportedDataTypeError:
        raise
    except (TypeError, ValueError, AttributeError) as exc:
        raise UnsupportedDataTypeError(path, f"default {value!r} does not fit: {exc}") from exc


def _default_value(node: TypeNode, value: Any, path: str) -> Any:
    bad = UnsupportedDataTypeError(path, f"default {value!r} does not fit the type")
    if isinstance(node, UnionType):
        return _default_value(node.members[0], value, path)
    if isinstance(node, NullType):
        if value is not None:
            raise bad
        return None
    if isinstance(node, JsonType):
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        # Apicurio Registry (3.3) rejects a schema whose string default is exactly "{}"
        # ("Failed to discover artifact type"); "{ }" is the same JSON value.
        return "{ }" if text == "{}" else text
    if isinstance(node, DecimalType):
        return _decimal_bytes(Decimal(value), node.scale).decode("latin-1")
    if isinstance(node, EnumType):
        symbol = value.value if isinstance(value, enum.Enum) else value
        if symbol not in node.symbols:
            raise bad
        return symbol
    if isinstance(node, ArrayType):
        return [_default_value(node.items, item, path) for item in value]
    if isinstance(node, MapType):
        return {str(key): _default_value(node.values, item, path) for key, item in value.items()}
    if isinstance(node, ModelType):
        if not isinstance(value, node.cls):
            raise bad
        return {
            spec.name: _default_value(spec.type, getattr(value, spec.name), path)
            for spec in node.fields
        }
    return _primitive_default(node.kind, value, bad)


def _primitive_default(kind: str, value: Any, bad: UnsupportedDataTypeError) -> Any:
    if kind in ("string", "literal") and isinstance(value, str):
        return value
    if kind == "long" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "double" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "bytes" and isinstance(value, bytes):
        return value.decode("latin-1")
    if kind == "uuid" and isinstance(value, uuid.UUID | str):
        return str(uuid.UUID(str(value)))
    if kind == "timestamp" and isinstance(value, dt.datetime) and value.tzinfo is not None:
        return (value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
    if kind == "isotime" and isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.isoformat()
    if kind == "date" and isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return (value - dt.date(1970, 1, 1)).days
    raise bad


def analyze_data(
    event_type: str,
    data: Mapping[str, Any],
    *,
    doc: str | None = None,
    naming: AvroNaming | None = None,
) -> EventType:
    """Analyse a signal's data (argument name -> type) into the event's type tree.

    A type may be ``Annotated[T, Field(description=..., default=...)]`` to give the
    field a doc and a default. ``naming``: the wire profile's strategy (default
    :data:`FLOWBUS_NAMING`). Raises :class:`~flowbus.errors.UnsupportedDataTypeError`
    naming the first field whose type cannot be carried.
    """
    analyzer = _Analyzer(event_type, naming)
    fullname = analyzer.naming.record_name(event_type)
    analyzer._claim_name(fullname, event_type, event_type)
    fields = []
    for name, annotation in data.items():
        info = None
        if typing.get_origin(annotation) is typing.Annotated:
            infos = [m for m in typing.get_args(annotation)[1:] if isinstance(m, FieldInfo)]
            info = FieldInfo.merge_field_infos(*infos) if infos else None
        fields.append(analyzer.field(name, annotation, info, name, top_level=True))
    return EventType(event_type, fullname, doc, tuple(fields))


def to_avro(event: EventType) -> dict[str, Any]:
    """The Avro schema (a JSON-compatible dict) of an analysed event type.

    Every named type carries its full name in ``name`` (no ``namespace`` key); a named
    type used again later in the schema is referenced by that full name.
    """
    seen: set[str] = set()
    schema: dict[str, Any] = {"type": "record", "name": event.fullname}
    if event.doc:
        schema["doc"] = event.doc
    schema["fields"] = [_field_schema(spec, seen) for spec in event.fields]
    return schema


def _field_schema(spec: FieldSpec, seen: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": spec.name, "type": _type_schema(spec.type, seen)}
    if spec.doc:
        out["doc"] = spec.doc
    if spec.has_default:
        out["default"] = spec.default
    return out


def _type_schema(node: TypeNode, seen: set[str]) -> Any:
    if isinstance(node, PrimitiveType):
        return _PRIMITIVE_SCHEMAS[node.kind]
    if isinstance(node, DecimalType):
        return {
            "type": "bytes",
            "logicalType": "decimal",
            "precision": node.precision,
            "scale": node.scale,
        }
    if isinstance(node, JsonType):
        return {"type": "string", "logicalType": "json"}
    if isinstance(node, NullType):
        return "null"
    if isinstance(node, ArrayType):
        return {"type": "array", "items": _type_schema(node.items, seen)}
    if isinstance(node, MapType):
        return {"type": "map", "values": _type_schema(node.values, seen)}
    if isinstance(node, UnionType):
        return [_type_schema(member, seen) for member in node.members]
    if node.fullname in seen:
        return node.fullname
    seen.add(node.fullname)
    if isinstance(node, EnumType):
        enum_schema: dict[str, Any] = {"type": "enum", "name": node.fullname}
        if node.doc:
            enum_schema["doc"] = node.doc
        enum_schema["symbols"] = list(node.symbols)
        if node.default is not None:
            enum_schema["default"] = node.default
        return enum_schema
    record: dict[str, Any] = {"type": "record", "name": node.fullname}
    if node.doc:
        record["doc"] = node.doc
    record["fields"] = [_field_schema(spec, seen) for spec in node.fields]
    return record


_PRIMITIVE_SCHEMAS: dict[str, Any] = {
    "string": "string",
    "literal": "string",
    "long": "long",
    "double": "double",
    "boolean": "boolean",
    "bytes": "bytes",
    "timestamp": {"type": "long", "logicalType": "timestamp-micros"},
    "date": {"type": "int", "logicalType": "date"},
    "uuid": {"type": "string", "logicalType": "uuid"},
    "isotime": "string",
}


def derive_record_schema(
    event_type: str,
    data: Mapping[str, Any],
    *,
    doc: str | None = None,
    naming: AvroNaming | None = None,
) -> dict[str, Any]:
    """The Avro record schema of an event type's data (argument name -> type).

    Raises :class:`~flowbus.errors.UnsupportedDataTypeError` (with ``field`` and
    ``reason``) when a type cannot be carried.
    """
    return to_avro(analyze_data(event_type, data, doc=doc, naming=naming))
