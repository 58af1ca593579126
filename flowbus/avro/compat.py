"""Avro schema compatibility: can data written with one schema be read with another?

:func:`check_compatibility` applies the resolution rules of the Avro specification
("Schema Resolution") to a reader and a writer schema and returns every incompatibility
found, each naming where (a path of field names from the top-level record), which rule
and why. The rules:

* same primitive type, or a promotion: ``int`` -> ``long`` -> ``float`` -> ``double``
  (each to any later one) and ``string`` <-> ``bytes`` (rule ``type-mismatch``);
* named types (record, enum, fixed) match when their unqualified names are equal or the
  writer's full name is one of the reader's aliases (rule ``name-mismatch``);
* records: a reader field is matched with the writer field of the same name or of one of
  the reader field's aliases; a reader field the writer lacks needs a default
  (``missing-field-default``); writer fields the reader lacks are skipped;
* enums: every writer symbol must be a reader symbol unless the reader enum has a default
  (``enum-symbol``);
* fixed: sizes must be equal (``fixed-size``);
* arrays and maps: items and values resolve recursively;
* unions: every branch of a writer union must be readable; a non-union writer must match
  some branch of a reader union (``union-branch``);
* logical types are otherwise resolved by their underlying types, but when both sides
  declare a logical type they must agree, and decimals must keep their scale
  (``logical-type``): the bytes would be read as a different value otherwise.

Recursive records are handled (a pair of types already being compared is assumed to
match). :func:`check_mode` checks a sequence of schema versions against one of the
registry compatibility modes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeAlias

from flowbus.errors import InvalidSchemaError

__all__ = [
    "CompatibilityMode",
    "Incompatibility",
    "check_compatibility",
    "check_mode",
    "parse",
]

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})

#: writer type -> reader types it can be promoted to.
PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}


class CompatibilityMode(StrEnum):
    """The schema registry compatibility modes (lower case here, upper case in registries)."""

    BACKWARD = "backward"
    FORWARD = "forward"
    FULL = "full"
    BACKWARD_TRANSITIVE = "backward_transitive"
    FORWARD_TRANSITIVE = "forward_transitive"
    FULL_TRANSITIVE = "full_transitive"
    NONE = "none"

    @property
    def registry_level(self) -> str:
        """The mode as a registry's compatibility level (``FULL_TRANSITIVE``)."""
        return self.value.upper()


@dataclass(frozen=True, slots=True)
class Incompatibility:
    """One reason a reader cannot read data from a writer."""

    path: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<root>'}: {self.message} [{self.rule}]"


# -- parsed schema -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Primitive:
    type: str
    logical: str | None = None
    scale: int | None = None


@dataclass(eq=False, slots=True)
class _Named:
    type: str  # record, enum, fixed
    fullname: str
    aliases: frozenset[str]
    fields: list[_Field] = field(default_factory=list)
    symbols: tuple[str, ...] = ()
    enum_default: str | None = None
    size: int | None = None
    logical: str | None = None
    scale: int | None = None

    @property
    def name(self) -> str:
        return self.fullname.rpartition(".")[2]


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    aliases: tuple[str, ...]
    type: _Node
    has_default: bool


@dataclass(frozen=True, slots=True)
class _Array:
    items: _Node


@dataclass(frozen=True, slots=True)
class _Map:
    values: _Node


@dataclass(frozen=True, slots=True)
class _Union:
    branches: tuple[_Node, ...]


_Node: TypeAlias = _Primitive | _Named | _Array | _Map | _Union


def _fullname(name: str, namespace: str | None) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


class _Parser:
    def __init__(self) -> None:
        self.names: dict[str, _Named] = {}

    def parse(self, schema: Any, namespace: str | None) -> _Node:
        if isinstance(schema, str):
            return self._reference(schema, namespace)
        if isinstance(schema, list):
            return _Union(tuple(self.parse(branch, namespace) for branch in schema))
        if not isinstance(schema, dict) or "type" not in schema:
            raise InvalidSchemaError(f"not an Avro schema: {schema!r}")
        kind = schema["type"]
        if kind in ("record", "error", "enum", "fixed"):
            return self._named(schema, namespace)
        if kind == "array":
            return _Array(self.parse(schema.get("items"), namespace))
        if kind == "map":
            return _Map(self.parse(schema.get("values"), namespace))
        if isinstance(kind, str) and kind in PRIMITIVES:
            return _Primitive(kind, schema.get("logicalType"), schema.get("scale", 0))
        # {"type": {...}} or {"type": "SomeName"}: the type is the nested schema.
        return self.parse(kind, namespace)

    def _reference(self, name: str, namespace: str | None) -> _Node:
        if name in PRIMITIVES:
            return _Primitive(name)
        for candidate in (_fullname(name, namespace), name):
            if candidate in self.names:
                return self.names[candidate]
        raise InvalidSchemaError(f"unknown type name {name!r}")

    def _named(self, schema: dict[str, Any], namespace: str | None) -> _Named:
        name = schema.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidSchemaError(f"a {schema['type']} needs a name: {schema!r}")
        if "." not in name and "namespace" in schema:
            namespace = schema["namespace"] or None
        fullname = _fullname(name, namespace)
        namespace = fullname.rpartition(".")[0] or None
        if fullname in self.names:
            raise InvalidSchemaError(f"type {fullname!r} is defined twice")
        aliases = frozenset(_fullname(alias, namespace) for alias in schema.get("aliases", ()))
        kind = "record" if schema["type"] == "error" else schema["type"]
        node = _Named(kind, fullname, aliases)
        self.names[fullname] = node
        if kind == "record":
            for entry in schema.get("fields", ()):
                if not isinstance(entry, dict) or "name" not in entry or "type" not in entry:
                    raise InvalidSchemaError(f"bad field in {fullname}: {entry!r}")
                node.fields.append(
                    _Field(
                        entry["name"],
                        tuple(entry.get("aliases", ())),
                        self.parse(entry["type"], namespace),
                        "default" in entry,
                    )
                )
        elif kind == "enum":
            node.symbols = tuple(schema.get("symbols", ()))
            node.enum_default = schema.get("default")
        else:
            size = schema.get("size")
            if not isinstance(size, int):
                raise InvalidSchemaError(f"fixed {fullname} needs an integer size")
            node.size = size
            node.logical = schema.get("logicalType")
            node.scale = schema.get("scale", 0)
        return node


def parse(schema: Any) -> _Node:
    """Parse an Avro schema (JSON-compatible value) for checking; raises on invalid ones."""
    return _Parser().parse(schema, None)


# -- checking ------------------------------------------------------------------------------


def _describe(node: _Node) -> str:
    if isinstance(node, _Primitive):
        return f"{node.type} ({node.logical})" if node.logical else node.type
    if isinstance(node, _Named):
        return f"{node.type} {node.fullname}"
    if isinstance(node, _Array):
        return f"array<{_describe(node.items)}>"
    if isinstance(node, _Map):
        return f"map<{_describe(node.values)}>"
    return "union[" + ", ".join(_describe(b) for b in node.branches) + "]"


def _kind(node: _Node) -> str:
    if isinstance(node, _Primitive | _Named):
        return node.type
    return "array" if isinstance(node, _Array) else "map" if isinstance(node, _Map) else "union"


def _names_match(reader: _Named, writer: _Named) -> bool:
    return reader.name == writer.name or writer.fullname in reader.aliases


def _shallow_match(reader: _Node, writer: _Node) -> bool:
    """Whether the spec says these match before looking inside (the union branch pick)."""
    r_kind, w_kind = _kind(reader), _kind(writer)
    if isinstance(reader, _Named) and isinstance(writer, _Named):
        return r_kind == w_kind and _names_match(reader, writer)
    return r_kind == w_kind or r_kind in PROMOTIONS.get(w_kind, ())


class _Checker:
    def __init__(self) -> None:
        self.found: list[Incompatibility] = []
        self.in_progress: set[tuple[int, int]] = set()

    def add(self, path: str, rule: str, message: str) -> None:
        self.found.append(Incompatibility(path, rule, message))

    def check(self, reader: _Node, writer: _Node, path: str) -> None:
        if isinstance(writer, _Union):
            for branch in writer.branches:
                if isinstance(reader, _Union):
                    self._into_reader_union(reader, branch, path)
                else:
                    before = len(self.found)
                    self.check(reader, branch, path)
                    if len(self.found) > before and not _shallow_match(reader, branch):
                        del self.found[before:]
                        self.add(
                            path,
                            "union-branch",
                            f"writer union branch {_describe(branch)} "
                            f"cannot be read as {_describe(reader)}",
                        )
            return
        if isinstance(reader, _Union):
            self._into_reader_union(reader, writer, path)
            return
        if not _shallow_match(reader, writer):
            rule = "name-mismatch" if _kind(reader) == _kind(writer) else "type-mismatch"
            message = f"reader {_describe(reader)} cannot read writer {_describe(writer)}"
            self.add(path, rule, message)
            return
        if isinstance(reader, _Array) and isinstance(writer, _Array):
            self.check(reader.items, writer.items, f"{path}[]")
        elif isinstance(reader, _Map) and isinstance(writer, _Map):
            self.check(reader.values, writer.values, f"{path}{{}}")
        elif isinstance(reader, _Named) and isinstance(writer, _Named):
            self._named(reader, writer, path)
        elif isinstance(reader, _Primitive) and isinstance(writer, _Primitive):
            self._logical(reader.logical, reader.scale, writer.logical, writer.scale, path)

    def _logical(
        self,
        r_logical: str | None,
        r_scale: int | None,
        w_logical: str | None,
        w_scale: int | None,
        path: str,
    ) -> None:
        if r_logical is None or w_logical is None:
            return
        if r_logical != w_logical:
            self.add(path, "logical-type", f"reader logical type {r_logical} != writer {w_logical}")
        elif r_logical == "decimal" and (r_scale or 0) != (w_scale or 0):
            self.add(path, "logical-type", f"decimal scale changed from {w_scale} to {r_scale}")

    def _into_reader_union(self, reader: _Union, writer: _Node, path: str) -> None:
        for branch in reader.branches:
            if _shallow_match(branch, writer):
                self.check(branch, writer, path)
                return
        self.add(
            path,
            "union-branch",
            f"no branch of reader {_describe(reader)} can read writer {_describe(writer)}",
        )

    def _named(self, reader: _Named, writer: _Named, path: str) -> None:
        key = (id(reader), id(writer))
        if key in self.in_progress:
            return
        self.in_progress.add(key)
        try:
            if reader.type == "record":
                self._record(reader, writer, path)
            elif reader.type == "enum":
                missing = [s for s in writer.symbols if s not in reader.symbols]
                if missing and reader.enum_default is None:
                    self.add(
                        path,
                        "enum-symbol",
                        f"writer symbols {missing} are not in reader enum {reader.fullname}, "
                        "which has no default",
                    )
            elif reader.size != writer.size:
                self.add(
                    path,
                    "fixed-size",
                    f"fixed {reader.fullname} size {reader.size} != writer size {writer.size}",
                )
            else:
                self._logical(reader.logical, reader.scale, writer.logical, writer.scale, path)
        finally:
            self.in_progress.discard(key)

    def _record(self, reader: _Named, writer: _Named, path: str) -> None:
        writer_fields = {f.name: f for f in writer.fields}
        for reader_field in reader.fields:
            field_path = f"{path}.{reader_field.name}" if path else reader_field.name
            match = next(
                (
                    writer_fields[name]
                    for name in (reader_field.name, *reader_field.aliases)
                    if name in writer_fields
                ),
                None,
            )
            if match is not None:
                self.check(reader_field.type, match.type, field_path)
            elif not reader_field.has_default:
                self.add(
                    field_path,
                    "missing-field-default",
                    f"reader field '{reader_field.name}' of {reader.fullname} has no default "
                    "and the writer does not have it",
                )


def check_compatibility(reader: Any, writer: Any) -> list[Incompatibility]:
    """Every reason data written with ``writer`` cannot be read with ``reader`` (empty: ok).

    Both are Avro schemas as JSON-compatible values; invalid ones raise
    :class:`~flowbus.errors.InvalidSchemaError`.
    """
    checker = _Checker()
    checker.check(parse(reader), parse(writer), "")
    return checker.found


def check_mode(
    versions: Sequence[Any], mode: CompatibilityMode
) -> list[tuple[int, int, Incompatibility]]:
    """Check the newest of ``versions`` (oldest first) against the older ones under ``mode``.

    Returns ``(reader index, writer index, incompatibility)`` triples, empty when the newest
    version is allowed. Non-transitive modes compare with the previous version only.
    """
    if mode is CompatibilityMode.NONE or len(versions) < 2:
        return []
    newest = len(versions) - 1
    transitive = mode.value.endswith("_transitive")
    older = range(newest) if transitive else [newest - 1]
    base = mode.value.removesuffix("_transitive")
    found: list[tuple[int, int, Incompatibility]] = []
    for index in older:
        if base in ("backward", "full"):
            found.extend(
                (newest, index, problem)
                for problem in check_compatibility(versions[newest], versions[index])
            )
        if base in ("forward", "full"):
            found.extend(
                (index, newest, problem)
                for problem in check_compatibility(versions[index], versions[newest])
            )
    return found
