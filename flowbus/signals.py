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

The signal knows nothing of the wire: it names its wire profile (``wire=``, see
:mod:`flowbus.wire`), which checks here that it can carry the data's types.
"""

from __future__ import annotations

import copy
import functools
import logging
import re
import threading
import types
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, ClassVar, Literal, NamedTuple, Union, get_args, get_origin
from uuid import UUID

from pydantic import BaseModel, JsonValue, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from flowbus.errors import (
    ConfigurationError,
    DuplicateEventTypeError,
    KeyPathError,
    SenderValidationError,
    SignalDefinitionError,
    UnsupportedDataTypeError,
)
from flowbus.metadata import EventMetadata, new_metadata

__all__ = [
    "EVENT_TYPE_PATTERN",
    "RESERVED_ARGUMENT_NAMES",
    "DecodedData",
    "Receiver",
    "ReceiverFunction",
    "WorkflowSignal",
    "sender_name",
]

logger = logging.getLogger(__name__)

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
_SCALAR_KEY_TYPES = (str, int, float, Decimal, UUID, date, Enum)

ReceiverFunction = Callable[..., Any]


class Receiver(NamedTuple):
    """A connected receiver, the sender name it listens to (``None``: every sender), and
    whether its exceptions always propagate (see :meth:`WorkflowSignal.connect`)."""

    function: ReceiverFunction
    sender_name: str | None
    required: bool = False


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


def sender_name(sender: object) -> str | None:
    """The name a sender is known by, locally and on the other side of the bus.

    A class gives ``"module.QualName"``, a string is its own name, ``None`` stays ``None``,
    and any other object is named after its class.
    """
    if sender is None:
        return None
    if isinstance(sender, str):
        return sender
    cls = sender if isinstance(sender, type) else type(sender)
    return f"{cls.__module__}.{cls.__qualname__}"


class WorkflowSignal:
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
        self._adapters: dict[str, TypeAdapter[Any]] = {
            name: self._adapter_for(name, tp) for name, tp in self._data.items()
        }
        self._optional: dict[str, FieldInfo] = {
            name: info
            for name, info in ((name, _field_info(tp)) for name, tp in self._data.items())
            if info is not None and not info.is_required()
        }
        self._datetime_arguments = frozenset(
            name for name, tp in self._data.items() if _may_hold_datetime(tp)
        )
        # Imported here so that importing flowbus does not load the Avro layer, and so that
        # flowbus.avro may itself import this module.
        from flowbus.avro.schema import derive_record_schema
        from flowbus.wire import FLOWBUS, get_profile

        try:
            profile = get_profile(wire)
        except ConfigurationError as exc:
            raise SignalDefinitionError(f"{event_type}: {exc}") from None
        self._wire = profile.name
        self._avro_schema = derive_record_schema(event_type, self._data, doc=doc)
        if profile is not FLOWBUS:
            profile.check_data(event_type, self._data, doc)
        self._key_path: str | None = None
        if key_path is not None:
            self.validate_key_path(key_path)
            self._key_path = key_path

        self._receivers: tuple[Receiver, ...] = ()
        self._receivers_lock = threading.Lock()
        # The receivers per sender name, for the receivers tuple they were picked from.
        self._matched: tuple[tuple[Receiver, ...], dict[str | None, tuple[ReceiverFunction, ...]]]
        self._matched = ((), {})
        self._enabled = True
        self._allow_send_event_failure = False

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

    @property
    def avro_schema(self) -> dict[str, Any]:
        """The Avro record schema of the data in the ``flowbus`` profile (a copy; changing it
        changes nothing): the one the ``schemas/`` catalog keeps."""
        return copy.deepcopy(self._avro_schema)

    @property
    def enabled(self) -> bool:
        """Whether sending does anything (see :meth:`disable`)."""
        return self._enabled

    @property
    def send_event_failure_allowed(self) -> bool:
        """Whether receiver exceptions propagate to the sender."""
        return self._allow_send_event_failure

    @property
    def receivers(self) -> tuple[Receiver, ...]:
        """The connected receivers, in calling order."""
        return self._receivers

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

    # -- switches ----------------------------------------------------------------------------

    def enable(self) -> None:
        """Turn sending back on."""
        self._enabled = True

    def disable(self) -> None:
        """Make ``send_event`` and ``send_event_with_custom_metadata`` do nothing and return []."""
        self._enabled = False

    def allow_send_event_failure(self, allow: bool = True) -> None:
        """Let receiver exceptions propagate to the sender (default: log and return them)."""
        self._allow_send_event_failure = allow

    # -- receivers ---------------------------------------------------------------------------

    def connect(
        self, receiver: ReceiverFunction, sender: object = None, *, required: bool = False
    ) -> ReceiverFunction:
        """Call ``receiver`` for every event of this signal (only ``sender``'s, if given).

        ``sender`` is a class, a string, or an object (matched by its class), compared by
        :func:`sender_name`. A ``required`` receiver's exception always propagates from
        ``send_event``, whatever ``send_robust`` says: for a receiver whose failure must
        fail the sender (the forwarder's outbox and on-commit routes, whose write belongs
        to the caller's transaction). Other receivers keep Open edX's ``send_robust``
        semantics. Connecting the same receiver for the same sender again only updates
        ``required``. Receivers are held strongly: disconnect them when they should stop.
        Returns ``receiver``.
        """
        if not callable(receiver):
            raise TypeError(f"receiver for {self._event_type} must be callable, got {receiver!r}")
        entry = Receiver(receiver, sender_name(sender), required)
        with self._receivers_lock:
            same = [r for r in self._receivers if r[:2] == entry[:2]]
            if not same:
                self._receivers = (*self._receivers, entry)
            elif same[0].required != required:
                self._receivers = tuple(entry if r[:2] == entry[:2] else r for r in self._receivers)
        return receiver

    def disconnect(self, receiver: ReceiverFunction, sender: object = None) -> bool:
        """Disconnect ``receiver`` (connected for ``sender``); ``True`` if it was connected."""
        connected = (receiver, sender_name(sender))
        with self._receivers_lock:
            remaining = tuple(r for r in self._receivers if r[:2] != connected)
            found = len(remaining) != len(self._receivers)
            self._receivers = remaining
        return found

    def _set_receivers(self, receivers: tuple[Receiver, ...]) -> None:
        """Replace every receiver at once (used by :mod:`flowbus.testing`)."""
        with self._receivers_lock:
            self._receivers = receivers

    # -- key path ----------------------------------------------------------------------------

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

    # -- sending -----------------------------------------------------------------------------

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
        for name, adapter in self._adapters.items():
            if name not in data:
                continue  # missing: already a problem
            if name in exact:
                validated[name] = data[name]
                continue
            try:
                # The adapter's validator itself: TypeAdapter.validate_python only adds a
                # frame passing its defaults on.
                value = adapter.validator.validate_python(data[name])
            except ValidationError as exc:
                problems.append((name, _describe_validation_error(exc, self._data[name])))
                continue
            if check_naive and name in self._datetime_arguments:
                naive_at = _find_naive_datetime(value, name)
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

    def send_event(
        self,
        *,
        send_robust: bool = True,
        time: datetime | None = None,
        sender: object = None,
        **kwargs: Any,
    ) -> list[tuple[ReceiverFunction, Any]]:
        """Validate ``kwargs``, create the metadata and call the receivers.

        Returns ``[(receiver, response_or_exception), ...]``. With ``send_robust`` (the
        default) a receiver's exception is logged (event id and type only) and returned
        instead of raised, unless :meth:`allow_send_event_failure` was called; a receiver
        connected with ``required=True`` raises whatever ``send_robust`` says (the receivers
        after it are not called). A disabled signal does nothing and returns ``[]``.
        """
        if not self._enabled:
            return []
        data = self.validate_data(**kwargs)
        metadata = self.generate_signal_metadata(time=time)
        return self._dispatch(sender, metadata, data, from_event_bus=False, robust=send_robust)

    def send_event_with_custom_metadata(
        self,
        metadata: EventMetadata,
        /,
        *,
        send_robust: bool = True,
        sender: object = None,
        **kwargs: Any,
    ) -> list[tuple[ReceiverFunction, Any]]:
        """Re-send an event that already has metadata, e.g. one read from the bus.

        ``metadata`` is used as is (its event type must be this signal's); ``sender`` is
        usually the sender's name as it travelled. Receivers get ``from_event_bus=True``.
        """
        if not self._enabled:
            return []
        self._check_metadata(metadata)
        data = self.validate_data(**kwargs)
        return self._dispatch(sender, metadata, data, from_event_bus=True, robust=send_robust)

    def resend_validated(
        self,
        metadata: EventMetadata,
        data: Mapping[str, Any],
        /,
        *,
        send_robust: bool = True,
        sender: object = None,
    ) -> list[tuple[ReceiverFunction, Any]]:
        """:meth:`send_event_with_custom_metadata` for data :meth:`validate_data` returned.

        For a consumer that validates the data itself first (to tell invalid data from
        failing receivers): the data is not validated a second time.
        """
        if not self._enabled:
            return []
        self._check_metadata(metadata)
        return self._dispatch(sender, metadata, dict(data), from_event_bus=True, robust=send_robust)

    def _check_metadata(self, metadata: EventMetadata) -> None:
        if not isinstance(metadata, EventMetadata):
            raise SenderValidationError(
                self._event_type,
                "metadata",
                f"must be EventMetadata, got {type(metadata).__name__}",
            )
        if metadata.event_type != self._event_type:
            raise SenderValidationError(
                self._event_type,
                "metadata",
                f"event type '{metadata.event_type}' does not match the signal",
            )

    def _dispatch(
        self,
        sender: object,
        metadata: EventMetadata,
        data: dict[str, Any],
        *,
        from_event_bus: bool,
        robust: bool,
    ) -> list[tuple[ReceiverFunction, Any]]:
        propagate = self._allow_send_event_failure or not robust
        results: list[tuple[ReceiverFunction, Any]] = []
        name = sender_name(sender)
        for function, listens_to, required in self._receivers:
            if listens_to is not None and listens_to != name:
                continue
            try:
                response = function(
                    sender,
                    signal=self,
                    metadata=metadata,
                    from_event_bus=from_event_bus,
                    **data,
                )
            except Exception as exc:
                if propagate or required:
                    raise
                logger.error(
                    "receiver %s failed for event %s (%s)",
                    callable_name(function),
                    metadata.id,
                    metadata.event_type,
                    exc_info=exc,
                )
                results.append((function, exc))
            else:
                results.append((function, response))
        return results

    def receivers_for(self, sender: object = None) -> tuple[ReceiverFunction, ...]:
        """The receivers an event from ``sender`` reaches, in call order (none if disabled).

        For a dispatcher that calls them itself, as the consumer worker does (deadlines,
        retries of only the failed ones, ``async def`` receivers).
        """
        return self._matching(sender_name(sender)) if self._enabled else ()

    def _matching(self, name: str | None) -> tuple[ReceiverFunction, ...]:
        receivers, matched = self._matched
        if receivers is not self._receivers:
            receivers = self._receivers
            matched = {}
            self._matched = (receivers, matched)
        found = matched.get(name)
        if found is None:
            found = tuple(
                receiver.function
                for receiver in receivers
                if receiver.sender_name is None or receiver.sender_name == name
            )
            if len(matched) < _MATCHED_MAX:  # sender names come from the wire
                matched[name] = found
        return found


_MATCHED_MAX = 256


def callable_name(function: ReceiverFunction) -> str:
    """``module.QualName`` of a receiver (a function, method or callable object)."""
    module = getattr(function, "__module__", None) or "?"
    name = getattr(function, "__qualname__", None) or type(function).__qualname__
    return f"{module}.{name}"


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return repr(tp).replace("typing.", "")


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
    return f"expected {_type_name(tp)}: {'; '.join(problems)}{suffix}"


#: Types whose values never hold a datetime: the walk below skips them without a call.
_LEAF_TYPES: frozenset[type] = frozenset(
    {str, int, float, bool, bytes, type(None), UUID, Decimal, date}
)


def _find_naive_datetime(value: Any, path: str) -> str | None:
    """The path of the first naive datetime inside ``value``, or ``None``."""
    keys = _naive_datetime_keys(value)
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
            if item.utcoffset() is None:
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
            if item.utcoffset() is None:
                return [name]
            continue
        if item_cls in _LEAF_TYPES:
            continue
        found = _naive_datetime_keys(item)
        if found is not None:
            found.append(name)
            return found
    return None


@functools.lru_cache(maxsize=256)
def _path_segments(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


@functools.lru_cache(maxsize=1024)
def _field_names(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(model.model_fields)


@functools.lru_cache(maxsize=1024)
def _datetime_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of ``model`` whose values may hold a datetime (every field, when the
    model has validators: they may return anything)."""
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
        if info.metadata or _may_hold_datetime(info.annotation)
    )


def _may_hold_datetime(tp: Any) -> bool:
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
        return any(arg is not Ellipsis and _may_hold_datetime(arg) for arg in get_args(tp))
    if not isinstance(tp, type):
        return tp is not None
    if issubclass(tp, datetime | BaseModel):
        return True
    return not issubclass(tp, (*_LEAF_TYPES, Enum))  # a datetime is a date: checked first


def _field_info(tp: Any) -> FieldInfo | None:
    """The merged ``Field(...)`` of an ``Annotated`` data type (its default, description)."""
    if get_origin(tp) is not Annotated:
        return None
    infos = [item for item in get_args(tp)[1:] if isinstance(item, FieldInfo)]
    return FieldInfo.merge_field_infos(*infos) if infos else None


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
            f"{event_type}: key path '{path}' leads to {_type_name(tp)}, not a scalar value"
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
        f"{event_type}: key path '{path}': cannot read '{segment}' from {_type_name(tp)}"
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
