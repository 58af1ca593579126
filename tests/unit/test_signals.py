"""WorkflowSignal: definition, validation, sending, receivers, key paths."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from enum import IntEnum, StrEnum
from typing import Annotated, Any, Literal

import pytest
from pydantic import AfterValidator, BaseModel, Field, JsonValue, TypeAdapter

from flowbus import EventMetadata, SenderValidationError, WorkflowSignal
from flowbus.avro import schema_from_signal
from flowbus.errors import (
    ConfigurationError,
    DuplicateEventTypeError,
    KeyPathError,
    SignalDefinitionError,
    UnsupportedDataTypeError,
)
from flowbus.signals import EventReceiver, sender_name
from flowbus.testing import isolated_receivers


def unique_event_type(action: str = "happened") -> str:
    return f"org.flowbus.test.s{uuid.uuid4().hex[:12]}.{action}.v1"


class Status(StrEnum):
    OPEN = "open"
    DONE = "done"


class Item(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID
    status: Status
    deadline: datetime | None = None
    tags: list[str] = Field(default_factory=list)


class Holder(BaseModel):
    item: Item | None = None
    label: str = ""


ITEM_SIGNAL = WorkflowSignal(
    "org.flowbus.test.item.changed.v1",
    {"item": Item, "count": int, "note": str, "flag": bool, "extra": JsonValue},
    minor_version=2,
    key_path="item.case_id",
    doc="An item changed.",
)


def make_item(**overrides: Any) -> Item:
    values: dict[str, Any] = {"id": uuid.uuid4(), "case_id": uuid.uuid4(), "status": Status.OPEN}
    values.update(overrides)
    return Item(**values)


def send_item(**overrides: Any) -> list[tuple[Any, Any]]:
    kwargs: dict[str, Any] = {
        "item": make_item(),
        "count": 1,
        "note": "n",
        "flag": True,
        "extra": {},
    }
    kwargs.update(overrides)
    return ITEM_SIGNAL.send_event(**kwargs)


class Recorder:
    """A receiver that remembers its calls."""

    def __init__(self, response: Any = None) -> None:
        self.calls: list[tuple[Any, dict[str, Any]]] = []
        self.response = response

    def __call__(self, sender: Any, **kwargs: Any) -> Any:
        self.calls.append((sender, kwargs))
        return self.response


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with isolated_receivers():
        yield


# -- definition ------------------------------------------------------------------------------


def test_signal_describes_itself() -> None:
    assert ITEM_SIGNAL.event_type == "org.flowbus.test.item.changed.v1"
    assert ITEM_SIGNAL.major_version == 1
    assert ITEM_SIGNAL.minor_version == 2
    assert ITEM_SIGNAL.key_path == "item.case_id"
    assert ITEM_SIGNAL.doc == "An item changed."
    assert list(ITEM_SIGNAL.data) == ["item", "count", "note", "flag", "extra"]
    assert ITEM_SIGNAL.data["item"] is Item
    assert repr(ITEM_SIGNAL) == "<WorkflowSignal org.flowbus.test.item.changed.v1>"


def test_data_mapping_is_read_only() -> None:
    with pytest.raises(TypeError):
        ITEM_SIGNAL.data["other"] = str  # type: ignore[index]


@pytest.mark.parametrize(
    ("event_type", "reason"),
    [
        ("org.flowbus.test.thing.happened", "is not v<major>"),
        ("org.flowbus.test.thing.happened.v0", "is not v<major>"),
        ("org.flowbus.happened.v1", "at least 5"),
        ("org.flowbus.Test.thing.happened.v1", "part 'Test'"),
        ("org.flowbus.test.thing-x.happened.v1", "part 'thing-x'"),
        ("org.-flowbus.test.happened.v1", "prefix label '-flowbus'"),
        ("org..test.thing.happened.v1", "prefix label ''"),
        ("", "at least 5"),
    ],
)
def test_event_type_must_follow_the_scheme(event_type: str, reason: str) -> None:
    with pytest.raises(SignalDefinitionError, match=r"<reverse-DNS prefix>\.<subject>") as raised:
        WorkflowSignal(event_type, {"x": int})
    assert reason in str(raised.value)


@pytest.mark.parametrize(
    "event_type",
    [
        "com.acme.billing.invoice.paid.v1",
        "org.openedx.learning.course.enrollment.created.v1",
        "org.openedx.content_authoring.xblock.published.v2",
        "ch.my-canton2.permits.permit.submitted.v10",
        "org.flowbus.test.happened.v1",
    ],
)
def test_event_types_of_any_organisation(event_type: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    parts = event_type.split(".")
    unique = ".".join([*parts[:2], f"x{suffix}", *parts[2:]])  # one signal per event type
    signal = WorkflowSignal(unique, {"x": int})
    assert signal.event_type == unique
    assert signal.major_version == int(parts[-1][1:])


def test_major_version_comes_from_the_event_type() -> None:
    signal = WorkflowSignal(unique_event_type().replace(".v1", ".v12"), {"x": int})
    assert signal.major_version == 12


def test_duplicate_event_type_is_an_error() -> None:
    event_type = unique_event_type()
    first = WorkflowSignal(event_type, {"x": int})
    with pytest.raises(DuplicateEventTypeError, match=event_type):
        WorkflowSignal(event_type, {"y": str})
    assert WorkflowSignal.get_signal_by_type(event_type) is first


def test_unsupported_type_fails_at_definition_naming_the_field() -> None:
    class Opaque:
        pass

    event_type = unique_event_type()
    with pytest.raises(UnsupportedDataTypeError, match="'payload'") as caught:
        WorkflowSignal(event_type, {"fine": int, "payload": Opaque})
    assert caught.value.field == "payload"
    assert isinstance(caught.value, SignalDefinitionError)
    # the failed definition did not take the event type
    with pytest.raises(KeyError):
        WorkflowSignal.get_signal_by_type(event_type)


def test_unsupported_type_inside_a_model_is_named() -> None:
    class Loose(BaseModel):
        blob: object

    with pytest.raises(UnsupportedDataTypeError, match="blob"):
        WorkflowSignal(unique_event_type(), {"loose": Loose})


def test_the_wire_check_runs_when_only_the_signal_module_is_imported() -> None:
    # A fresh interpreter: the check is registered by the package, whatever is imported.
    script = """
import sys
from pydantic import BaseModel
from flowbus.signals import WorkflowSignal
from flowbus.errors import UnsupportedDataTypeError

assert "flowbus.avro" not in sys.modules, "importing the signal loaded the Avro layer"

class Loose(BaseModel):
    blob: object

try:
    WorkflowSignal("org.flowbus.test.fresh.defined.v1", {"loose": Loose})
except UnsupportedDataTypeError as exc:
    print(exc.field)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "loose.blob"


@pytest.mark.parametrize("name", ["sender", "signal", "metadata", "from_event_bus", "time"])
def test_reserved_argument_names_are_rejected(name: str) -> None:
    with pytest.raises(SignalDefinitionError, match=f"'{name}' is reserved"):
        WorkflowSignal(unique_event_type(), {name: str})


@pytest.mark.parametrize("name", ["_private", "with-dash", "1st", ""])
def test_argument_names_must_be_plain_identifiers(name: str) -> None:
    with pytest.raises(SignalDefinitionError, match="argument name"):
        WorkflowSignal(unique_event_type(), {name: str})


@pytest.mark.parametrize("minor", [-1, 1.5, True])
def test_minor_version_must_be_a_non_negative_int(minor: Any) -> None:
    with pytest.raises(SignalDefinitionError, match="minor_version"):
        WorkflowSignal(unique_event_type(), {"x": int}, minor_version=minor)


def test_avro_schema_is_derived_and_cannot_be_changed_through_the_copy() -> None:
    schema = schema_from_signal(ITEM_SIGNAL)
    assert schema["type"] == "record"
    assert schema["name"] == "org.flowbus.test.item.changed.v1"
    assert [f["name"] for f in schema["fields"]] == ["item", "count", "note", "flag", "extra"]
    schema["fields"].clear()
    assert len(schema_from_signal(ITEM_SIGNAL)["fields"]) == 5


# -- registry --------------------------------------------------------------------------------


def test_get_signal_by_type() -> None:
    assert WorkflowSignal.get_signal_by_type("org.flowbus.test.item.changed.v1") is ITEM_SIGNAL
    with pytest.raises(KeyError, match=re.escape("org.flowbus.test.nothing.here.v1")):
        WorkflowSignal.get_signal_by_type("org.flowbus.test.nothing.here.v1")


def test_all_signals_lists_definitions_in_order() -> None:
    first = WorkflowSignal(unique_event_type(), {"x": int})
    second = WorkflowSignal(unique_event_type(), {"x": int})
    signals = WorkflowSignal.all_signals()
    assert ITEM_SIGNAL in signals
    assert signals.index(first) < signals.index(second)


# -- validation ------------------------------------------------------------------------------


def test_validate_data_returns_validated_values() -> None:
    item_id, case_id = uuid.uuid4(), uuid.uuid4()
    data = ITEM_SIGNAL.validate_data(
        item={"id": str(item_id), "case_id": str(case_id), "status": "done"},
        count=3,
        note="x",
        flag=False,
        extra={"a": [1, 2]},
    )
    assert data["item"] == Item(id=item_id, case_id=case_id, status=Status.DONE)
    assert isinstance(data["item"], Item)
    assert data == {
        "item": data["item"],
        "count": 3,
        "note": "x",
        "flag": False,
        "extra": {"a": [1, 2]},
    }


def test_model_instances_pass_through_unchanged() -> None:
    item = make_item()
    data = ITEM_SIGNAL.validate_data(item=item, count=1, note="", flag=True, extra=None)
    assert data["item"] is item


def test_missing_argument_is_named() -> None:
    with pytest.raises(SenderValidationError, match="argument 'count': missing") as caught:
        ITEM_SIGNAL.send_event(item=make_item(), note="", flag=True, extra={})
    assert caught.value.argument == "count"


def test_unexpected_argument_is_named() -> None:
    with pytest.raises(SenderValidationError, match="argument 'colour': not declared"):
        send_item(colour="red")


@pytest.mark.parametrize(
    ("argument", "value", "reason"),
    [
        ("count", "many", "valid integer"),
        ("note", 5, "valid string"),
        ("flag", "perhaps", "valid boolean"),
        ("item", {"id": "nope"}, "id"),
        ("item", "an item", "expected Item"),
        ("extra", {1, 2}, "expected JsonValue"),
    ],
)
def test_wrong_type_is_named_with_the_reason(argument: str, value: Any, reason: str) -> None:
    with pytest.raises(SenderValidationError, match=f"argument '{argument}'") as caught:
        send_item(**{argument: value})
    assert caught.value.argument == argument
    assert reason in caught.value.reason


class Text(str):
    pass


class Level(IntEnum):
    HIGH = 3


JSON_SIGNAL = WorkflowSignal(unique_event_type("json"), {"extra": JsonValue})


@pytest.mark.parametrize(
    "value",
    [
        {"request_id": "r-1", "tenant": "t", "count": 3, "ratio": 0.5, "flag": True, "none": None},
        {},
        {"nan": float("nan")},
        {Text("key"): Text("value"), "level": Level.HIGH},  # subclasses become str and int
        {"nested": {"a": [1, {"b": None}]}},
        [1, "two", None],
        "text",
        Text("text"),
        7,
        Level.HIGH,
        None,
    ],
)
def test_json_values_validate_as_pydantic_validates_them(value: Any) -> None:
    expected = TypeAdapter(JsonValue).validate_python(value)
    validated = JSON_SIGNAL.validate_data(extra=value)["extra"]
    # repr tells the types apart (Level.HIGH from 3, Text from str) and nan from nan.
    assert repr(validated) == repr(expected)
    assert [type(part) for part in _parts(validated)] == [type(part) for part in _parts(expected)]
    if isinstance(value, dict):
        assert validated is not value  # a copy, as pydantic returns


def _parts(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [value, *(part for k, v in value.items() for part in (k, *_parts(v)))]
    if isinstance(value, list):
        return [value, *(part for item in value for part in _parts(item))]
    return [value]


@pytest.mark.parametrize(
    "value", [{1: "a"}, {"a": b"bytes"}, {"a": (1, 2)}, {"a": {1, 2}}, b"bytes", object()]
)
def test_json_values_pydantic_refuses_are_refused(value: Any) -> None:
    with pytest.raises(SenderValidationError, match="argument 'extra'"):
        JSON_SIGNAL.validate_data(extra=value)


def test_validation_error_does_not_repeat_the_value() -> None:
    with pytest.raises(SenderValidationError) as caught:
        send_item(note=["secret-token-123"])
    assert "secret-token-123" not in str(caught.value)


@pytest.mark.parametrize(
    ("argument", "value"),
    [("count", 0), ("flag", False), ("note", ""), ("extra", []), ("extra", None)],
)
def test_falsy_values_are_valid(argument: str, value: Any) -> None:
    receiver = Recorder()
    ITEM_SIGNAL.connect(receiver)
    send_item(**{argument: value})
    assert receiver.calls[0][1][argument] == value


def test_naive_datetimes_are_rejected_anywhere_in_the_data() -> None:
    with pytest.raises(SenderValidationError, match=r"item\.deadline: naive datetime"):
        send_item(item=make_item(deadline=datetime(2024, 1, 1, 12)))


class Stamped(BaseModel):
    at: datetime


class StampedItem(Item):
    """A subclass instance may carry datetimes its declared class does not have."""

    seen: datetime


class Plain(BaseModel):
    label: str


class StampedPlain(Plain):
    """Its declared base has no datetime field at all."""

    seen: datetime


def _as_datetime(value: str) -> Any:
    return datetime.fromisoformat(value)


class Validated(BaseModel):
    """A validator may turn a field declared as text into a datetime."""

    at: Annotated[str, AfterValidator(_as_datetime)]


class Tree(BaseModel):
    label: str
    at: datetime | None = None
    children: list[Tree] = Field(default_factory=list)


NESTED_SIGNAL = WorkflowSignal(
    "org.flowbus.test.nested.changed.v1",
    {
        "stamps": list[Stamped],
        "by_name": dict[str, Stamped],
        "anything": dict[str, list[Stamped]],
        "item": Item,
        "tree": Tree,
        "raw": JsonValue,
        "plain": Plain,
        "validated": Validated,
    },
)
NAIVE = datetime(2024, 1, 1, 12)
AWARE = datetime(2024, 1, 1, 12, tzinfo=UTC)


def nested_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "stamps": [Stamped(at=AWARE)],
        "by_name": {"a": Stamped(at=AWARE)},
        "anything": {"deep": [Stamped(at=AWARE)]},
        "item": make_item(deadline=AWARE),
        "tree": Tree(label="root", children=[Tree(label="leaf", at=AWARE)]),
        "raw": {"note": "json holds no datetimes"},
        "plain": Plain(label="p"),
        "validated": Validated(at="2024-01-01T12:00:00+00:00"),
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize(
    ("override", "path"),
    [
        ({"stamps": [Stamped(at=AWARE), Stamped(at=NAIVE)]}, "stamps.1.at"),
        ({"by_name": {"b": Stamped(at=NAIVE)}}, "by_name.b.at"),
        ({"anything": {"deep": [Stamped(at=NAIVE)]}}, "anything.deep.0.at"),
        ({"item": StampedItem(id=uuid.uuid4(), case_id=uuid.uuid4(), status="open", seen=NAIVE)},
         "item.seen"),
        ({"tree": Tree(label="r", children=[Tree(label="a"), Tree(label="b", at=NAIVE)])},
         "tree.children.1.at"),
        ({"plain": StampedPlain(label="p", seen=NAIVE)}, "plain.seen"),
        ({"validated": Validated(at="2024-01-01T12:00:00")}, "validated.at"),
    ],
)  # fmt: skip
def test_naive_datetimes_are_found_at_any_depth(override: dict[str, Any], path: str) -> None:
    assert NESTED_SIGNAL.validate_data(**nested_data())
    with pytest.raises(SenderValidationError, match=rf"{re.escape(path)}: naive datetime"):
        NESTED_SIGNAL.validate_data(**nested_data(**override))


def test_aware_datetimes_are_accepted() -> None:
    receiver = Recorder()
    ITEM_SIGNAL.connect(receiver)
    deadline = datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=1)))
    send_item(item=make_item(deadline=deadline))
    assert receiver.calls[0][1]["item"].deadline == deadline


def test_annotated_default_makes_an_argument_optional() -> None:
    signal = WorkflowSignal(
        unique_event_type(),
        {"name": str, "retries": Annotated[int, Field(default=3, description="How often.")]},
    )
    assert signal.validate_data(name="a") == {"name": "a", "retries": 3}
    assert signal.validate_data(name="a", retries=0) == {"name": "a", "retries": 0}
    with pytest.raises(SenderValidationError, match="argument 'name': missing"):
        signal.validate_data(retries=1)


def test_many_supported_types_validate() -> None:
    signal = WorkflowSignal(
        unique_event_type(),
        {
            "when": datetime,
            "day": date,
            "ident": uuid.UUID,
            "kind": Literal["a", "b"],
            "maybe": int | None,
            "names": list[str],
            "scores": dict[str, float],
            "raw": bytes,
        },
    )
    ident = uuid.uuid4()
    data = signal.validate_data(
        when=datetime(2024, 1, 1, tzinfo=UTC),
        day=date(2024, 1, 2),
        ident=str(ident),
        kind="b",
        maybe=None,
        names=[],
        scores={"x": 1.5},
        raw=b"\x00",
    )
    assert data["ident"] == ident
    with pytest.raises(SenderValidationError, match="argument 'kind'"):
        signal.validate_data(**{**data, "kind": "c"})


# -- sending ---------------------------------------------------------------------------------


def test_receiver_gets_sender_signal_metadata_and_data() -> None:
    receiver = Recorder(response="ok")
    ITEM_SIGNAL.connect(receiver)
    item = make_item()
    results = send_item(item=item, count=5, sender="caluma")
    assert results == [(receiver, "ok")]
    sender, kwargs = receiver.calls[0]
    assert sender == "caluma"
    assert kwargs["signal"] is ITEM_SIGNAL
    assert kwargs["from_event_bus"] is False
    metadata = kwargs["metadata"]
    assert isinstance(metadata, EventMetadata)
    assert metadata.event_type == ITEM_SIGNAL.event_type
    assert metadata.minorversion == 2
    assert kwargs["item"] is item
    assert kwargs["count"] == 5
    assert set(kwargs) == {"signal", "metadata", "from_event_bus", *ITEM_SIGNAL.data}


def test_send_event_uses_the_given_time() -> None:
    receiver = Recorder()
    ITEM_SIGNAL.connect(receiver)
    when = datetime(2023, 6, 1, 8, 0, tzinfo=UTC)
    send_item(time=when)
    assert receiver.calls[0][1]["metadata"].time == when


def test_naive_send_time_is_rejected() -> None:
    with pytest.raises(SenderValidationError, match="argument 'time'"):
        send_item(time=datetime(2023, 6, 1, 8, 0))


def test_generate_signal_metadata() -> None:
    when = datetime(2023, 6, 1, 8, 0, tzinfo=UTC)
    metadata = ITEM_SIGNAL.generate_signal_metadata(time=when)
    assert (metadata.event_type, metadata.minorversion, metadata.time) == (
        ITEM_SIGNAL.event_type,
        2,
        when,
    )
    assert ITEM_SIGNAL.generate_signal_metadata().id != metadata.id


def test_receivers_are_called_in_connection_order_and_results_listed() -> None:
    calls: list[str] = []

    def first(sender: Any, **kwargs: Any) -> str:
        calls.append("first")
        return "one"

    def second(sender: Any, **kwargs: Any) -> str:
        calls.append("second")
        return "two"

    ITEM_SIGNAL.connect(first)
    ITEM_SIGNAL.connect(second)
    assert send_item() == [(first, "one"), (second, "two")]
    assert calls == ["first", "second"]


def test_connecting_twice_calls_once_and_disconnect_stops_calls() -> None:
    receiver = Recorder()
    ITEM_SIGNAL.connect(receiver)
    ITEM_SIGNAL.connect(receiver)
    send_item()
    assert len(receiver.calls) == 1
    assert ITEM_SIGNAL.disconnect(receiver) is True
    assert ITEM_SIGNAL.disconnect(receiver) is False
    send_item()
    assert len(receiver.calls) == 1


def test_connect_rejects_non_callables() -> None:
    with pytest.raises(TypeError, match="callable"):
        ITEM_SIGNAL.connect("not a function")  # type: ignore[arg-type]


def test_no_receivers_returns_empty_list() -> None:
    assert send_item() == []


def test_receiver_exception_is_logged_and_returned(caplog: pytest.LogCaptureFixture) -> None:
    boom = RuntimeError("receiver broke")

    def failing(sender: Any, **kwargs: Any) -> None:
        raise boom

    after = Recorder(response="still called")
    ITEM_SIGNAL.connect(failing)
    ITEM_SIGNAL.connect(after)
    with caplog.at_level(logging.ERROR, logger="flowbus.signals"):
        results = send_item(note="private-note-value")
    assert results == [(failing, boom), (after, "still called")]
    [record] = caplog.records
    message = record.getMessage()
    event_id = after.calls[0][1]["metadata"].id
    assert str(event_id) in message
    assert ITEM_SIGNAL.event_type in message
    assert "failing" in message
    assert record.exc_info is not None and record.exc_info[1] is boom
    assert "private-note-value" not in message


def test_send_robust_false_propagates() -> None:
    def failing(sender: Any, **kwargs: Any) -> None:
        raise ValueError("nope")

    ITEM_SIGNAL.connect(failing)
    with pytest.raises(ValueError, match="nope"):
        send_item(send_robust=False)


def test_allow_send_event_failure_propagates() -> None:
    def failing(sender: Any, **kwargs: Any) -> None:
        raise ValueError("nope")

    signal = WorkflowSignal(unique_event_type(), {"x": int})
    signal.connect(failing)
    assert signal.send_event(x=1)[0][1].args == ("nope",)
    signal.allow_send_event_failure()
    assert signal.send_event_failure_allowed
    with pytest.raises(ValueError, match="nope"):
        signal.send_event(x=1)
    signal.allow_send_event_failure(False)
    assert isinstance(signal.send_event(x=1)[0][1], ValueError)


def test_a_required_receiver_raises_whatever_send_robust_says() -> None:
    def failing(sender: Any, **kwargs: Any) -> None:
        raise ValueError("nope")

    before, after, robust = Recorder("before"), Recorder("after"), Recorder("robust")
    signal = WorkflowSignal(unique_event_type(), {"x": int})
    signal.connect(before)
    signal.connect(failing, required=True)
    signal.connect(after)
    with pytest.raises(ValueError, match="nope"):
        signal.send_event(x=1)  # send_robust=True, the default
    assert (len(before.calls), len(after.calls)) == (1, 0)  # the ones after it: not called
    signal.connect(failing)  # connecting again updates `required`, adds nothing
    assert [r.required for r in signal.receivers] == [False, False, False]
    assert isinstance(dict(signal.send_event(x=1))[failing], ValueError)
    signal.connect(failing, required=True)
    assert signal.disconnect(failing) and not signal.disconnect(failing)
    signal.connect(robust)
    assert [response for _, response in signal.send_event(x=1)] == ["before", "after", "robust"]


class DataReceiver(EventReceiver):
    """An EventReceiver that remembers what it was given."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail = fail

    def receive(self, sender: Any, name: Any, signal: Any, metadata: Any, data: Any,
                from_event_bus: bool) -> Any:  # fmt: skip
        self.calls.append((sender, name, signal, metadata, data, from_event_bus))
        if self.fail:
            raise ValueError("receiver failed")
        return len(data)


def test_an_event_receiver_takes_the_validated_data_as_one_mapping() -> None:
    signal = WorkflowSignal(unique_event_type(), {"x": int, "y": str})
    plain, data_receiver = Recorder("plain"), DataReceiver()
    signal.connect(plain)
    signal.connect(data_receiver)
    assert [response for _, response in signal.send_event(sender=Item, x="1", y="a")] == [
        "plain",
        2,
    ]
    [(sender, name, passed_signal, metadata, data, from_event_bus)] = data_receiver.calls
    assert (sender, name, passed_signal) == (Item, sender_name(Item), signal)
    assert data == {"x": 1, "y": "a"} and from_event_bus is False
    assert metadata == plain.calls[0][1]["metadata"]  # the same event for both
    # Re-sent from the bus, and called as a function, as a consumer worker calls receivers:
    signal.send_event_with_custom_metadata(metadata, sender="billing", x=2, y="b")
    data_receiver(None, signal=signal, metadata=metadata, from_event_bus=True, x=3, y="c")
    assert [call[1:] for call in data_receiver.calls[1:]] == [
        ("billing", signal, metadata, {"x": 2, "y": "b"}, True),
        (None, signal, metadata, {"x": 3, "y": "c"}, True),
    ]


def test_an_event_receiver_fails_as_a_receiver_fails() -> None:
    signal = WorkflowSignal(unique_event_type(), {"x": int})
    failing = DataReceiver(fail=True)
    signal.connect(failing)
    assert isinstance(dict(signal.send_event(x=1))[failing], ValueError)  # robust: returned
    signal.connect(failing, required=True)
    with pytest.raises(ValueError, match="receiver failed"):
        signal.send_event(x=1)


def test_disabled_signal_does_nothing() -> None:
    receiver = Recorder()
    signal = WorkflowSignal(unique_event_type(), {"x": int})
    signal.connect(receiver)
    signal.disable()
    assert not signal.enabled
    assert signal.send_event(x="not even validated") == []
    metadata = signal.generate_signal_metadata()
    assert signal.send_event_with_custom_metadata(metadata, x=1) == []
    assert receiver.calls == []
    signal.enable()
    assert signal.send_event(x=1) == [(receiver, None)]


# -- custom metadata (the consumer path) -------------------------------------------------------


def test_custom_metadata_is_used_as_is_and_marks_the_bus() -> None:
    receiver = Recorder()
    ITEM_SIGNAL.connect(receiver)
    metadata = EventMetadata(
        event_type=ITEM_SIGNAL.event_type,
        minorversion=1,
        source="flowbus/other/app",
        sourcehost="elsewhere",
        sourcelib=(9, 9),
        time=datetime(2020, 1, 1, tzinfo=UTC),
    )
    item = make_item()
    results = ITEM_SIGNAL.send_event_with_custom_metadata(
        metadata, item=item, count=0, note="", flag=False, extra={}, sender="app.Thing"
    )
    assert results == [(receiver, None)]
    sender, kwargs = receiver.calls[0]
    assert sender == "app.Thing"
    assert kwargs["metadata"] is metadata
    assert kwargs["from_event_bus"] is True
    assert kwargs["item"] == item


def test_custom_metadata_validates_data() -> None:
    metadata = ITEM_SIGNAL.generate_signal_metadata()
    with pytest.raises(SenderValidationError, match="argument 'count'"):
        ITEM_SIGNAL.send_event_with_custom_metadata(
            metadata, item=make_item(), count="x", note="", flag=False, extra={}
        )


def test_custom_metadata_must_match_the_event_type() -> None:
    other = WorkflowSignal(unique_event_type(), {"x": int})
    with pytest.raises(SenderValidationError, match="does not match"):
        ITEM_SIGNAL.send_event_with_custom_metadata(
            other.generate_signal_metadata(), item=make_item(), count=1, note="", flag=1, extra=1
        )
    with pytest.raises(SenderValidationError, match="must be EventMetadata"):
        other.send_event_with_custom_metadata({"event_type": other.event_type}, x=1)  # type: ignore[arg-type]


# -- senders ---------------------------------------------------------------------------------


class WorkItemService:
    pass


def test_sender_name() -> None:
    assert sender_name(None) is None
    assert sender_name("pre_complete_work_item") == "pre_complete_work_item"
    assert sender_name(WorkItemService) == f"{__name__}.WorkItemService"
    assert sender_name(WorkItemService()) == f"{__name__}.WorkItemService"
    assert sender_name(42) == "builtins.int"


def test_receiver_filtered_by_class_sender() -> None:
    receiver = Recorder()
    ITEM_SIGNAL.connect(receiver, sender=WorkItemService)
    instance = WorkItemService()
    send_item(sender=WorkItemService)
    send_item(sender=instance)
    send_item(sender="someone.Else")
    send_item()
    assert [call[0] for call in receiver.calls] == [WorkItemService, instance]


def test_receiver_filtered_by_string_sender() -> None:
    receiver = Recorder()
    ITEM_SIGNAL.connect(receiver, sender="pre_complete_work_item")
    send_item(sender="pre_complete_work_item")
    send_item(sender="post_complete_work_item")
    assert [call[0] for call in receiver.calls] == ["pre_complete_work_item"]


def test_class_filter_matches_the_name_arriving_over_the_bus() -> None:
    receiver = Recorder()
    everyone = Recorder()
    ITEM_SIGNAL.connect(receiver, sender=WorkItemService)
    ITEM_SIGNAL.connect(everyone)
    metadata = ITEM_SIGNAL.generate_signal_metadata()
    data: dict[str, Any] = {"item": make_item(), "count": 1, "note": "", "flag": True, "extra": {}}
    ITEM_SIGNAL.send_event_with_custom_metadata(
        metadata, sender=sender_name(WorkItemService), **data
    )
    ITEM_SIGNAL.send_event_with_custom_metadata(metadata, sender="other.Sender", **data)
    assert [call[0] for call in receiver.calls] == [f"{__name__}.WorkItemService"]
    assert len(everyone.calls) == 2


def test_same_receiver_for_two_senders() -> None:
    receiver = Recorder()
    ITEM_SIGNAL.connect(receiver, sender="a")
    ITEM_SIGNAL.connect(receiver, sender="b")
    send_item(sender="a")
    send_item(sender="b")
    send_item(sender="c")
    assert [call[0] for call in receiver.calls] == ["a", "b"]
    assert ITEM_SIGNAL.disconnect(receiver, sender="a")
    send_item(sender="a")
    assert len(receiver.calls) == 2


# -- key paths -------------------------------------------------------------------------------


def test_resolve_key_reads_the_default_key_path() -> None:
    item = make_item()
    data = ITEM_SIGNAL.validate_data(item=item, count=1, note="", flag=True, extra={})
    assert ITEM_SIGNAL.resolve_key(data) == str(item.case_id)
    assert ITEM_SIGNAL.resolve_key(data, "item.status") == "open"
    assert ITEM_SIGNAL.resolve_key(data, "count") == "1"
    assert ITEM_SIGNAL.resolve_key(data, "item.deadline") is None


def test_resolve_key_without_any_path_is_none() -> None:
    signal = WorkflowSignal(unique_event_type(), {"x": int})
    assert signal.key_path is None
    assert signal.resolve_key({"x": 1}) is None


def test_resolve_key_through_optional_models_and_json() -> None:
    signal = WorkflowSignal(
        unique_event_type(),
        {"holder": Holder, "extra": JsonValue, "when": datetime},
        key_path="holder.item.id",
    )
    item = make_item()
    data = signal.validate_data(holder={"item": item}, extra={"case": 7}, when=datetime.now(UTC))
    assert signal.resolve_key(data) == str(item.id)
    assert signal.resolve_key(data, "extra.case") == "7"
    when = datetime(2024, 1, 1, tzinfo=UTC)
    assert signal.resolve_key({**data, "when": when}, "when") == when.isoformat()
    empty = signal.validate_data(holder={}, extra={}, when=when)
    assert signal.resolve_key(empty) is None
    with pytest.raises(KeyPathError, match="no 'case'"):
        signal.resolve_key(empty, "extra.case")
    with pytest.raises(KeyPathError, match="not a scalar"):
        signal.resolve_key(data, "holder.item")


def test_key_path_is_checked_at_definition() -> None:
    with pytest.raises(ConfigurationError, match="'case' is not a field of Item"):
        WorkflowSignal(unique_event_type(), {"item": Item}, key_path="item.case")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("item.case_id", None),
        ("item.status", None),
        ("item.deadline", None),
        ("count", None),
        ("extra.anything.below", None),
        ("missing", "'missing' is not a data argument"),
        ("item.nope", "'nope' is not a field of Item"),
        ("item", "leads to Item, not a scalar"),
        ("item.tags", "not a scalar"),
        ("item.tags.first", "cannot read 'first'"),
        ("count.value", "cannot read 'value' from int"),
        ("item..id", "not a dotted name"),
    ],
)
def test_validate_key_path(path: str, message: str | None) -> None:
    if message is None:
        ITEM_SIGNAL.validate_key_path(path)
    else:
        with pytest.raises(ConfigurationError, match=message):
            ITEM_SIGNAL.validate_key_path(path)


def test_validate_decoded_validates_like_validate_data() -> None:
    good = {"item": make_item(), "count": "3", "note": "n", "flag": True, "extra": {"a": 1}}
    assert ITEM_SIGNAL.validate_decoded(good) == ITEM_SIGNAL.validate_data(**good)
    assert ITEM_SIGNAL.validate_decoded(good)["count"] == 3
    with pytest.raises(SenderValidationError, match="argument 'count'"):
        ITEM_SIGNAL.validate_decoded({**good, "count": "three"})
    with pytest.raises(SenderValidationError, match="argument 'note': missing"):
        ITEM_SIGNAL.validate_decoded({k: v for k, v in good.items() if k != "note"})
    with pytest.raises(SenderValidationError, match="argument 'other': not declared"):
        ITEM_SIGNAL.validate_decoded({**good, "other": 1})


def test_receivers_for_follows_every_connect_and_disconnect() -> None:
    signal = WorkflowSignal(unique_event_type(), data={"name": str})

    def first(sender: object, **kwargs: Any) -> None: ...
    def second(sender: object, **kwargs: Any) -> None: ...

    assert signal.receivers_for("app.Service") == ()
    signal.connect(first)
    assert signal.receivers_for("app.Service") == (first,)
    signal.connect(second, sender="app.Other")
    assert signal.receivers_for("app.Service") == (first,)
    assert signal.receivers_for("app.Other") == (first, second)
    signal.disconnect(first)
    assert signal.receivers_for("app.Service") == ()
    assert signal.receivers_for("app.Other") == (second,)
