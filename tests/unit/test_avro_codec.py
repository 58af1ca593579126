"""The fastavro codec: round trips, falsy values, unions, recursion, evolution, errors."""

from __future__ import annotations

import enum
import io
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

import fastavro
import pytest
from pydantic import BaseModel, Field, JsonValue, create_model

from flowbus.avro.codec import EventCodec, fingerprint, parse_schema
from flowbus.avro.schema import analyze_data
from flowbus.errors import EncodeError, SchemaMismatchError, TruncatedDataError


class Colour(enum.StrEnum):
    RED = "red"
    GREEN = "green"


class Plain(enum.Enum):
    ONE = "one"
    TWO = "two"


class Cat(BaseModel):
    name: str = ""
    lives: int = 9


class Dog(BaseModel):
    good: bool = True
    toys: dict[str, Colour] = {}


class Tree(BaseModel):
    label: str
    children: list[Tree] = []


Money = Annotated[Decimal, Field(max_digits=12, decimal_places=2)]

DATA_TYPES: dict[str, Any] = {
    "s": str,
    "i": int,
    "f": float,
    "b": bool,
    "raw": bytes,
    "when": datetime,
    "day": date,
    "id": UUID,
    "amount": Money,
    "colour": Colour,
    "plain": Plain,
    "kind": Literal["a", "b"],
    "maybe": int | None,
    "numbers": list[int],
    "colours": list[Colour],
    "scores": dict[str, float],
    "pet": Cat | Dog,
    "maybe_pet": Cat | Dog | None,
    "cat": Cat | None,
    "tree": Tree,
    "json": JsonValue,
}


def codec(
    data: dict[str, Any] | None = None, event_type: str = "org.flowbus.t.x.y.v1"
) -> EventCodec:
    return EventCodec(analyze_data(event_type, data or DATA_TYPES))


def sample(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "s": "text",
        "i": 42,
        "f": 1.5,
        "b": True,
        "raw": b"\x00\x01",
        "when": datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        "day": date(2024, 5, 6),
        "id": uuid4(),
        "amount": Decimal("12.34"),
        "colour": Colour.GREEN,
        "plain": Plain.TWO,
        "kind": "b",
        "maybe": 7,
        "numbers": [1, 2, 3],
        "colours": [Colour.RED],
        "scores": {"x": 0.5},
        "pet": Dog(good=True, toys={"ball": Colour.RED}),
        "maybe_pet": Cat(name="Tom"),
        "cat": Cat(),
        "tree": Tree(label="root", children=[Tree(label="leaf")]),
        "json": {"nested": [1, 2.5, None, "x", {"deep": True}]},
    }
    values.update(overrides)
    return values


def assert_same(decoded: dict[str, Any], sent: dict[str, Any]) -> None:
    assert decoded.keys() == sent.keys()
    for name, value in sent.items():
        assert decoded[name] == value, name
        assert type(decoded[name]) is type(value), name


def test_round_trip_of_every_supported_type() -> None:
    c = codec()
    sent = sample()
    assert_same(c.decode(c.encode(sent)), sent)


def test_falsy_values_survive_the_round_trip() -> None:
    c = codec()
    sent = sample(
        s="",
        i=0,
        f=0.0,
        b=False,
        raw=b"",
        amount=Decimal("0.00"),
        maybe=0,
        numbers=[],
        colours=[],
        scores={},
        pet=Cat(name="", lives=0),
        maybe_pet=None,
        cat=None,
        tree=Tree(label="", children=[]),
        json=None,
    )
    assert_same(c.decode(c.encode(sent)), sent)


@pytest.mark.parametrize("value", [0, "", False, [], {}, None, 0.0])
def test_falsy_json_values_survive(value: Any) -> None:
    c = codec({"json": JsonValue})
    assert c.decode(c.encode({"json": value})) == {"json": value}


def test_datetimes_come_back_as_the_same_instant_in_utc() -> None:
    c = codec({"when": datetime})
    local = datetime(2024, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    decoded = c.decode(c.encode({"when": local}))["when"]
    assert decoded == local
    assert decoded.utcoffset() == timedelta(0)


def test_union_members_keep_their_model() -> None:
    c = codec({"pet": Cat | Dog})
    # Both models accept an empty dict: the branch written must come from the value's type.
    for pet in (Cat(), Dog()):
        assert type(c.decode(c.encode({"pet": pet}))["pet"]) is type(pet)


def test_models_may_be_given_as_dicts() -> None:
    c = codec({"cat": Cat})
    assert c.decode(c.encode({"cat": {"name": "Tom"}})) == {"cat": Cat(name="Tom")}


def test_json_is_compact_json_text_on_the_wire() -> None:
    c = codec({"json": JsonValue})
    body = c.encode({"json": {"a": [1, "ü"]}})
    plain = fastavro.parse_schema(
        {"type": "record", "name": "R", "fields": [{"name": "json", "type": "string"}]}
    )
    assert fastavro.schemaless_reader(io.BytesIO(body), plain) == {"json": '{"a":[1,"ü"]}'}


def test_schemas_are_parsed_once() -> None:
    schema = {"type": "record", "name": "Once", "fields": [{"name": "a", "type": "long"}]}
    assert parse_schema(schema) is parse_schema(dict(schema))


def test_fingerprint_is_crc64_avro_of_the_canonical_form() -> None:
    # Test vector of the Avro specification: the fingerprint of "null" is
    # 0x63dd24e7cc258f8a, written little-endian.
    assert fingerprint('"null"') == bytes.fromhex("8a8f25cce724dd63")
    doc_only = {
        "type": "record",
        "name": "R",
        "doc": "x",
        "fields": [{"name": "a", "type": "long"}],
    }
    bare = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "long", "default": 1}]}
    assert fingerprint(doc_only) == fingerprint(bare)


# -- evolution: writer schema resolved to the reader's ---------------------------------------


def case_v1() -> type[BaseModel]:
    return create_model("Case", __module__="evolution.models", id=(str, ...), count=(int, 0))


def case_v2() -> type[BaseModel]:
    return create_model(
        "Case",
        __module__="evolution.models",
        id=(str, ...),
        count=(float, 0.0),  # long -> double: a promotion
        note=(str | None, None),
        tags=(list[str], Field(default_factory=list)),
    )


def test_old_data_read_with_new_schema_gets_defaults() -> None:
    v1, v2 = case_v1(), case_v2()
    old = codec({"case": v1, "n": int})
    new = codec({"case": v2, "n": int, "extra": Annotated[str, Field(default="dflt")]})
    decoded = new.decode(old.encode({"case": v1(id="c1", count=3), "n": 0}), old.schema)
    assert decoded == {"case": v2(id="c1", count=3.0, note=None, tags=[]), "n": 0, "extra": "dflt"}
    assert isinstance(decoded["case"].count, float)


def test_new_data_read_with_old_schema_drops_unknown_fields() -> None:
    v1, v2 = case_v1(), case_v2()
    old = codec({"case": v1, "n": int})
    new = codec({"case": v2, "n": int, "extra": Annotated[str, Field(default="dflt")]})
    body = new.encode({"case": v2(id="c1", count=2.0, note="hi", tags=["t"]), "n": 5, "extra": "x"})
    # double cannot be read as long: this direction is not compatible for "count".
    with pytest.raises(SchemaMismatchError):
        old.decode(body, new.schema)
    v1_float = create_model(
        "Case", __module__="evolution.models", id=(str, ...), count=(float, 0.0)
    )
    reader = codec({"case": v1_float, "n": int})
    assert reader.decode(body, new.schema) == {"case": v1_float(id="c1", count=2.0), "n": 5}


# -- errors -----------------------------------------------------------------------------------


def test_naive_datetime_is_an_encode_error_naming_the_field() -> None:
    c = codec({"when": datetime})
    with pytest.raises(EncodeError, match="field when: naive datetime"):
        c.encode({"when": datetime(2024, 1, 1)})


def test_encode_error_does_not_quote_the_value() -> None:
    c = codec({"maybe": int | None})
    with pytest.raises(EncodeError) as caught:
        c.encode({"maybe": "secret-value"})
    assert "secret-value" not in str(caught.value)
    assert "maybe" in str(caught.value)


def test_union_value_of_another_model_is_an_encode_error() -> None:
    c = codec({"pet": Cat | Dog})
    with pytest.raises(EncodeError, match="Tree is none of Cat, Dog"):
        c.encode({"pet": Tree(label="x")})


def test_truncated_body() -> None:
    c = codec()
    body = c.encode(sample())
    for cut in (0, 1, len(body) // 2, len(body) - 1):
        with pytest.raises(TruncatedDataError):
            c.decode(body[:cut])


def test_body_with_bytes_left_over() -> None:
    c = codec({"a": int})
    with pytest.raises(SchemaMismatchError, match="left over"):
        c.decode(c.encode({"a": 1}) + b"\x00")


def test_body_not_matching_the_schema() -> None:
    c = codec({"colour": Colour})
    with pytest.raises(SchemaMismatchError) as caught:
        c.decode(b"\x0e")  # enum index 7 of 2 symbols
    assert caught.value.reason


def test_writer_schema_that_cannot_be_resolved() -> None:
    writer = codec({"a": str})
    reader = codec({"a": int})
    with pytest.raises(SchemaMismatchError, match="cannot be resolved"):
        reader.decode(writer.encode({"a": "x"}), writer.schema)


def test_writer_spelled_differently_decodes_without_resolution() -> None:
    # A registry may hand back the schema with namespaces split out and docs dropped.
    c = codec({"cat": Cat, "n": Annotated[int, Field(description="How many.")]})
    schema = c.schema.schema
    respelled = {
        "type": "record",
        "name": schema["name"].rpartition(".")[2],
        "namespace": schema["name"].rpartition(".")[0],
        "fields": [
            {"name": "cat", "type": schema["fields"][0]["type"]},
            {"name": "n", "type": "long"},
        ],
    }
    writer = parse_schema(respelled)
    assert writer is not c.schema
    assert writer.layout == c.schema.layout
    sent = {"cat": Cat(name="x", lives=0), "n": 0}
    assert c.decode(c.encode(sent), writer) == sent


@pytest.mark.parametrize("logical_type", ["local-timestamp-micros", "local-timestamp-millis"])
def test_writer_with_local_timestamps_is_refused(logical_type: str) -> None:
    """They would decode to naive datetimes, which flowbus's data never holds."""
    c = codec({"when": datetime})
    local = parse_schema(
        {
            "type": "record",
            "name": c.schema.parsed["name"],
            "fields": [{"name": "when", "type": {"type": "long", "logicalType": logical_type}}],
        }
    )
    out = io.BytesIO()
    fastavro.schemaless_writer(out, local.parsed, {"when": datetime(2026, 1, 1)})
    with pytest.raises(SchemaMismatchError, match="local timestamps"):
        c.decode(out.getvalue(), local)


def test_logical_types_count_in_the_layout() -> None:
    as_long = parse_schema(
        {"type": "record", "name": "R", "fields": [{"name": "t", "type": "long"}]}
    )
    as_time = parse_schema(
        {
            "type": "record",
            "name": "R",
            "fields": [{"name": "t", "type": {"type": "long", "logicalType": "timestamp-micros"}}],
        }
    )
    assert as_long.fingerprint == as_time.fingerprint  # the canonical form drops them
    assert as_long.layout != as_time.layout


def test_union_of_models_evolves() -> None:
    cat_v1 = create_model("Cat", __module__="pets", name=(str, ...))
    cat_v2 = create_model("Cat", __module__="pets", name=(str, ...), age=(int, 0))
    dog = create_model("Dog", __module__="pets", good=(bool, True))
    union_v1 = codec({"pet": cat_v1 | dog})
    union_v2 = codec({"pet": cat_v2 | dog, "maybe": cat_v2 | dog | None})
    single = codec({"pet": cat_v1, "maybe": dog | None})  # a union that used to be one model
    assert union_v2.decode(union_v1.encode({"pet": cat_v1(name="a")}), union_v1.schema) == {
        "pet": cat_v2(name="a", age=0),
        "maybe": None,
    }
    assert union_v1.decode(union_v2.encode({"pet": dog(good=False)}), union_v2.schema) == {
        "pet": dog(good=False)
    }
    body = single.encode({"pet": cat_v1(name="b"), "maybe": dog(good=False)})
    assert union_v2.decode(body, single.schema) == {
        "pet": cat_v2(name="b", age=0),
        "maybe": dog(good=False),
    }


def test_values_the_generated_encoder_refuses_are_counted_and_still_encoded() -> None:
    c = codec({"cat": Cat})
    assert c.decode(c.encode({"cat": Cat(name="a")})) == {"cat": Cat(name="a")}
    assert c.fallbacks == {}
    body = c.encode({"cat": {"name": "b"}})  # a dict where a model is declared: fastavro's
    assert c.decode(body) == {"cat": Cat(name="b")}
    assert c.fallbacks == {"encoder": 1}
    with pytest.raises(TruncatedDataError):
        c.decode(body[:-1])
    assert c.fallbacks["decoder"] == 1
