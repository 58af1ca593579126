"""Open edX signals as flowbus signals, so an Open edX service can consume its own bus with
flowbus's worker (dead letters, bounded retries) or send onto it with flowbus's producer.

:func:`signal_from_openedx` reads an ``OpenEdxPublicSignal`` (its ``event_type``,
``init_data`` and ``minor_version``) and defines the equivalent :class:`WorkflowSignal`
with the ``openedx`` wire profile (:mod:`flowbus.wire`). Each attrs data class becomes a
pydantic model of the same class name, so that both sides name the Avro records alike
(``<event type>.<ClassName>``). openedx-events and attrs are not imported: any object with
those attributes will do, so both stay optional dependencies.

Type mapping: ``str``, ``int``, ``float``, ``bool``, ``bytes``, ``datetime``, ``list[T]``,
``dict[str, T]`` stay as they are; attrs classes become models; an attribute whose default is
``None`` becomes ``T | None = None``; the types openedx-events writes as strings with its
custom serializers (``UUID``, opaque keys such as ``CourseKey``: classes with a
``from_string``) become ``str``, their text. Anything else raises
:class:`~flowbus.errors.UnsupportedDataTypeError` naming the field.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, create_model

from flowbus.errors import UnsupportedDataTypeError
from flowbus.signals import WorkflowSignal

__all__ = ["model_from_attrs", "signal_from_openedx"]

_SIMPLE = (str, int, float, bool, bytes, datetime)


def signal_from_openedx(
    openedx_signal: Any,
    *,
    key_path: str | None = None,
    wire: str = "openedx",
    doc: str | None = None,
) -> WorkflowSignal:
    """The flowbus signal of an ``OpenEdxPublicSignal``: same event type, data and minor
    version, ``key_path`` (the ``event_key_field`` its producers use) and wire profile.

    Raises :class:`~flowbus.errors.SignalDefinitionError` (or its
    :class:`~flowbus.errors.UnsupportedDataTypeError`) as a signal definition does.
    """
    event_type = getattr(openedx_signal, "event_type", None)
    init_data = getattr(openedx_signal, "init_data", None)
    if not isinstance(event_type, str) or not isinstance(init_data, Mapping):
        raise TypeError("expected an OpenEdxPublicSignal (event_type and init_data)")
    models: dict[type, type[BaseModel]] = {}
    data = {name: _flowbus_type(tp, name, models) for name, tp in init_data.items()}
    return WorkflowSignal(
        event_type,
        data,
        int(getattr(openedx_signal, "minor_version", 0) or 0),
        key_path=key_path,
        doc=doc,
        wire=wire,
    )


def model_from_attrs(cls: type) -> type[BaseModel]:
    """The pydantic model of an attrs data class (same name, module and fields)."""
    return _model(cls, cls.__name__, {})


def _flowbus_type(tp: Any, path: str, models: dict[type, type[BaseModel]]) -> Any:
    origin = typing.get_origin(tp)
    if origin is list:
        (item,) = typing.get_args(tp) or (None,)
        return list[_flowbus_type(item, f"{path}[]", models)]  # type: ignore[misc]
    if origin is dict:
        key, value = typing.get_args(tp) or (None, None)
        if key is not str:
            raise UnsupportedDataTypeError(path, "Open edX dict keys must be str")
        return dict[str, _flowbus_type(value, f"{path}{{}}", models)]  # type: ignore[misc]
    if origin is not None:
        raise UnsupportedDataTypeError(path, f"{tp!r} has no Open edX Avro mapping")
    if isinstance(tp, type):
        if tp in _SIMPLE:
            return tp
        if hasattr(tp, "__attrs_attrs__"):
            return _model(tp, path, models)
        if issubclass(tp, UUID) or callable(getattr(tp, "from_string", None)):
            return str  # openedx-events' custom serializers write these as their text
    raise UnsupportedDataTypeError(path, f"{tp!r} has no Open edX Avro mapping")


def _model(cls: type, path: str, models: dict[type, type[BaseModel]]) -> type[BaseModel]:
    found = models.get(cls)
    if found is not None:
        return found
    import attr  # present: the class is an attrs class

    fields: dict[str, Any] = {}
    nothing = attr.NOTHING
    for attribute in cls.__attrs_attrs__:  # type: ignore[attr-defined]
        where = f"{path}.{attribute.name}"
        tp = _flowbus_type(attribute.type, where, models)
        default = attribute.default
        if default is None:
            fields[attribute.name] = (tp | None, None)
        elif default is nothing:
            fields[attribute.name] = (tp, ...)
        elif hasattr(default, "factory"):  # attrs.Factory
            fields[attribute.name] = (tp, Field(default_factory=default.factory))
        else:
            fields[attribute.name] = (tp, default)
    model: type[BaseModel] = create_model(
        cls.__name__,
        __module__=cls.__module__,
        __doc__=cls.__doc__,
        __config__=ConfigDict(frozen=True),
        **fields,
    )
    models[cls] = model
    return model
