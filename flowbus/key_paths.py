"""Key paths: the dotted path into a signal's data whose value becomes the Kafka key.

A path is checked against the declared types when the signal (or a route) names it, and
resolved in the validated data of each event sent.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from uuid import UUID

from pydantic import BaseModel, JsonValue

from flowbus.errors import KeyPathError

__all__ = ["SignalKeyPaths", "type_name"]

_SCALAR_KEY_TYPES = (str, int, float, Decimal, UUID, date, Enum)


class SignalKeyPaths:
    """The key path methods of :class:`~flowbus.signals.WorkflowSignal`."""

    # Set by WorkflowSignal.
    _event_type: str
    _data: Mapping[str, Any]
    _key_path: str | None

    def validate_key_path(self, path: str) -> None:
        """Check that ``path`` can lead to a scalar in this signal's declared data.

        Raises :class:`~flowbus.errors.ConfigurationError` (a ``KeyPathError``) naming the
        step that does not exist. Parts below a ``dict`` or ``JsonValue`` cannot be checked
        statically and are checked when the key is resolved.
        """
        segments = path.split(".") if isinstance(path, str) else []
        if not segments or not all(segments):
            raise KeyPathError(f"{self._event_type}: key path {path!r} is not a dotted name")
        first, rest = segments[0], segments[1:]
        if first not in self._data:
            raise KeyPathError(
                f"{self._event_type}: key path '{path}': '{first}' is not a data argument "
                f"(arguments: {', '.join(self._data) or 'none'})"
            )
        _check_key_type(self._data[first], rest, path, self._event_type)

    def resolve_key(self, data: Mapping[str, Any], path: str | None = None) -> str | None:
        """The value at ``path`` (default: :attr:`key_path`) in validated data, as a string.

        ``None`` when there is no path, or when the value (or a step on the way) is ``None``.
        Enums give their value, datetimes and dates their ISO form, UUIDs their canonical form.
        """
        path = path if path is not None else self._key_path
        if path is None:
            return None
        # Per event: plain dicts and models seen before take the short way; anything else
        # (and every error) takes the walk below.
        current: Any = data
        for segment in _SEGMENTS.get(path) or _path_segments(path):
            cls = type(current)
            if cls is dict and segment in current:
                current = current[segment]
            elif segment in _FIELDS.get(cls, ()):
                current = getattr(current, segment)
            else:
                break
        else:
            return _key_string(current, path, self._event_type)
        return self._resolve_key_slowly(data, path)

    def _resolve_key_slowly(self, data: Mapping[str, Any], path: str) -> str | None:
        current: Any = data
        for index, segment in enumerate(_path_segments(path)):
            if current is None:
                return None
            if type(current) is not dict and isinstance(current, BaseModel):
                if segment not in _field_names(type(current)):
                    raise KeyPathError(
                        f"{self._event_type}: key path '{path}': '{segment}' is not a field "
                        f"of {type(current).__name__}"
                    )
                current = getattr(current, segment)
            elif isinstance(current, Mapping):
                if segment not in current:
                    raise KeyPathError(
                        f"{self._event_type}: key path '{path}': no '{segment}' in the data"
                    )
                current = current[segment]
            else:
                where = ".".join(path.split(".")[:index]) or "the data"
                raise KeyPathError(
                    f"{self._event_type}: key path '{path}': cannot read '{segment}' "
                    f"from {where} ({type(current).__name__})"
                )
        return _key_string(current, path, self._event_type)


#: Bounds of the caches below (paths come from the configuration, models from the code,
#: but both could be made on the fly).
_CACHED_MAX = 1024
#: The segments of each key path resolved so far.
_SEGMENTS: dict[str, tuple[str, ...]] = {}
#: The field names of each model class a key path went through so far.
_FIELDS: dict[type, frozenset[str]] = {}


def _path_segments(path: str) -> tuple[str, ...]:
    segments = _SEGMENTS.get(path)
    if segments is None:
        segments = tuple(path.split("."))
        if len(_SEGMENTS) < _CACHED_MAX:
            _SEGMENTS[path] = segments
    return segments


def _field_names(model: type[BaseModel]) -> frozenset[str]:
    names = _FIELDS.get(model)
    if names is None:
        names = frozenset(model.model_fields)
        if len(_FIELDS) < _CACHED_MAX:
            _FIELDS[model] = names
    return names


def type_name(tp: Any) -> str:
    """How a declared type is named in messages (``int``, ``list[str]``)."""
    if isinstance(tp, type):
        return tp.__name__
    return repr(tp).replace("typing.", "")


def _unwrap(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _is_free_form(tp: Any) -> bool:
    return tp is JsonValue or tp is Any or get_origin(tp) in (dict, Mapping)


def _check_key_type(tp: Any, segments: list[str], path: str, event_type: str) -> None:
    tp = _unwrap(tp)
    if get_origin(tp) in (Union, types.UnionType):
        for member in get_args(tp):
            if member is not type(None):
                _check_key_type(member, segments, path, event_type)
        return
    if _is_free_form(tp):
        return
    if not segments:
        if get_origin(tp) is Literal or (
            isinstance(tp, type) and issubclass(tp, _SCALAR_KEY_TYPES)
        ):
            return
        raise KeyPathError(
            f"{event_type}: key path '{path}' leads to {type_name(tp)}, not a scalar value"
        )
    segment, rest = segments[0], segments[1:]
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        field = tp.model_fields.get(segment)
        if field is None:
            raise KeyPathError(
                f"{event_type}: key path '{path}': '{segment}' is not a field of {tp.__name__}"
            )
        _check_key_type(field.annotation, rest, path, event_type)
        return
    raise KeyPathError(
        f"{event_type}: key path '{path}': cannot read '{segment}' from {type_name(tp)}"
    )


def _key_string(value: Any, path: str, event_type: str) -> str | None:
    cls = type(value)
    if cls is UUID or cls is str:  # the usual keys first: ids
        return str(value)
    if value is None:
        return None
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, date):  # datetime is a date too
        return value.isoformat()
    if isinstance(value, str | int | float | Decimal | UUID):
        return str(value)
    raise KeyPathError(
        f"{event_type}: key path '{path}' leads to {type(value).__name__}, not a scalar value"
    )
