"""Naive datetimes in a signal's data: where validated data holds one, and which declared
types can hold one at all.

A datetime sent without a timezone means a different instant on every host, so sending
refuses it (see :meth:`flowbus.signals.WorkflowSignal.validate_data`). The walk runs over
every value of every event sent; it visits only what can hold a datetime.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Literal, get_args, get_origin
from uuid import UUID

from pydantic import BaseModel, JsonValue
from pydantic.fields import FieldInfo

__all__ = ["find_naive_datetime", "may_hold_datetime"]


#: Types whose values never hold a datetime: the walk below skips them without a call.
_LEAF_TYPES: frozenset[type] = frozenset(
    {str, int, float, bool, bytes, type(None), UUID, Decimal, date}
)


def find_naive_datetime(value: Any, path: str) -> str | None:
    """The path of the first naive datetime inside ``value``, or ``None``."""
    names = _DATETIME_FIELDS.get(type(value))  # a model seen before: straight to its fields
    keys = _naive_datetime_keys(value) if names is None else _naive_datetime_field(value, names)
    if keys is None:
        return None
    return ".".join([path, *(f"{key}" for key in reversed(keys))])


def _naive_datetime_keys(value: Any) -> list[Any] | None:
    """The keys leading to the first naive datetime in ``value`` (innermost first), or None.

    Runs over every value of every event sent, so it avoids work: a model's fields that
    cannot hold a datetime are not visited, exact type checks come before the
    slower ABC checks, and the path is built only for the naive datetime found.
    """
    cls = type(value)
    if cls is list or cls is tuple:
        items: Any = enumerate(value)
    elif cls is dict:
        items = value.items()
    elif isinstance(value, datetime):
        return [] if value.utcoffset() is None else None
    elif isinstance(value, BaseModel):
        return _naive_datetime_field(value, _datetime_fields(type(value)))
    elif isinstance(value, Mapping):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        item_cls = type(item)
        if item_cls in _LEAF_TYPES:
            continue
        if item_cls is datetime:
            if item.tzinfo is not UTC and item.utcoffset() is None:  # UTC: aware, sooner
                return [key]
            continue
        found = _naive_datetime_keys(item)
        if found is not None:
            found.append(key)
            return found
    return None


def _naive_datetime_field(model: BaseModel, names: tuple[str, ...]) -> list[Any] | None:
    """:func:`_naive_datetime_keys` of a model's fields ``names``, read from its
    ``__dict__`` (where a model keeps its field values) without a generator per model."""
    fields = model.__dict__
    for name in names:
        item = fields[name] if name in fields else getattr(model, name)
        item_cls = type(item)
        if item_cls is datetime:
            if item.tzinfo is not UTC and item.utcoffset() is None:  # UTC: aware, sooner
                return [name]
            continue
        if item_cls in _LEAF_TYPES:
            continue
        found = _naive_datetime_keys(item)
        if found is not None:
            found.append(name)
            return found
    return None


#: :func:`_datetime_fields` of the models seen so far (bounded: models can be made on the
#: fly).
_DATETIME_FIELDS: dict[type, tuple[str, ...]] = {}
_DATETIME_FIELDS_MAX = 1024


def _datetime_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of ``model`` whose values may hold a datetime (every field, when the
    model has validators: they may return anything)."""
    names = _DATETIME_FIELDS.get(model)
    if names is None:
        names = _find_datetime_fields(model)
        if len(_DATETIME_FIELDS) < _DATETIME_FIELDS_MAX:
            _DATETIME_FIELDS[model] = names
    return names


def _find_datetime_fields(model: type[BaseModel]) -> tuple[str, ...]:
    decorators = model.__pydantic_decorators__
    if (
        decorators.validators
        or decorators.field_validators
        or decorators.root_validators
        or decorators.model_validators
    ):
        return tuple(model.model_fields)
    return tuple(
        name
        for name, info in model.model_fields.items()
        if info.metadata or may_hold_datetime(info.annotation)
    )


def may_hold_datetime(tp: Any) -> bool:
    """Whether a value validated as ``tp`` can hold a datetime; ``True`` when unsure.

    Any model can: an instance of a subclass is kept as it is, with the fields it adds.
    So can a type with validators in its annotation (``Annotated[str, AfterValidator(f)]``).
    """
    while get_origin(tp) is Annotated:
        tp, *metadata = get_args(tp)
        if not all(isinstance(item, FieldInfo) for item in metadata):
            return True
    if tp is JsonValue:
        return False  # validated JSON holds only JSON types
    origin = get_origin(tp)
    if origin is Literal:
        return False
    if origin is not None:
        return any(arg is not Ellipsis and may_hold_datetime(arg) for arg in get_args(tp))
    if not isinstance(tp, type):
        return tp is not None
    if issubclass(tp, datetime | BaseModel):
        return True
    return not issubclass(tp, (*_LEAF_TYPES, Enum))  # a datetime is a date: checked first
