"""An example payload for a signal: one JSON value per data argument, valid for the signal.

Built from each argument's JSON Schema as pydantic derives it, so the constraints pydantic
enforces are the ones honoured: ``minimum``/``maximum`` (exclusive too) and ``multipleOf``,
string lengths and ``pattern`` (a string is generated from the regular expression), array
lengths, enums, literals, formats (UUID, date, date-time, ...). Optional fields are filled
too, so the example shows the whole shape. The result is checked with the signal's own
validation before it is returned: what :func:`example_payload` gives, ``flowbus produce
TYPE --data`` accepts.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

if TYPE_CHECKING:
    from flowbus.signals import WorkflowSignal

__all__ = ["example_payload", "example_value"]

#: Values of string formats (fixed, so that examples are reproducible).
_FORMATS = {
    "uuid": "0b6a3e4e-6a4c-4c1e-9a59-3c1d2e5f7a10",
    "date-time": "2026-01-15T09:30:00Z",
    "date": "2026-01-15",
    "time": "09:30:00",
    "duration": "PT1H",
    "email": "alice@example.com",
    "uri": "https://example.com/",
    "ipv4": "192.0.2.10",
    "ipv6": "2001:db8::10",
    "binary": "example",
}
_TEXT = "example"
#: An enum value that stands for "a state added later" is a poor example.
_PLACEHOLDER_VALUES = frozenset({"unknown"})


def example_payload(signal: WorkflowSignal) -> dict[str, Any]:
    """A JSON object of ``signal``'s data arguments that its validation accepts.

    Raises :class:`~flowbus.errors.SenderValidationError` (naming the argument) when the
    generated value does not validate: a constraint this generator cannot satisfy.
    """
    payload = {
        name: example_value(TypeAdapter(tp).json_schema()) for name, tp in signal.data.items()
    }
    signal.validate_data(**payload)
    return payload


def example_value(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> Any:
    """A value valid for the JSON Schema ``schema`` (``$defs`` resolved from its root)."""
    defs = {**(defs or {}), **schema.get("$defs", {})}
    if "$ref" in schema:
        return example_value(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if schema.get("examples"):
        return schema["examples"][0]
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        values = schema["enum"]
        usable = [v for v in values if str(v).lower() not in _PLACEHOLDER_VALUES]
        return (usable or values)[0]
    for combined in ("anyOf", "oneOf", "allOf"):
        if combined in schema:
            branches = [b for b in schema[combined] if b.get("type") != "null"]
            return example_value((branches or schema[combined])[0], defs)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        return _object(schema, defs)
    if kind == "array":
        return _array(schema, defs)
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        return int(_number(schema, 1))
    if kind == "number":
        return _number(schema, 1.5)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return {}  # any JSON value (pydantic.JsonValue): an empty object is one


def _object(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    properties = schema.get("properties", {})
    value = {name: example_value(sub, defs) for name, sub in properties.items()}
    extra = schema.get("additionalProperties")
    if not properties and isinstance(extra, dict):
        value["key"] = example_value(extra, defs)
    return value


def _array(schema: dict[str, Any], defs: dict[str, Any]) -> list[Any]:
    count = max(1, schema.get("minItems", 0))
    if "maxItems" in schema:
        count = min(count, schema["maxItems"])
    if "prefixItems" in schema:
        return [example_value(item, defs) for item in schema["prefixItems"]]
    item = example_value(schema.get("items", {}), defs)
    return [item] * count


def _string(schema: dict[str, Any]) -> str:
    if schema.get("format") in _FORMATS:
        return _FORMATS[schema["format"]]
    text = _matching(schema["pattern"]) if "pattern" in schema else _TEXT
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    if "pattern" not in schema:
        text = text.ljust(low, "x")
        if high is not None:
            text = text[:high]
    return text


def _number(schema: dict[str, Any], preferred: float) -> float:
    low = schema.get("minimum")
    high = schema.get("maximum")
    step = 1 if schema.get("type") == "integer" else 0.5
    if "exclusiveMinimum" in schema:
        low = schema["exclusiveMinimum"] + step
    if "exclusiveMaximum" in schema:
        high = schema["exclusiveMaximum"] - step
    value = preferred
    if low is not None and value < low:
        value = low
    if high is not None and value > high:
        value = high
    multiple = schema.get("multipleOf")
    if multiple:
        value = -(-value // multiple) * multiple  # the next multiple at or above
    return value


# --- a string matching a regular expression ---------------------------------------------

try:  # the parser of the re module (sre_parse before Python 3.11 renamed it)
    from re import _parser as _sre  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    import sre_parse as _sre

_CATEGORY_CHARS = {"CATEGORY_DIGIT": "1", "CATEGORY_WORD": "a", "CATEGORY_SPACE": " "}


def _matching(pattern: str) -> str:
    """A short string that ``re.search(pattern, ...)`` matches (``example`` if none found)."""
    try:
        text = _generate(_sre.parse(pattern))
    except (re.error, _Unsupported):
        return _TEXT
    return text if re.search(pattern, text) else _TEXT


class _Unsupported(Exception):
    pass


def _generate(parsed: Any) -> str:
    out: list[str] = []
    for op, arg in parsed:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(arg))
        elif name == "NOT_LITERAL":
            out.append("a" if chr(arg) != "a" else "b")
        elif name == "ANY":
            out.append("a")
        elif name == "IN":
            out.append(_in_set(arg))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, _high, sub = arg
            out.append(_generate(sub) * low)
        elif name == "SUBPATTERN":
            out.append(_generate(arg[-1]))
        elif name == "ATOMIC_GROUP":
            out.append(_generate(arg))
        elif name == "BRANCH":
            out.append(_generate(arg[1][0]))
        elif name == "AT":
            continue
        else:
            raise _Unsupported(name)
    return "".join(out)


def _in_set(items: Any) -> str:
    if items and str(items[0][0]) == "NEGATE":
        raise _Unsupported("negated set")
    op, arg = items[0]
    name = str(op)
    if name == "LITERAL":
        return chr(arg)
    if name == "RANGE":
        return chr(arg[0])
    if name == "CATEGORY" and str(arg) in _CATEGORY_CHARS:
        return _CATEGORY_CHARS[str(arg)]
    raise _Unsupported(name)
