"""``flowbus signals example``: a payload each signal's own validation accepts."""

from __future__ import annotations

import enum
import json
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, Field

import flowbus.catalog
from flowbus.signal_examples import example_payload, example_value
from flowbus.signals import WorkflowSignal
from flowbus.signals_cli import signals

# The catalog's own signals: other test modules define signals of their own, and which of
# them a run has imported depends on the tests selected.
CATALOG = sorted(
    {
        signal.event_type
        for signal in (getattr(flowbus.catalog, name) for name in flowbus.catalog.__all__)
        if isinstance(signal, WorkflowSignal)
    }
)


class Colour(enum.StrEnum):
    UNKNOWN = "unknown"
    RED = "red"


class Line(BaseModel):
    sku: Annotated[str, Field(pattern=r"^[A-Z]{3}-\d{4}$")]
    quantity: Annotated[int, Field(ge=5, le=9)]
    ratio: Annotated[float, Field(gt=0, lt=1)]
    pack: Annotated[int, Field(multiple_of=7, ge=10)]


class Order(BaseModel):
    id: UUID
    code: Annotated[str, Field(min_length=12, max_length=20)]
    short: Annotated[str, Field(max_length=3)]
    lines: Annotated[list[Line], Field(min_length=2)]
    colour: Colour
    kind: Literal["retail", "wholesale"]
    placed_at: datetime
    due: date
    amount: Annotated[Decimal, Field(max_digits=8, decimal_places=2)]
    note: str | None = None
    labels: dict[str, int] = Field(default_factory=dict)


CONSTRAINED = WorkflowSignal(
    "org.flowbus.test.examples.order_placed.v1",
    {"order": Order, "attachment": bytes, "tags": list[str], "urgent": bool},
)


@pytest.mark.parametrize("event_type", CATALOG)
def test_every_catalog_example_validates_as_produce_would(event_type):
    result = CliRunner().invoke(signals, ["example", event_type])

    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)  # what `produce --data "$(...)"` receives
    signal = WorkflowSignal.get_signal_by_type(event_type)
    validated = signal.validate_data(**payload)
    assert set(validated) == set(signal.data)


def test_the_catalog_is_covered():
    assert len(CATALOG) > 30


def test_constraints_are_honoured():
    payload = example_payload(CONSTRAINED)

    order = payload["order"]
    assert len(order["lines"]) == 2
    line = order["lines"][0]
    assert re.fullmatch(r"[A-Z]{3}-\d{4}", line["sku"])
    assert 5 <= line["quantity"] <= 9
    assert 0 < line["ratio"] < 1
    assert line["pack"] % 7 == 0 and line["pack"] >= 10
    assert 12 <= len(order["code"]) <= 20 and len(order["short"]) <= 3
    assert order["colour"] == "red"  # not the placeholder state
    assert order["kind"] == "retail"
    assert order["note"] is not None  # optional fields are shown too
    assert isinstance(order["labels"], dict) and order["labels"]
    assert isinstance(payload["attachment"], str) and payload["urgent"] is True
    validated = CONSTRAINED.validate_data(**json.loads(json.dumps(payload)))
    assert validated["order"].placed_at.tzinfo is not None


def test_an_unsatisfiable_constraint_is_an_error_naming_the_argument():
    impossible = WorkflowSignal(
        "org.flowbus.test.examples.impossible.v1",
        {"code": Annotated[str, Field(pattern=r"^[^a-z]{3}$", max_length=2)]},
    )

    result = CliRunner().invoke(signals, ["example", impossible.event_type])

    assert result.exit_code == 1
    assert "could not build a valid example" in result.output and "code" in result.output


def test_unknown_event_type_suggests_close_ones():
    result = CliRunner().invoke(signals, ["example", "org.flowbus.caluma.case.post_complet.v1"])

    assert result.exit_code == 1
    assert "Did you mean: org.flowbus.caluma.case.post_complete.v1" in result.output


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string", "pattern": "^ab+c$"}, "abc"),
        ({"type": "string", "pattern": "^(x|yz)[0-9]{2}$"}, "x00"),
        ({"type": "integer", "exclusiveMinimum": 3}, 4),
        ({"type": "array", "items": {"type": "boolean"}, "maxItems": 0}, []),
        ({"anyOf": [{"type": "null"}, {"type": "number", "maximum": -2}]}, -2),
        ({}, {}),
    ],
)
def test_example_values(schema, expected):
    assert example_value(schema) == expected
