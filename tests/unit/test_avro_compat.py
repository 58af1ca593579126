"""The Avro compatibility checker: one row per resolution rule."""

from __future__ import annotations

from typing import Any

import pytest

from flowbus.avro.compat import CompatibilityMode, check_compatibility, check_mode
from flowbus.errors import InvalidSchemaError


def record(name: str, *fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": list(fields), **extra}


def fld(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def enum(name: str, *symbols: str, **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": name, "symbols": list(symbols), **extra}


def fixed(name: str, size: int) -> dict[str, Any]:
    return {"type": "fixed", "name": name, "size": size}


def linked_list(*extra_fields: dict[str, Any]) -> dict[str, Any]:
    return record(
        "a.Node",
        fld("value", "long"),
        fld("next", ["null", "a.Node"], default=None),
        *extra_fields,
    )


DECIMAL_2 = {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}
DECIMAL_3 = {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 3}
DECIMAL_2_WIDER = {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}
MILLIS = {"type": "long", "logicalType": "timestamp-millis"}
MICROS = {"type": "long", "logicalType": "timestamp-micros"}
UUID = {"type": "string", "logicalType": "uuid"}

# (id, reader, writer, expected [(path, rule), ...]; empty: compatible)
CASES: list[tuple[str, Any, Any, list[tuple[str, str]]]] = [
    # primitives and promotions
    ("same primitive", "int", "int", []),
    ("null", "null", "null", []),
    ("int to long", "long", "int", []),
    ("int to float", "float", "int", []),
    ("int to double", "double", "int", []),
    ("long to float", "float", "long", []),
    ("long to double", "double", "long", []),
    ("float to double", "double", "float", []),
    ("string to bytes", "bytes", "string", []),
    ("bytes to string", "string", "bytes", []),
    ("no demotion long to int", "int", "long", [("", "type-mismatch")]),
    ("no demotion double to float", "float", "double", [("", "type-mismatch")]),
    ("no long to string", "string", "long", [("", "type-mismatch")]),
    ("no boolean to int", "int", "boolean", [("", "type-mismatch")]),
    ("primitive as object", {"type": "long"}, "int", []),
    # logical types
    ("logical on one side only", "string", UUID, []),
    ("same decimal", DECIMAL_2, DECIMAL_2, []),
    ("decimal wider precision", DECIMAL_2_WIDER, DECIMAL_2, []),
    ("decimal scale changed", DECIMAL_3, DECIMAL_2, [("", "logical-type")]),
    ("timestamp precision changed", MICROS, MILLIS, [("", "logical-type")]),
    # enums
    ("enum same", enum("E", "A", "B"), enum("E", "A", "B"), []),
    ("enum reader has more symbols", enum("E", "A", "B", "C"), enum("E", "A", "B"), []),
    ("enum writer symbol unknown", enum("E", "A"), enum("E", "A", "B"), [("", "enum-symbol")]),
    (
        "enum writer symbol unknown but reader default",
        enum("E", "A", "U", default="U"),
        enum("E", "A", "B"),
        [],
    ),
    ("enum renamed", enum("F", "A"), enum("E", "A"), [("", "name-mismatch")]),
    ("enum renamed with alias", enum("x.F", "A", aliases=["x.E"]), enum("x.E", "A"), []),
    # fixed
    ("fixed same size", fixed("F", 4), fixed("F", 4), []),
    ("fixed other size", fixed("F", 8), fixed("F", 4), [("", "fixed-size")]),
    ("fixed renamed", fixed("G", 4), fixed("F", 4), [("", "name-mismatch")]),
    ("fixed vs bytes", "bytes", fixed("F", 4), [("", "type-mismatch")]),
    # records: fields
    ("record same", record("R", fld("a", "int")), record("R", fld("a", "int")), []),
    (
        "record field added with default",
        record("R", fld("a", "int"), fld("b", "string", default="")),
        record("R", fld("a", "int")),
        [],
    ),
    (
        "record field added without default",
        record("R", fld("a", "int"), fld("b", "string")),
        record("R", fld("a", "int")),
        [("b", "missing-field-default")],
    ),
    (
        "record field removed (writer has more)",
        record("R", fld("a", "int")),
        record("R", fld("a", "int"), fld("b", "string")),
        [],
    ),
    (
        "record field removed that had a default",
        record("R", fld("a", "int")),
        record("R", fld("a", "int"), fld("b", "string", default="")),
        [],
    ),
    (
        "record field renamed with reader alias",
        record("R", fld("new", "int", aliases=["old"])),
        record("R", fld("old", "int")),
        [],
    ),
    (
        "record field renamed without alias",
        record("R", fld("new", "int")),
        record("R", fld("old", "int")),
        [("new", "missing-field-default")],
    ),
    (
        "record field type promoted",
        record("R", fld("a", "double")),
        record("R", fld("a", "int")),
        [],
    ),
    (
        "record field type changed",
        record("R", fld("a", "int")),
        record("R", fld("a", "string")),
        [("a", "type-mismatch")],
    ),
    (
        "nested record field changed",
        record("R", fld("inner", record("I", fld("x", "long")))),
        record("R", fld("inner", record("I", fld("x", "boolean")))),
        [("inner.x", "type-mismatch")],
    ),
    # records: names and namespaces
    ("record renamed", record("S"), record("R"), [("", "name-mismatch")]),
    ("record other namespace same name", record("b.R"), record("a.R"), []),
    ("record renamed with alias", record("b.S", aliases=["a.R"]), record("a.R"), []),
    (
        "alias is qualified with the reader's namespace",
        record("S", namespace="a", aliases=["R"]),
        record("a.R"),
        [],
    ),
    (
        "namespace key vs dotted name",
        record("R", fld("e", enum("E", "A")), namespace="a"),
        record("a.R", fld("e", enum("a.E", "A"))),
        [],
    ),
    (
        "reference resolved in enclosing namespace",
        record("R", fld("e", enum("E", "A")), fld("f", "E"), namespace="a"),
        record("a.R", fld("e", enum("a.E", "A")), fld("f", "a.E")),
        [],
    ),
    ("record vs enum", record("R"), enum("R", "A"), [("", "type-mismatch")]),
    # recursive records
    ("recursive same", linked_list(), linked_list(), []),
    (
        "recursive with added defaulted field",
        linked_list(fld("tag", "string", default="")),
        linked_list(),
        [],
    ),
    (
        "recursive with added field without default",
        linked_list(fld("tag", "string")),
        linked_list(),
        [("tag", "missing-field-default")],
    ),
    # arrays and maps
    (
        "array items promoted",
        {"type": "array", "items": "long"},
        {"type": "array", "items": "int"},
        [],
    ),
    (
        "array items changed",
        {"type": "array", "items": "int"},
        {"type": "array", "items": "string"},
        [("[]", "type-mismatch")],
    ),
    (
        "map values promoted",
        {"type": "map", "values": "double"},
        {"type": "map", "values": "float"},
        [],
    ),
    (
        "map values changed",
        {"type": "map", "values": "int"},
        {"type": "map", "values": "boolean"},
        [("{}", "type-mismatch")],
    ),
    (
        "array vs map",
        {"type": "array", "items": "int"},
        {"type": "map", "values": "int"},
        [("", "type-mismatch")],
    ),
    # unions
    ("union same", ["null", "string"], ["null", "string"], []),
    ("union reader has more branches", ["null", "string", "long"], ["null", "string"], []),
    (
        "union writer has unknown branch",
        ["null", "string"],
        ["null", "string", "long"],
        [("", "union-branch")],
    ),
    ("union branch promoted", ["null", "double"], ["null", "int"], []),
    ("writer plain, reader union", ["null", "long"], "int", []),
    ("writer plain, reader union without match", ["null", "string"], "int", [("", "union-branch")]),
    ("writer union, reader plain", "long", ["int", "long"], []),
    ("writer union, reader plain missing null", "long", ["null", "long"], [("", "union-branch")]),
    (
        "union of records, writer branch removed from reader",
        ["null", record("A", fld("x", "int"))],
        ["null", record("A", fld("x", "int")), record("B")],
        [("", "union-branch")],
    ),
    (
        "union branch record changed",
        ["null", record("A", fld("x", "int"), fld("y", "int"))],
        ["null", record("A", fld("x", "int"))],
        [("y", "missing-field-default")],
    ),
    (
        "optional field made required",
        record("R", fld("a", "long")),
        record("R", fld("a", ["null", "long"], default=None)),
        [("a", "union-branch")],
    ),
    (
        "required field made optional",
        record("R", fld("a", ["null", "long"], default=None)),
        record("R", fld("a", "long")),
        [],
    ),
]


@pytest.mark.parametrize(
    ("reader", "writer", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_resolution_rule(reader: Any, writer: Any, expected: list[tuple[str, str]]) -> None:
    found = check_compatibility(reader, writer)
    assert [(problem.path, problem.rule) for problem in found] == expected
    for problem in found:
        assert problem.message
        assert problem.rule in str(problem)


def test_every_incompatibility_is_reported() -> None:
    reader = record("R", fld("a", "int"), fld("b", "string"), fld("c", enum("E", "X")))
    writer = record("R", fld("a", "string"), fld("c", enum("E", "X", "Y")))
    found = check_compatibility(reader, writer)
    assert [(p.path, p.rule) for p in found] == [
        ("a", "type-mismatch"),
        ("b", "missing-field-default"),
        ("c", "enum-symbol"),
    ]


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "record"},
        {"type": "record", "name": "R", "fields": [{"name": "a"}]},
        {"type": "record", "name": "R", "fields": [{"name": "a", "type": "Unknown"}]},
        {"type": "fixed", "name": "F"},
        42,
    ],
)
def test_invalid_schema_is_a_typed_error(schema: Any) -> None:
    with pytest.raises(InvalidSchemaError):
        check_compatibility(schema, "int")


V1 = record("R", fld("a", "int"))
V2_ADDED_WITH_DEFAULT = record("R", fld("a", "int"), fld("b", "int", default=0))
V2_ADDED_NO_DEFAULT = record("R", fld("a", "int"), fld("b", "int"))
V2_REMOVED_NO_DEFAULT = record("R")


@pytest.mark.parametrize(
    ("versions", "mode", "ok"),
    [
        ([V1, V2_ADDED_WITH_DEFAULT], CompatibilityMode.FULL, True),
        ([V1, V2_ADDED_NO_DEFAULT], CompatibilityMode.BACKWARD, False),
        ([V1, V2_ADDED_NO_DEFAULT], CompatibilityMode.FORWARD, True),
        ([V1, V2_REMOVED_NO_DEFAULT], CompatibilityMode.BACKWARD, True),
        ([V1, V2_REMOVED_NO_DEFAULT], CompatibilityMode.FORWARD, False),
        ([V1, V2_REMOVED_NO_DEFAULT], CompatibilityMode.FULL, False),
        ([V1, V2_REMOVED_NO_DEFAULT], CompatibilityMode.NONE, True),
        # v1 -> v2 adds b with a default, v3 drops it again without: fine pairwise for
        # BACKWARD; v3 reading v1 is fine too. FORWARD: v2 reading v3 ok (default).
        ([V1, V2_ADDED_WITH_DEFAULT, V1], CompatibilityMode.FULL_TRANSITIVE, True),
        # v3 (a:int, b:int no default) reads v1 (no b): breaks transitive backward only.
        ([V1, V2_ADDED_WITH_DEFAULT, V2_ADDED_NO_DEFAULT], CompatibilityMode.BACKWARD, True),
        (
            [V1, V2_ADDED_WITH_DEFAULT, V2_ADDED_NO_DEFAULT],
            CompatibilityMode.BACKWARD_TRANSITIVE,
            False,
        ),
        ([V2_REMOVED_NO_DEFAULT, V1, V1], CompatibilityMode.FORWARD, True),
        ([V2_REMOVED_NO_DEFAULT, V1, V1], CompatibilityMode.FORWARD_TRANSITIVE, True),
        ([V1, V2_REMOVED_NO_DEFAULT, V2_REMOVED_NO_DEFAULT], CompatibilityMode.FORWARD, True),
        (
            [V1, V2_REMOVED_NO_DEFAULT, V2_REMOVED_NO_DEFAULT],
            CompatibilityMode.FORWARD_TRANSITIVE,
            False,
        ),
    ],
)
def test_check_mode(versions: list[Any], mode: CompatibilityMode, ok: bool) -> None:
    assert (check_mode(versions, mode) == []) is ok


def test_check_mode_names_reader_and_writer_versions() -> None:
    found = check_mode([V1, V2_ADDED_NO_DEFAULT], CompatibilityMode.FULL)
    assert [(reader, writer, p.rule) for reader, writer, p in found] == [
        (1, 0, "missing-field-default")
    ]
