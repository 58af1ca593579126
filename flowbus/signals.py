"""Typed workflow signals: the in-process core of flowbus.

A :class:`WorkflowSignal` is one kind of event. It declares the event type, the data its
senders pass (each keyword argument's name and type), and the key path that decides the
Kafka partition once the event travels. Sending validates the data, creates the event's
:class:`~flowbus.metadata.EventMetadata` and calls the connected receivers in the order they
were connected.

Event types follow ``<reverse-DNS prefix>.<subject>.<action>.v<major>``, any organisation's:
``org.flowbus.caluma.work_item.post_complete.v1``, ``com.acme.billing.invoice.paid.v1``,
``org.openedx.learning.course.enrollment.created.v1``. The prefix is the organisation's
domain reversed (two labels), ``subject`` what the event is about (one or more dotted
parts), ``action`` what happened, and ``major`` changes only for incompatible data changes
(compatible additions bump the signal's ``minor_version``).

The signal knows its data, not the wire: it names its wire profile (``wire=``, see
:mod:`flowbus.wire`), and the Avro layer derives schemas from it
(:func:`flowbus.avro.schema_from_signal`). Whether the profile can carry the data is checked
when the signal is defined, by the definition checks (:mod:`flowbus.signal_checks`).

This module is the public one: the definition, the registry and the data's validation are
here; dispatch (receivers, sending) is in :mod:`flowbus.signal_dispatch`, key paths in
:mod:`flowbus.key_paths`, the naive-datetime walk in :mod:`flowbus.naive_datetimes`.
"""

from __future__ import annotations

import re
import threading
import types
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, ClassVar, get_args, get_origin

from pydantic import JsonValue, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from flowbus.errors import (
    DuplicateEventTypeError,
    SenderValidationError,
    SignalDefinitionError,
    UnsupportedDataTypeError,
)
from flowbus.key_paths import SignalKeyPaths, type_name
from flowbus.metadata import EventMetadata, new_metadata
from flowbus.naive_datetimes import find_naive_datetime, may_hold_datetime
from flowbus.signal_checks import definition_checks
from flowbus.signal_dispatch import (
    EventReceiver,
    Receiver,
    ReceiverFunction,
    SignalDispatch,
    callable_name,
    sender_name,
)

__all__ = [
    "EVENT_TYPE_PATTERN",
    "RESERVED_ARGUMENT_NAMES",
    "DecodedData",
    "EventReceiver",
    "Receiver",
    "ReceiverFunction",
    "WorkflowSignal",
    "callable_name",
    "sender_name",
]

#: ``<prefix>.<subject>.<action>.v<major>``: the prefix two DNS labels (lower case, digits,
#: inner ``-``), the subject one or more parts, each part lower case with digits and ``_``.
EVENT_TYPE_PATTERN = re.compile(
    r"^(?P<prefix>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)"
    r"\.(?P<subject>[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*)"
    r"\.(?P<action>[a-z][a-z0-9_]*)\.v(?P<major>[1-9][0-9]*)$"
)
_EVENT_TYPE_FORM = "'<reverse-DNS prefix>.<subject>.<action>.v<major>'"
_PART = re.compile(r"^[a-z][a-z0-9_]*$")
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")

#: Names a signal's data may not use: receivers and ``send_event`` take these themselves.
RESERVED_ARGUMENT_NAMES = frozenset(
    {"sender", "signal", "metadata", "from_event_bus", "send_robust", "time"}
)

_DATA_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class DecodedData(dict[str, Any]):
    """Keyword arguments decoded from the bus, with the arguments their decoder vouches for.

    A decoder returns an instance of a subclass setting :attr:`event_type` and :attr:`exact`:
    the arguments whose values are exactly what validating them against their declared
    types returns (see :attr:`flowbus.avro.schema.FieldSpec.exact`).
    :meth:`WorkflowSignal.validate_decoded` does not validate those again.
    """

    __slots__ = ()

    event_type: ClassVar[str] = ""
    exact: ClassVar[frozenset[str]] = frozenset()


def _event_type_problem(event_type: object) -> str:
    """What is wrong with an event type the pattern refused (never more than its parts)."""
    if not isinstance(event_type, str):
        return f"it is a {type(event_type).__name__}, not a str"
    parts = event_type.split(".")
    if len(parts) < 5:
        return f"{len(parts)} dotted parts; at least 5 (prefix of 2, subject, action, version)"
    if not re.fullmatch(r"v[1-9][0-9]*", parts[-1]):
        return f"the last part '{parts[-1]}' is not v<major> (major >= 1)"
    for label in parts[:2]:
        if not _LABEL.match(label):
            return f"prefix label '{label}' is not a lower-case DNS label"
    for part in parts[2:-1]:
        if not _PART.match(part):
            return f"part '{part}' is not lower case letters, digits and '_' starting with a letter"
    return "it does not match"


class WorkflowSignal(SignalDispatch, SignalKeyPaths):
    """One kind of workflow event, with typed data.

    ``data`` maps each keyword argument a sender passes to its type: pydantic models,
    enums with string values, ``str``, ``int``, ``float``, ``bool``, ``bytes``, ``Decimal``,
    ``UUID``, ``date``, timezone-aware ``datetime``, ``Literal`` strings, ``Optional``,
    ``list``, ``dict[str, T]``, and ``pydantic.JsonValue`` for free-form JSON. A type flowbus
    cannot carry raises :class:`~flowbus.errors.UnsupportedDataTypeError` here, naming the
    field. ``key_path`` is a dotted path into the data (``"work_item.case_id"``) whose value
    becomes the Kafka message key.
    """

    _registry: ClassVar[dict[str, WorkflowSignal]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        event_type: str,
        data: Mapping[str, Any],
        minor_version: int = 0,
        *,
        key_path: str | None = None,
        doc: str | None = None,
        wire: str = "flowbus",
    ) -> None:
        match = EVENT_TYPE_PATTERN.match(event_type) if isinstance(event_type, str) else None
        if match is None:
            raise SignalDefinitionError(
                f"event type {event_type!r} does not follow {_EVENT_TYPE_FORM} "
                f"(e.g. 'com.acme.billing.invoice.paid.v1'): {_event_type_problem(event_type)}"
            )
        if isinstance(minor_version, bool) or not isinstance(minor_version, int):
            raise SignalDefinitionError(f"{event_type}: minor_version must be an int")
        if minor_version < 0:
            raise SignalDefinitionError(f"{event_type}: minor_version must be >= 0")
        if event_type in self._registry:
            raise DuplicateEventTypeError(event_type)
        if not isinstance(data, Mapping):
            raise SignalDefinitionError(f"{event_type}: data must map argument names to types")

        self._event_type = event_type
        self._major_version = int(match.group("major"))
        self._minor_version = minor_version
        self._doc = doc
        self._data: Mapping[str, Any] = types.MappingProxyType(dict(data))
        adapters: dict[str, TypeAdapter[Any]] = {
            name: self._adapter_for(name, tp) for name, tp in self._data.items()
        }
        self._optional: dict[str, FieldInfo] = {
            name: info
            for name, info in ((name, _field_info(tp)) for name, tp in self._data.items())
            if info is not None and not info.is_required()
        }
        self._datetime_arguments = frozenset(
            name for name, tp in self._data.items() if may_hold_datetime(tp)
        )
        # Per argument, what validating it takes, looked up once: its validator and
        # whether its values may hold a datetime.
        self._validators = tuple(
            (name, _validator_of(self._data[name], adapter), name in self._datetime_arguments)
            for name, adapter in adapters.items()
        )
        self._wire = wire
        for check in definition_checks():
            check(self)
        self._key_path: str | None = None
        if key_path is not None:
            self.validate_key_path(key_path)
            self._key_path = key_path
        self._init_dispatch()

        with self._registry_lock:
            if event_type in self._registry:
                raise DuplicateEventTypeError(event_type)
            self._registry[event_type] = self

    @staticmethod
    def _adapter_for(name: str, tp: Any) -> TypeAdapter[Any]:
        if not isinstance(name, str) or not _DATA_NAME.match(name):
            raise SignalDefinitionError(
                f"data argument name {name!r} must start with a letter and contain only "
                "letters, digits and '_'"
            )
        if name in RESERVED_ARGUMENT_NAMES:
            raise SignalDefinitionError(
                f"data argument name '{name}' is reserved "
                f"(reserved: {', '.join(sorted(RESERVED_ARGUMENT_NAMES))})"
            )
        try:
            return TypeAdapter(tp)
        except Exception as exc:  # pydantic raises several error classes for unknown types
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UnsupportedDataTypeError(name, reason) from exc

    # -- description -------------------------------------------------------------------------

    @property
    def event_type(self) -> str:
        """``<reverse-DNS prefix>.<subject>.<action>.v<major>``."""
        return self._event_type

    @property
    def wire(self) -> str:
        """The name of the wire profile its events travel with unless a route says otherwise."""
        return self._wire

    @property
    def major_version(self) -> int:
        """The ``v<major>`` part of the event type."""
        return self._major_version

    @property
    def minor_version(self) -> int:
        """Bumped for compatible changes; travels as the metadata's ``minorversion``."""
        return self._minor_version

    @property
    def data(self) -> Mapping[str, Any]:
        """Read-only mapping of argument name to declared type."""
        return self._data

    @property
    def doc(self) -> str | None:
        """What the signal means, if given; also the Avro record's doc."""
        return self._doc

    @property
    def key_path(self) -> str | None:
        """Default dotted path into the data whose value is the event's Kafka key."""
        return self._key_path

    def __repr__(self) -> str:
        return f"<WorkflowSignal {self._event_type}>"

    # -- registry ----------------------------------------------------------------------------

    @classmethod
    def get_signal_by_type(cls, event_type: str) -> WorkflowSignal:
        """The signal defined for ``event_type``; ``KeyError`` if there is none."""
        try:
            return cls._registry[event_type]
        except KeyError:
            raise KeyError(f"no signal with event type '{event_type}'") from None

    @classmethod
    def all_signals(cls) -> list[WorkflowSignal]:
        """Every signal defined so far, in definition order."""
        return list(cls._registry.values())

    # -- validation and metadata -------------------------------------------------------------

    def generate_signal_metadata(self, time: datetime | None = None) -> EventMetadata:
        """New metadata for an event of this signal (``time`` must be timezone-aware)."""
        if time is None:
            return new_metadata(self._event_type, self._minor_version)
        fields: dict[str, Any] = {
            "event_type": self._event_type,
            "minorversion": self._minor_version,
        }
        if time is not None:
            if not isinstance(time, datetime) or time.utcoffset() is None:
                raise SenderValidationError(
                    self._event_type, "time", "must be a timezone-aware datetime"
                )
            fields["time"] = time
        return EventMetadata(**fields)

    def validate_decoded(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """:meth:`validate_data` for data decoded from the bus (Avro), one walk shorter.

        Avro timestamps decode to UTC datetimes (the codec refuses writer schemas with local
        timestamps), so the data cannot hold a naive one: the walk looking for them is
        skipped. The arguments a :class:`DecodedData` of this event type vouches for are
        taken as they are. Everything else is validated as for a sender.
        """
        exact: frozenset[str] = frozenset()
        if isinstance(data, DecodedData) and data.event_type == self._event_type:
            exact = data.exact
        return self._validate(data, check_naive=False, exact=exact)

    def validate_data(self, **kwargs: Any) -> dict[str, Any]:
        """Validate send arguments against the declared data; returns the validated values.

        Every declared argument must be given (unless its type declares a default, as in
        ``Annotated[int, Field(default=0)]``), and nothing else; each value is validated by
        pydantic against its declared type (a dict becomes the declared model, ``"42"``
        becomes ``42`` for an ``int``), and datetimes anywhere in it must be timezone-aware.
        Falsy values (``0``, ``False``, ``""``, ``[]``) are values like any other.
        """
        return self._validate(kwargs, check_naive=True)

    def _validate(
        self, data: Mapping[str, Any], *, check_naive: bool, exact: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        problems: list[tuple[str, str]] = []
        if data.keys() != self._data.keys():
            problems = self._missing_or_undeclared(data)
            data = self._with_defaults(data)
        validated: dict[str, Any] = {}
        for name, validate, holds_datetimes in self._validators:
            if name not in data:
                continue  # missing: already a problem
            if name in exact:
                validated[name] = data[name]
                continue
            try:
                value = validate(data[name])
            except ValidationError as exc:
                problems.append((name, _describe_validation_error(exc, self._data[name])))
                continue
            if check_naive and holds_datetimes:
                naive_at = find_naive_datetime(value, name)
                if naive_at is not None:
                    problems.append(
                        (name, f"{naive_at}: naive datetime; use a timezone-aware datetime")
                    )
                    continue
            validated[name] = value
        if problems:
            raise SenderValidationError.of(self._event_type, problems)
        return validated

    def _missing_or_undeclared(self, data: Mapping[str, Any]) -> list[tuple[str, str]]:
        """A problem for each argument missing (without a default) or not declared."""
        declared = ", ".join(self._data) or "none"
        missing = [name for name in self._data if name not in data and name not in self._optional]
        undeclared = [name for name in data if name not in self._data]
        problems = [(name, "missing") for name in missing]
        if missing:
            problems[-1] = (missing[-1], f"missing (required: {', '.join(self._data)})")
        problems += [(name, "not declared by the signal") for name in undeclared]
        if undeclared:
            problems[-1] = (undeclared[-1], f"not declared by the signal (declared: {declared})")
        return problems

    def _with_defaults(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The declared arguments of ``data``, with the defaults of those not given."""
        defaults = {
            name: info.get_default(call_default_factory=True)
            for name, info in self._optional.items()
            if name not in data
        }
        return {**{k: v for k, v in data.items() if k in self._data}, **defaults}


def _validator_of(tp: Any, adapter: TypeAdapter[Any]) -> Any:
    """The function validating values of ``tp``: the adapter's validator itself (its
    ``validate_python`` only adds a frame passing defaults on), or for ``JsonValue`` one
    that takes the usual shapes in a fraction of the time."""
    validate = adapter.validator.validate_python
    return _flat_json_validator(validate) if tp is JsonValue else validate


#: The types pydantic keeps as they are in a JsonValue (it turns subclasses into these).
_JSON_SCALARS: frozenset[type] = frozenset({str, int, float, bool, type(None)})


def _flat_json_validator(validate: Any) -> Any:
    """``validate`` (pydantic's for JsonValue) for a scalar or a flat dict of scalars with
    string keys, the usual ``context``, without its walk: the same result (a copy of the
    dict), about 3x sooner. Everything else, errors included, is pydantic's."""

    def validate_json_value(value: Any) -> Any:
        cls = type(value)
        if cls is dict:
            for key, item in value.items():
                if type(key) is not str or type(item) not in _JSON_SCALARS:
                    return validate(value)
            return dict(value)
        return value if cls in _JSON_SCALARS else validate(value)

    return validate_json_value


#: The most problems one argument's message lists (then "and N more").
_MAX_PROBLEMS = 10


def _describe_validation_error(exc: ValidationError, tp: Any) -> str:
    # Only locations and messages: pydantic's own str() repeats the input, which may be PII.
    problems = []
    for error in exc.errors(include_url=False, include_input=False)[:_MAX_PROBLEMS]:
        location = ".".join(str(part) for part in error["loc"])
        problems.append(f"{location}: {error['msg']}" if location else error["msg"])
    more = exc.error_count() - len(problems)
    suffix = f" (and {more} more)" if more > 0 else ""
    return f"expected {type_name(tp)}: {'; '.join(problems)}{suffix}"


def _field_info(tp: Any) -> FieldInfo | None:
    """The merged ``Field(...)`` of an ``Annotated`` data type (its default, description)."""
    if get_origin(tp) is not Annotated:
        return None
    infos = [item for item in get_args(tp)[1:] if isinstance(item, FieldInfo)]
    return FieldInfo.merge_field_infos(*infos) if infos else None
