"""The generated encoder and decoder against the reference path (to_datum + fastavro).

Random valid data, driven by the type tree, for every catalog signal and for test-only
event types covering every node kind: the generated encoder writes exactly fastavro's
bytes and the generated decoder returns exactly what fastavro + from_datum return. What
the generated code does not handle exactly, it must refuse (raise), so that the codec falls
back to the reference path.
"""

from __future__ import annotations

import enum
import io
import json
import random
import struct
import typing
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any, Literal

import fastavro
import pytest
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    PrivateAttr,
    create_model,
    field_validator,
    model_validator,
)

import flowbus.catalog
from flowbus.avro.codec import EventCodec
from flowbus.avro.compiled import (
    Decoder,
    Encoder,
    _long,
    _long_bytes,
    _Unhandled,
    compile_decoder,
    compile_encoder,
)
from flowbus.avro.schema import (
    ArrayType,
    DecimalType,
    EnumType,
    EventType,
    JsonType,
    MapType,
    ModelType,
    NullType,
    PrimitiveType,
    TypeNode,
    UnionType,
    analyze_data,
)
from flowbus.errors import (
    EncodeError,
    SchemaMismatchError,
    SenderValidationError,
    TruncatedDataError,
)
from flowbus.signals import DecodedData, WorkflowSignal

SEEDS = range(40)
JSON_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)

# -- test-only event types covering every node kind ------------------------------------------


class Flavour(enum.StrEnum):
    SWEET = "sweet"
    SOUR = "sour"
    BITTER = "bitter"


class Shade(enum.Enum):
    LIGHT = "light"
    DARK = "dark"


Money = Annotated[Decimal, Field(max_digits=12, decimal_places=3)]
Whole = Annotated[Decimal, Field(max_digits=5, decimal_places=0)]


class Cat(BaseModel):
    name: str = ""
    lives: int = 9


class Dog(BaseModel):
    good: bool = True
    toys: dict[str, Flavour] = {}


class Bird(BaseModel):
    wingspan: float = 0.0
    seen: list[date] = []


class Tree(BaseModel):
    label: str
    children: list[Tree] = []


class Box(BaseModel):
    """Every kind inside a record (where the decoder hands UUIDs to pydantic as text)."""

    text: str
    count: int
    ratio: float
    flag: bool
    raw: bytes
    when: datetime
    day: date
    id: uuid.UUID
    maybe_id: uuid.UUID | None = None
    ids: list[uuid.UUID] = []
    amount: Money
    whole: Whole
    kind: Literal["a", "b", "ü"]
    blob: JsonValue
    maybe_json: JsonValue | None = None
    flavour: Flavour
    shade: Shade
    maybe_shade: Shade | None = None
    tags: list[str] = []
    scores: dict[str, float] = {}
    nested: list[dict[str, list[int]]] = []
    maybe_when: datetime | None = None
    pet: Cat | Dog | Bird
    maybe_pet: Cat | Dog | None = None
    tree: Tree | None = None


class Aliased(BaseModel):
    """Validated by name only with by_alias=False, by_name=True (as the reference does)."""

    value: int = Field(alias="v")
    id: uuid.UUID = Field(alias="identifier")


class StrictIds(BaseModel):
    """Strict mode: a UUID field does not take the UUID's text."""

    model_config = ConfigDict(strict=True)
    id: uuid.UUID
    maybe_id: uuid.UUID | None = None


class SeesInput(BaseModel):
    """A validator that would tell text from a UUID: it must get what fastavro gives."""

    id: uuid.UUID

    @field_validator("id", mode="before")
    @classmethod
    def text_is_not_a_uuid(cls, value: Any) -> Any:
        return zero_if_text(value)


def zero_if_text(value: Any) -> Any:
    return uuid.UUID(int=0) if isinstance(value, str) else value


class InnerValidator(BaseModel):
    """A validator inside the annotation: the field gets UUIDs, not their text."""

    ids: list[Annotated[uuid.UUID, BeforeValidator(zero_if_text)]]
    maybe_id: Annotated[uuid.UUID, BeforeValidator(zero_if_text)] | None = None


class DefaultFirst(BaseModel):
    """Union members reordered so that the default's branch comes first."""

    label: str | None = "x"
    pet: Cat | None = Cat()


TEST_EVENTS: dict[str, dict[str, Any]] = {
    "org.flowbus.test.compiled.top_level.v1": {
        "s": str,
        "i": int,
        "f": float,
        "b": bool,
        "raw": bytes,
        "when": datetime,
        "day": date,
        "id": uuid.UUID,
        "maybe_id": uuid.UUID | None,
        "ids": list[uuid.UUID],
        "amount": Money,
        "kind": Literal["x", "y"],
        "json": JsonValue,
        "flavour": Flavour,
        "shade": Shade,
        "maybe": int | None,
        "numbers": list[int],
        "doubles": list[float],
        "flavours": list[Flavour],
        "scores": dict[str, float],
        "maps": dict[str, dict[str, bytes]],
        "pet": Cat | Dog | Bird,
        "maybe_pet": Cat | Dog | None,
        "cat": Cat | None,
        "tree": Tree,
        "counted": Annotated[int, Field(default=3)],
    },
    "org.flowbus.test.compiled.records.v1": {
        "box": Box,
        "boxes": list[Box],
        "maybe_box": Box | None,
        "aliased": Aliased,
        "strict": StrictIds,
        "sees_input": SeesInput,
        "inner_validator": InnerValidator,
        "default_first": DefaultFirst,
    },
}

# -- random valid values, driven by the type tree --------------------------------------------

TEXTS = ["", "a", "ü", "日本語", "emoji 🎉", "x" * 63, "y" * 64, "z" * 200, "mixed ß\u0000end"]
LONGS = [0, 1, -1, 63, -64, 64, -65, 8191, -8192, 2**31, -(2**31) - 1, 2**62]
LONGS += [2**63 - 1, -(2**63), 2**63 - 2, -(2**63) + 1]
DOUBLES = [0.0, -0.0, 1.5, -2.25, 1e-310, 1.7976931348623157e308, float("inf"), float("-inf")]
DOUBLES += [float("nan")]
ZONES = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-9, minutes=-30))]


def literal_values(annotation: Any) -> tuple[str, ...]:
    """The values of the first ``Literal`` inside ``annotation``."""
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    for arg in typing.get_args(annotation):
        found = literal_values(arg)
        if found:
            return found
    return ()


class Values:
    """Random values of a type node, as validated data holds them."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def count(self, depth: int) -> int:
        if depth > 2:
            return 0
        roll = self.rng.random()
        if roll < 0.1:
            return self.rng.randint(64, 130)  # a multi-byte block count
        return self.rng.randint(0, 3) if roll < 0.9 else 0

    def text(self) -> str:
        if self.rng.random() < 0.3:
            return self.rng.choice(TEXTS)
        alphabet = "abcXYZ09 -_äöü€😀\n"
        return "".join(self.rng.choice(alphabet) for _ in range(self.rng.randint(0, 80)))

    def long(self) -> int:
        roll = self.rng.random()
        if roll < 0.4:
            return self.rng.choice(LONGS)
        if roll < 0.7:
            return self.rng.randint(-64, 63)
        return self.rng.randint(-(2**63), 2**63 - 1) >> self.rng.randint(0, 62)

    def double(self) -> float:
        if self.rng.random() < 0.4:
            return self.rng.choice(DOUBLES)
        return struct.unpack("<d", self.rng.randbytes(8))[0]

    def timestamp(self) -> datetime:
        micros = self.rng.randint(-(2**52), 2**52)
        instant = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
        return instant.astimezone(self.rng.choice(ZONES))

    def decimal(self, node: DecimalType) -> Decimal:
        sign = self.rng.choice(["", "-"])
        whole = self.rng.randint(0, 10 ** (node.precision - node.scale) - 1)
        places = self.rng.randint(0, node.scale)
        if places == 0:
            return Decimal(f"{sign}{whole}")
        return Decimal(f"{sign}{whole}.{self.rng.randint(0, 10**places - 1):0{places}d}")

    def json(self, depth: int = 0) -> Any:
        kinds = ["str", "int", "float", "bool", "none"] + (["list", "dict"] if depth < 3 else [])
        match self.rng.choice(kinds):
            case "str":
                return self.text()
            case "int":
                return self.long()
            case "float":
                return self.rng.uniform(-1e6, 1e6)
            case "bool":
                return self.rng.random() < 0.5
            case "none":
                return None
            case "list":
                return [self.json(depth + 1) for _ in range(self.rng.randint(0, 3))]
        return {self.text(): self.json(depth + 1) for _ in range(self.rng.randint(0, 3))}

    def primitive(self, kind: str, annotation: Any) -> Any:
        match kind:
            case "string":
                return self.text()
            case "literal":
                return self.rng.choice(literal_values(annotation))
            case "long":
                return self.long()
            case "double":
                return self.double()
            case "boolean":
                return self.rng.random() < 0.5
            case "bytes":
                return self.rng.randbytes(self.rng.choice([0, 1, 63, 64, 300]))
            case "timestamp":
                return self.timestamp()
            case "date":
                return date.fromordinal(self.rng.randint(1, date.max.toordinal()))
        return uuid.UUID(int=self.rng.getrandbits(128))

    def value(self, node: TypeNode, annotation: Any = None, depth: int = 0) -> Any:
        match node:
            case PrimitiveType(kind=kind):
                return self.primitive(kind, annotation)
            case DecimalType():
                return self.decimal(node)
            case JsonType():
                return self.json()
            case NullType():
                return None
            case EnumType(cls=cls):
                return self.rng.choice(list(cls))
            case ArrayType(items=items):
                return [self.value(items, annotation, depth + 1) for _ in range(self.count(depth))]
            case MapType(values=values):
                return {
                    f"{self.text()}#{i}": self.value(values, annotation, depth + 1)
                    for i in range(self.count(depth))
                }
            case UnionType(members=members):
                if depth > 2 and NullType() in members:
                    return None
                return self.value(self.rng.choice(members), annotation, depth + 1)
            case ModelType(cls=cls, fields=fields):
                return cls.model_validate(
                    {
                        spec.name: self.value(
                            spec.type, cls.model_fields[spec.name].annotation, depth + 1
                        )
                        for spec in fields
                    },
                    by_alias=False,
                    by_name=True,
                )
        raise AssertionError(node)

    def data(self, event: EventType, annotations: dict[str, Any]) -> dict[str, Any]:
        return {spec.name: self.value(spec.type, annotations[spec.name]) for spec in event.fields}


# -- the reference path and exact comparison -------------------------------------------------


def reference_encode(codec: EventCodec, data: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, codec.schema.parsed, codec.to_datum(data))
    return out.getvalue()


def reference_decode(codec: EventCodec, body: bytes) -> dict[str, Any]:
    stream = io.BytesIO(body)
    datum = fastavro.schemaless_reader(
        stream,
        codec.schema.parsed,
        None,
        return_record_name=True,
        return_record_name_override=True,
    )
    if stream.tell() != len(body):
        raise ValueError("bytes left over")
    return codec.from_datum(typing.cast(dict[str, Any], datum))


def exact(value: Any) -> Any:
    """``value`` in a form whose equality also compares types, and NaNs by their bits;
    models with their fields set, extra and private values, datetimes with their tzinfo."""
    if isinstance(value, BaseModel):
        state = (value.model_fields_set, value.model_extra, value.__pydantic_private__)
        return (type(value), exact(value.__dict__), state)
    if isinstance(value, dict):
        return (dict, {exact(key): exact(item) for key, item in value.items()})
    if isinstance(value, list):
        return (list, [exact(item) for item in value])
    if isinstance(value, float):
        return (float, struct.pack("<d", value))
    if isinstance(value, datetime):
        return (datetime, value, value.utcoffset(), value.tzinfo)
    if isinstance(value, uuid.UUID):
        return (type(value), value.int, value.is_safe)
    return (type(value), value)


class Compiled:
    """An event type's codec (the reference) and its generated encoder and decoder."""

    def __init__(self, event: EventType, annotations: dict[str, Any]) -> None:
        self.event = event
        self.annotations = annotations
        self.codec = EventCodec(event)
        self.encode: Encoder = compile_encoder(event, JSON_ENCODER)
        self.decode: Decoder = compile_decoder(event)


def build_catalog() -> list[Compiled]:
    # The catalog's own signals: other test modules define signals of their own (the Open
    # edX sample), and which of them a run has imported depends on the tests selected.
    signals = [getattr(flowbus.catalog, name) for name in flowbus.catalog.__all__]
    return [
        Compiled(analyze_data(s.event_type, s.data, doc=s.doc), dict(s.data))
        for s in WorkflowSignal.all_signals()
        if any(s is signal for signal in signals)
    ]


def build_test_types() -> list[Compiled]:
    return [
        Compiled(analyze_data(event_type, data), data) for event_type, data in TEST_EVENTS.items()
    ]


CATALOG = build_catalog()
TEST_TYPES = build_test_types()


def check_exact(case: Compiled, data: dict[str, Any]) -> bytes:
    expected = reference_encode(case.codec, data)
    assert bytes(case.encode(data)) == expected
    assert exact(case.decode(expected)) == exact(reference_decode(case.codec, expected))
    return expected


# -- exactness ---------------------------------------------------------------------------------


def test_the_catalog_has_its_signals() -> None:
    assert len(CATALOG) == 43


@pytest.mark.parametrize("seed", SEEDS)
def test_catalog_signals_encode_and_decode_exactly(seed: int) -> None:
    values = Values(seed)
    for case in CATALOG:
        signal = WorkflowSignal.get_signal_by_type(case.event.event_type)
        data = signal.validate_data(**values.data(case.event, case.annotations))
        check_exact(case, data)


@pytest.mark.parametrize("case", TEST_TYPES, ids=lambda case: case.event.event_type)
@pytest.mark.parametrize("seed", SEEDS)
def test_every_node_kind_encodes_and_decodes_exactly(case: Compiled, seed: int) -> None:
    check_exact(case, Values(seed).data(case.event, case.annotations))


def test_the_codec_gives_the_reference_results() -> None:
    for seed in range(5):
        for case in [*CATALOG[:3], *TEST_TYPES]:
            data = Values(seed).data(case.event, case.annotations)
            body = case.codec.encode(data)
            assert body == reference_encode(case.codec, data)
            decoded = case.codec.decode(body)
            assert exact(decoded) == exact(reference_decode(case.codec, body))
            assert exact(case.codec.decode(memoryview(body))) == exact(decoded)


def test_uuids_reach_validators_and_strict_models_as_uuids() -> None:
    case = TEST_TYPES[1]
    data = Values(0).data(case.event, case.annotations)
    decoded = case.decode(check_exact(case, data))
    assert decoded["sees_input"].id == data["sees_input"].id != uuid.UUID(int=0)
    assert decoded["inner_validator"] == data["inner_validator"]
    assert decoded["strict"] == data["strict"]
    assert decoded["aliased"] == data["aliased"]


# -- what the generated code refuses (so that the reference path decides) ----------------------


def small_codec(data: dict[str, Any]) -> Compiled:
    return Compiled(analyze_data("org.flowbus.test.compiled.small.v1", data), data)


UNHANDLED_VALUES = [
    ("a dict for a model", {"cat": Cat}, {"cat": {"name": "Tom"}}),
    ("a naive datetime", {"when": datetime}, {"when": datetime(2024, 1, 1)}),
    ("a long out of range", {"i": int}, {"i": 2**63}),
    ("a bool for a long", {"i": int}, {"i": True}),
    ("an int for a double", {"f": float}, {"f": 3}),
    ("a str subclass", {"s": str}, {"s": Flavour.SOUR}),
    ("a datetime for a date", {"day": date}, {"day": datetime(2024, 1, 1, tzinfo=UTC)}),
    ("text for a UUID", {"id": uuid.UUID}, {"id": "0" * 32}),
    ("a tuple for a list", {"n": list[int]}, {"n": (1, 2)}),
    ("a member's value for an enum", {"f": Flavour}, {"f": "sour"}),
    ("a missing field", {"i": int, "s": str}, {"i": 1}),
    ("a decimal of too many places", {"m": Money}, {"m": Decimal("1.2345")}),
    ("a decimal of too many digits", {"m": Money}, {"m": Decimal("1234567890123")}),
    ("a decimal NaN", {"m": Money}, {"m": Decimal("NaN")}),
    ("a circular JSON value", {"j": JsonValue}, None),
]


def reference_codec(case: Compiled) -> EventCodec:
    """The codec with its generated code refusing everything: today's reference path."""

    def refuse(value: Any) -> Any:
        raise RuntimeError("refused")

    codec = EventCodec(case.event)
    codec._encode_own = refuse  # type: ignore[method-assign]
    codec._decode_own = refuse  # type: ignore[method-assign]
    return codec


def outcome(call: Any, *args: Any) -> Any:
    """What ``call(*args)`` returns, or the type and message of what it raises."""
    try:
        return exact(call(*args))
    except Exception as exc:
        return (type(exc), str(exc))


@pytest.mark.parametrize(
    ("types", "data"),
    [(t, d) for _, t, d in UNHANDLED_VALUES],
    ids=[n for n, _, _ in UNHANDLED_VALUES],
)
def test_values_of_other_types_are_refused_and_the_codec_falls_back(
    types: dict[str, Any], data: dict[str, Any] | None
) -> None:
    if data is None:
        circular: list[Any] = []
        circular.append(circular)
        data = {"j": circular}
    case = small_codec(types)
    with pytest.raises(Exception):  # anything: the codec falls back
        case.encode(data)
    assert outcome(case.codec.encode, data) == outcome(reference_codec(case).encode, data)


def test_a_subclass_instance_is_refused_and_encoded_by_the_reference() -> None:
    class Kitten(Cat):
        pass

    case = small_codec({"cat": Cat})
    with pytest.raises(Exception):
        case.encode({"cat": Kitten(name="Tom")})
    assert case.codec.encode({"cat": Kitten(name="Tom")}) == reference_encode(
        case.codec, {"cat": Kitten(name="Tom")}
    )


def test_naive_datetime_error_is_unchanged() -> None:
    case = small_codec({"when": datetime})
    with pytest.raises(EncodeError, match="field when: naive datetime"):
        case.codec.encode({"when": datetime(2024, 1, 1)})
    with pytest.raises(EncodeError, match="field when: naive datetime"):
        case.codec.write(io.BytesIO(), {"when": datetime(2024, 1, 1)}, case.codec.schema)


@pytest.mark.parametrize("case", TEST_TYPES, ids=lambda case: case.event.event_type)
def test_truncated_or_padded_bodies_are_refused(case: Compiled) -> None:
    body = check_exact(case, Values(1).data(case.event, case.annotations))
    reference = reference_codec(case)
    for cut in range(len(body)):
        with pytest.raises(Exception):
            case.decode(body[:cut])
        with pytest.raises((TruncatedDataError, SchemaMismatchError)):
            case.codec.decode(body[:cut])
        assert outcome(case.codec.decode, body[:cut]) == outcome(reference.decode, body[:cut])
    with pytest.raises(Exception):
        case.decode(body + b"\x00")
    with pytest.raises(SchemaMismatchError, match="left over"):
        case.codec.decode(body + b"\x00")


@pytest.mark.parametrize("seed", range(20))
def test_corrupted_bodies_decode_as_the_reference_or_are_refused(seed: int) -> None:
    rng = random.Random(seed)
    for case in [*TEST_TYPES, *CATALOG[:5]]:
        reference = reference_codec(case)
        data = Values(seed).data(case.event, case.annotations)
        body = bytearray(reference_encode(case.codec, data))
        for _ in range(30):
            corrupted = bytearray(body)
            for _ in range(rng.randint(1, 3)):
                corrupted[rng.randrange(len(corrupted))] = rng.randrange(256)
            check_decoded_as_the_reference_or_refused(case, bytes(corrupted), reference)


def check_decoded_as_the_reference_or_refused(
    case: Compiled, body: bytes, reference: EventCodec
) -> None:
    """The generated decoder gives the reference's result or refuses; the codec gives the
    reference codec's result or error."""
    try:
        expected = exact(reference_decode(case.codec, body))
    except Exception:
        with pytest.raises(Exception):
            case.decode(body)
    else:
        try:
            decoded = case.decode(body)
        except Exception:
            decoded = None  # refused: the codec falls back to the reference
        assert decoded is None or exact(decoded) == expected
    assert outcome(case.codec.decode, body) == outcome(reference.decode, body)


class Ids(BaseModel):
    id: uuid.UUID


UUID_TEXTS = [
    "12345678-1234-5678-1234-567812345678",
    "ABCDEF00-1234-5678-1234-567812345678",
    "12345678123456781234567812345678",
    "{12345678-1234-5678-1234-567812345678}",
    "urn:uuid:12345678-1234-5678-1234-567812345678",
    "+2345678-1234-5678-1234-567812345678",
    "1_345678-1234-5678-1234-567812345678",
    " 2345678-1234-5678-1234-567812345678",
    "0x345678-1234-5678-1234-567812345678",
    "1-2-3-4-5-6-7-8-9-0-1-2-3-4-5-6-7-8-9-0-1-2-3-4-5-6-7-8-9-0-1-2",
    "0000urn:-0000-0000-0000-000000000000",
    "not a uuid",
    "",
]


@pytest.mark.parametrize("text", UUID_TEXTS)
def test_uuid_texts_decode_as_uuid_uuid_parses_them_or_are_refused(text: str) -> None:
    # fastavro reads a uuid with uuid.UUID(text), whichever spelling the writer used.
    case = small_codec({"id": uuid.UUID, "ids": Ids})
    raw = text.encode()
    size = bytes(_long_bytes(len(raw)))
    check_decoded_as_the_reference_or_refused(case, size + raw + size + raw, reference_codec(case))


def test_non_minimal_and_negative_indexes_are_left_to_fastavro() -> None:
    case = small_codec({"f": Flavour, "maybe": int | None})
    # Enum index -1: fastavro reads the last symbol; union index 1 written in two bytes.
    for body in (b"\x01\x00", b"\x00\x82\x00\x02"):
        with pytest.raises(Exception):
            case.decode(body)
        assert exact(case.codec.decode(body)) == exact(reference_decode(case.codec, body))


# -- models built without validation, arguments not validated again ---------------------------

#: Signals of the test-only event types, for validate_decoded.
TEST_SIGNALS = {
    event_type: WorkflowSignal(event_type, data) for event_type, data in TEST_EVENTS.items()
}


def signal_of(case: Compiled) -> WorkflowSignal:
    event_type = case.event.event_type
    return TEST_SIGNALS.get(event_type) or WorkflowSignal.get_signal_by_type(event_type)


def consumed(signal: WorkflowSignal, codec: EventCodec, body: bytes) -> Any:
    """What the consumer gets: the body decoded, then validated (or the error)."""
    return outcome(lambda: signal.validate_decoded(codec.decode(body)))


def check_as_full_validation(
    case: Compiled, data: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``data`` encoded, then decoded and validated as the consumer does: exactly what the
    reference path (fastavro, every record and argument validated) gives. Both results."""
    signal = signal_of(case)
    body = case.codec.encode(data)
    decoded = case.codec.decode(body)
    assert isinstance(decoded, DecodedData)  # the generated decoder's result
    got = signal.validate_decoded(decoded)
    full = signal.validate_decoded(reference_codec(case).decode(body))
    assert exact(got) == exact(full)
    return got, full


def models_of(case: Compiled) -> dict[str, ModelType]:
    """Every model in the case's type tree, by class name."""
    found: dict[str, ModelType] = {}

    def visit(node: TypeNode) -> None:
        match node:
            case ModelType(cls=cls) if cls.__name__ not in found:
                found[cls.__name__] = node
                for spec in node.fields:
                    visit(spec.type)
            case ArrayType(items=inner) | MapType(values=inner):
                visit(inner)
            case UnionType(members=members):
                for member in members:
                    visit(member)

    for spec in case.event.fields:
        visit(spec.type)
    return found


@pytest.mark.parametrize("seed", SEEDS)
def test_catalog_data_decodes_as_full_validation_gives_it(seed: int) -> None:
    values = Values(seed)
    for case in CATALOG:
        data = signal_of(case).validate_data(**values.data(case.event, case.annotations))
        got, full = check_as_full_validation(case, data)
        assert got == full == data  # no floats in the catalog: no NaN


@pytest.mark.parametrize("case", TEST_TYPES, ids=lambda case: case.event.event_type)
@pytest.mark.parametrize("seed", SEEDS)
def test_every_node_kind_decodes_as_full_validation_gives_it(case: Compiled, seed: int) -> None:
    check_as_full_validation(case, Values(seed).data(case.event, case.annotations))


def test_which_models_are_built_without_validation() -> None:
    catalog = {name: m for case in CATALOG for name, m in models_of(case).items()}
    assert sorted(catalog) == [
        "CaseSnapshot",
        "ResourceRef",
        "TaskExecutionSnapshot",
        "UserInfo",
        "WorkItemSnapshot",
        "WorkflowExecutionSnapshot",
    ]
    assert all(model.constructible for model in catalog.values())
    assert all(spec.exact for case in CATALOG for spec in case.event.fields)
    tests = {name: m.constructible for case in TEST_TYPES for name, m in models_of(case).items()}
    assert tests == {
        "Cat": True,
        "Dog": True,
        "Bird": True,
        "Tree": True,
        "Aliased": True,  # by name, as the reference validates it
        "DefaultFirst": True,
        "Box": False,  # Decimal (its digits are checked), Literal (its values are)
        "StrictIds": False,  # strict mode
        "SeesInput": False,  # a field validator
        "InnerValidator": False,  # a validator in an annotation
    }
    not_exact = {spec.name for case in TEST_TYPES for spec in case.event.fields if not spec.exact}
    assert not_exact == {"amount", "kind"}


class Inner(BaseModel):
    name: str = ""


class Revalidated(BaseModel):
    model_config = ConfigDict(revalidate_instances="always")
    name: str = ""


class InnerChild(Inner):
    pass


class Tagged(BaseModel):
    kind: Literal["tagged"] = "tagged"


class OtherTagged(BaseModel):
    kind: Literal["other"] = "other"


class FieldValidated(BaseModel):
    name: str

    @field_validator("name")
    @classmethod
    def lower(cls, value: str) -> str:
        return value.lower()


class ModelValidated(BaseModel):
    name: str

    @model_validator(mode="after")
    def check(self) -> ModelValidated:
        return self


class PostInit(BaseModel):
    name: str

    def model_post_init(self, context: Any, /) -> None:
        pass


class Private(BaseModel):
    name: str
    _seen: int = PrivateAttr(default=0)


class OwnInit(BaseModel):
    name: str

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)


def model(class_name: str, config: ConfigDict | None = None, /, **fields: Any) -> type[BaseModel]:
    return create_model(class_name, __config__=config, **fields)


NOT_CONSTRUCTIBLE: list[tuple[str, type[BaseModel]]] = [
    ("a field validator", FieldValidated),
    ("a model validator", ModelValidated),
    ("a post-init hook", PostInit),
    ("a private attribute", Private),
    ("its own __init__", OwnInit),
    ("max_length", model("MaxLength", name=(str, Field(max_length=3)))),
    ("ge", model("AtLeast", count=(int, Field(ge=0)))),
    ("pattern", model("Pattern", name=(str, Field(pattern="^a")))),
    ("field strict", model("FieldStrict", name=(str, Field(strict=True)))),
    ("allow_inf_nan", model("Finite", ratio=(float, Field(allow_inf_nan=False)))),
    ("a literal", model("WithLiteral", kind=(Literal["a", "b"], "a"))),
    ("a decimal", model("WithDecimal", amount=(Money, Decimal(0)))),
    ("an aware datetime type", model("Aware", when=(AwareDatetime, ...))),
    (
        "a validator in a list",
        model("Lists", names=(list[Annotated[str, AfterValidator(str)]], [])),
    ),
    ("an inner model revalidated", model("Outer", inner=(Revalidated, ...))),
    ("a model and its subclass", model("Overlap", pet=(Inner | InnerChild, ...))),
    ("a discriminator", model("Tags", tag=(Tagged | OtherTagged, Field(discriminator="kind")))),
    ("strict mode", model("Strict", ConfigDict(strict=True), name=(str, ...))),
    ("stripped strings", model("Stripped", ConfigDict(str_strip_whitespace=True), name=(str, ...))),
    ("enum values", model("EnumValues", ConfigDict(use_enum_values=True), f=(Flavour, ...))),
    ("extra allowed", model("Extra", ConfigDict(extra="allow"), name=(str, ...))),
    ("no inf/nan", model("NoNan", ConfigDict(allow_inf_nan=False), ratio=(float, ...))),
]


@pytest.mark.parametrize(
    "cls", [cls for _, cls in NOT_CONSTRUCTIBLE], ids=[name for name, _ in NOT_CONSTRUCTIBLE]
)
def test_models_with_checks_avro_does_not_carry_are_validated(cls: type[BaseModel]) -> None:
    (spec,) = analyze_data("org.flowbus.test.compiled.checked.v1", {"m": cls}).fields
    assert isinstance(spec.type, ModelType)
    assert not spec.type.constructible


def test_plain_models_with_neutral_configuration_are_constructible() -> None:
    config = ConfigDict(frozen=True, extra="forbid", title="T", populate_by_name=True)
    for cls in (Inner, model("Configured", config, name=(str, Field(alias="n", default="")))):
        (spec,) = analyze_data("org.flowbus.test.compiled.plain.v1", {"m": cls}).fields
        assert isinstance(spec.type, ModelType) and spec.type.constructible and spec.exact


def test_arguments_with_checks_avro_does_not_carry_are_validated() -> None:
    data = {
        "plain": Inner,
        "maybe": Inner | None,
        "default": Annotated[int, Field(default=3)],
        "short": Annotated[str, Field(max_length=3)],
        "checked": Annotated[str, AfterValidator(str.lower)],
        "literal": Literal["a"],
        "revalidated": Revalidated,
    }
    event = analyze_data("org.flowbus.test.compiled.arguments.v1", data)
    assert {spec.name for spec in event.fields if spec.exact} == {"plain", "maybe", "default"}


def test_a_validator_still_runs_on_decoded_records() -> None:
    case = small_codec({"item": FieldValidated})
    body = case.codec.encode({"item": FieldValidated.model_construct(name="MiXed")})
    assert case.codec.decode(body)["item"] == FieldValidated(name="mixed")


def test_a_constraint_violated_in_a_record_is_still_a_decode_error() -> None:
    short = model("Short", name=(str, Field(max_length=3)))
    case = small_codec({"item": short})
    body = case.codec.encode({"item": short.model_construct(name="too long")})
    with pytest.raises(SchemaMismatchError, match="at most 3 characters"):
        case.codec.decode(body)
    assert outcome(case.codec.decode, body) == outcome(reference_codec(case).decode, body)


def test_a_constraint_violated_in_an_argument_is_still_invalid_data() -> None:
    data = {"code": Annotated[str, Field(max_length=3)], "item": Inner}
    signal = WorkflowSignal("org.flowbus.test.compiled.short_code.v1", data)
    case = Compiled(analyze_data(signal.event_type, data), data)
    body = case.codec.encode({"code": "too long", "item": Inner(name="x")})
    decoded = case.codec.decode(body)
    assert isinstance(decoded, DecodedData) and decoded.exact == {"item"}
    with pytest.raises(SenderValidationError, match=r"argument 'code'.*at most 3 characters"):
        signal.validate_decoded(decoded)


class Meta(BaseModel):
    meta: JsonValue = None


def nested_json(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@pytest.mark.parametrize("depth", [0, 100, 127, 128, 200, 254, 255, 256, 300, 600])
def test_json_nested_near_pydantics_limit_decodes_as_validation_gives_it(depth: int) -> None:
    # pydantic refuses JSON values nested 255 levels deep or more; decoded values shallow
    # enough are not validated again, deeper ones are.
    data = {"meta": Meta, "context": JsonValue}
    event_type = f"org.flowbus.test.compiled.nested_json_{depth}.v1"
    signal = WorkflowSignal(event_type, data)
    case = Compiled(analyze_data(event_type, data), data)
    reference = reference_codec(case)
    for meta, context in [(nested_json(depth), None), (None, nested_json(depth))]:
        body = case.codec.encode({"meta": Meta.model_construct(meta=meta), "context": context})
        assert consumed(signal, case.codec, body) == consumed(signal, reference, body)


def test_decoded_data_of_another_event_type_is_validated() -> None:
    signal = WorkflowSignal("org.flowbus.test.compiled.count.v1", {"n": int})
    vouched = type("DecodedData", (DecodedData,), {"event_type": "org.flowbus.other.x.y.v1"})
    vouched.exact = frozenset({"n"})
    assert signal.validate_decoded(vouched({"n": "3"})) == {"n": 3}
    assert signal.validate_decoded({"n": "3"}) == {"n": 3}


def test_data_resolved_by_fastavro_is_validated_in_full() -> None:
    # long -> double: fastavro's resolution path, whose values validation converts.
    signal = WorkflowSignal("org.flowbus.test.compiled.promoted.v1", {"x": float, "item": Cat})
    old = EventCodec(analyze_data(signal.event_type, {"x": int, "item": Cat}))
    new = EventCodec(analyze_data(signal.event_type, signal.data))
    decoded = new.decode(old.encode({"x": 3, "item": Cat()}), old.schema)
    assert type(decoded) is dict
    validated = signal.validate_decoded(decoded)
    assert exact(validated) == exact({"x": 3.0, "item": Cat(name="", lives=9)})


def test_the_unrolled_long_writes_what_fastavro_writes() -> None:
    # Every length from 1 to 10 bytes, both signs, the range's ends, and random values.
    rng = random.Random(7)
    values = [0, -1, 63, -64, 64, -65, (1 << 63) - 1, -(1 << 63)]
    values += [
        sign * ((1 << bits) + offset)
        for bits in range(64)
        for offset in (-1, 0, 1)
        for sign in (1, -1)
        if -(1 << 63) <= sign * ((1 << bits) + offset) < 1 << 63
    ]
    values += [rng.randrange(-(1 << 63), 1 << 63) >> rng.randrange(64) for _ in range(5000)]
    for value in values:
        out = io.BytesIO()
        fastavro.schemaless_writer(out, "long", value)
        assert _long(value) == out.getvalue() == bytes(_long_bytes(value)), value
    for outside in (1 << 63, -(1 << 63) - 1):
        with pytest.raises(_Unhandled):
            _long(outside)
