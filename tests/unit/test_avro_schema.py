"""Deriving Avro schemas from signal data types."""

from __future__ import annotations

import enum
import typing
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

import fastavro
import pytest
from pydantic import AwareDatetime, BaseModel, Field, JsonValue, create_model

from flowbus.avro.schema import derive_record_schema, record_name_for_event_type
from flowbus.errors import SignalDefinitionError, UnsupportedDataTypeError


def field_types(schema: dict[str, Any]) -> dict[str, Any]:
    return {f["name"]: f["type"] for f in schema["fields"]}


def field_named(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


class Colour(enum.Enum):
    """A colour."""

    RED = "red"
    GREEN = "green"


class Tolerant(enum.StrEnum):
    KNOWN = "KNOWN"
    UNKNOWN = "UNKNOWN"
    __avro_default__ = "UNKNOWN"


class Address(BaseModel):
    """Where someone lives."""

    street: str = Field(description="Street and number.")
    zip: str = ""


class Person(BaseModel):
    name: str
    address: Address | None = None
    previous: list[Address] = Field(default_factory=list)


class Tree(BaseModel):
    label: str
    children: list[Tree] = []


class Cat(BaseModel):
    meows: bool = True


class Dog(BaseModel):
    barks: int = 0


def test_record_is_named_after_the_event_type() -> None:
    schema = derive_record_schema("org.flowbus.caluma.case.created.v1", {"a": str}, doc="Hi.")
    assert schema["type"] == "record"
    assert schema["name"] == "org.flowbus.caluma.case.created.v1"
    assert schema["doc"] == "Hi."


def test_event_type_parts_are_made_valid_avro_names() -> None:
    assert record_name_for_event_type("org.flow-bus.2fa.done.v1") == "org.flow_bus._2fa.done.v1"


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (str, "string"),
        (int, "long"),
        (float, "double"),
        (bool, "boolean"),
        (bytes, "bytes"),
        (datetime, {"type": "long", "logicalType": "timestamp-micros"}),
        (AwareDatetime, {"type": "long", "logicalType": "timestamp-micros"}),
        (date, {"type": "int", "logicalType": "date"}),
        (UUID, {"type": "string", "logicalType": "uuid"}),
        (
            Annotated[Decimal, Field(max_digits=12, decimal_places=2)],
            {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
        ),
        (Literal["a", "b"], "string"),
        (list[int], {"type": "array", "items": "long"}),
        (dict[str, float], {"type": "map", "values": "double"}),
        (JsonValue, {"type": "string", "logicalType": "json"}),
        (Annotated[str, Field(min_length=1)], "string"),
    ],
)
def test_type_mapping(annotation: Any, expected: Any) -> None:
    schema = derive_record_schema("t.v1", {"x": annotation})
    assert field_types(schema)["x"] == expected
    fastavro.parse_schema(schema)


def test_optional_is_a_null_first_union_defaulting_to_null() -> None:
    schema = derive_record_schema("t.v1", {"x": int | None, "y": typing.Optional[str]})  # noqa: UP045
    assert field_named(schema, "x") == {"name": "x", "type": ["null", "long"], "default": None}
    assert field_named(schema, "y")["type"] == ["null", "string"]


def test_optional_with_a_value_default_puts_that_branch_first() -> None:
    schema = derive_record_schema("t.v1", {"x": Annotated[int | None, Field(default=5)]})
    assert field_named(schema, "x") == {"name": "x", "type": ["long", "null"], "default": 5}
    fastavro.parse_schema(schema)


def test_enum_is_named_after_its_class_with_values_as_symbols() -> None:
    schema = derive_record_schema("t.v1", {"c": Colour, "t": Tolerant})
    types = field_types(schema)
    assert types["c"] == {
        "type": "enum",
        "name": f"{__name__}.Colour",
        "doc": "A colour.",
        "symbols": ["red", "green"],
    }
    assert types["t"]["default"] == "UNKNOWN"


def test_models_become_named_records_with_docs_and_defaults() -> None:
    schema = derive_record_schema("t.v1", {"person": Person})
    person = field_types(schema)["person"]
    assert person["name"] == f"{__name__}.Person"
    address = field_named(person, "address")
    assert address["default"] is None
    assert address["type"][0] == "null"
    record = address["type"][1]
    assert record["name"] == f"{__name__}.Address"
    assert record["doc"] == "Where someone lives."
    assert field_named(record, "street") == {
        "name": "street",
        "type": "string",
        "doc": "Street and number.",
    }
    assert field_named(record, "zip")["default"] == ""
    # A named type used a second time is referenced by its full name.
    assert field_named(person, "previous") == {
        "name": "previous",
        "type": {"type": "array", "items": f"{__name__}.Address"},
        "default": [],
    }
    fastavro.parse_schema(schema)


def test_same_class_name_in_two_modules_does_not_collide() -> None:
    user_a = create_model("User", __module__="app_a.models", name=(str, ...))
    user_b = create_model("User", __module__="app_b.models", id=(int, ...))
    schema = derive_record_schema("t.v1", {"a": user_a, "b": user_b})
    types = field_types(schema)
    assert types["a"]["name"] == "app_a.models.User"
    assert types["b"]["name"] == "app_b.models.User"
    fastavro.parse_schema(schema)


def test_recursive_model() -> None:
    schema = derive_record_schema("t.v1", {"tree": Tree})
    tree = field_types(schema)["tree"]
    assert field_named(tree, "children")["type"] == {
        "type": "array",
        "items": f"{__name__}.Tree",
    }
    fastavro.parse_schema(schema)


def test_union_of_models() -> None:
    schema = derive_record_schema("t.v1", {"pet": Cat | Dog, "maybe": Cat | Dog | None})
    types = field_types(schema)
    assert [branch["name"] for branch in types["pet"]] == [f"{__name__}.Cat", f"{__name__}.Dog"]
    assert types["maybe"] == ["null", f"{__name__}.Cat", f"{__name__}.Dog"]
    fastavro.parse_schema(schema)


def test_top_level_field_docs_and_defaults_from_annotated() -> None:
    schema = derive_record_schema(
        "t.v1", {"n": Annotated[int, Field(default=0, description="How many.")]}
    )
    assert field_named(schema, "n") == {
        "name": "n",
        "type": "long",
        "doc": "How many.",
        "default": 0,
    }


@pytest.mark.parametrize(
    ("annotation", "default", "expected"),
    [
        (bytes, b"\x00\xff", "\x00\xff"),
        (datetime, datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC), 1_000_000),
        (date, date(1970, 1, 11), 10),
        (UUID, UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (Colour, Colour.GREEN, "green"),
        (JsonValue, {"a": [1]}, '{"a":[1]}'),
        (list[int], [0], [0]),
        (Address, Address(street="x"), {"street": "x", "zip": ""}),
        (bool, False, False),
        (float, 0, 0.0),
    ],
)
def test_defaults_are_carried_as_avro_json(annotation: Any, default: Any, expected: Any) -> None:
    schema = derive_record_schema("t.v1", {"x": Annotated[annotation, Field(default=default)]})
    assert field_named(schema, "x")["default"] == expected
    fastavro.parse_schema(schema)


def test_decimal_default_is_unscaled_twos_complement() -> None:
    decimal = Annotated[Decimal, Field(max_digits=5, decimal_places=2, default=Decimal("-1.5"))]
    schema = derive_record_schema("t.v1", {"x": decimal})
    # -150 as big-endian two's complement.
    assert field_named(schema, "x")["default"].encode("latin-1") == (-150).to_bytes(
        2, "big", signed=True
    )


class BadSymbol(enum.Enum):
    A = "not valid"


class IntEnum(enum.Enum):
    ONE = 1


class WithSet(BaseModel):
    tags: set[str]


@pytest.mark.parametrize(
    ("data", "field", "reason_part"),
    [
        ({"x": set[int]}, "x", "set[int]"),
        ({"x": tuple[int, int]}, "x", "tuple"),
        ({"x": dict[int, str]}, "x", "map keys must be str"),
        ({"x": int | str}, "x", "unions"),
        ({"x": Decimal}, "x", "max_digits"),
        ({"x": Any}, "x", "JsonValue"),
        ({"x": object}, "x", "JsonValue"),
        ({"x": Literal[1, 2]}, "x", "Literal of strings"),
        ({"x": BadSymbol}, "x", "not a valid Avro symbol"),
        ({"x": IntEnum}, "x", "not a valid Avro symbol"),
        ({"x": WithSet}, "x.tags", "set[str]"),
        ({"x": list[WithSet]}, "x[].tags", "set[str]"),
        ({"bad-name": int}, "bad-name", "not a valid Avro field name"),
        ({"x": Annotated[int, Field(default="zero")]}, "x", "does not fit"),
        ({"x": Annotated[datetime, Field(default=datetime(2020, 1, 1))]}, "x", "does not fit"),
    ],
)
def test_unsupported_types_fail_naming_the_field(
    data: dict[str, Any], field: str, reason_part: str
) -> None:
    with pytest.raises(UnsupportedDataTypeError) as caught:
        derive_record_schema("t.v1", data)
    assert caught.value.field == field
    assert reason_part in caught.value.reason
    assert isinstance(caught.value, SignalDefinitionError)


def test_derivation_is_deterministic() -> None:
    data = {"person": Person, "tree": Tree, "pet": Cat | Dog}
    assert derive_record_schema("t.v1", data) == derive_record_schema("t.v1", data)
