"""CloudEvents Kafka protocol binding, binary mode: event metadata <-> Kafka headers.

The record value is the Avro-encoded data; each context attribute travels as a header
``ce_<attribute>`` with a UTF-8 value. flowbus writes the required attributes
(``ce_specversion``, ``ce_id``, ``ce_source``, ``ce_type``), ``ce_time`` (RFC 3339, UTC),
``content-type``, and the extensions ``ce_minorversion``, ``ce_sourcehost``,
``ce_sourcelib``, ``ce_partitionkey``, ``ce_sender`` and ``ce_dataschema``; W3C
``traceparent`` when a trace context is active.

Reading is strict: a missing or malformed required header raises, it is never filled
from the reader's own defaults. Headers as the Open edX event bus writes them
(``sourcehost``, ``sourcelib`` without the ``ce_`` prefix) are accepted too, and
:func:`to_headers` writes them so for the ``openedx`` wire profile (``openedx=True``):
unprefixed ``sourcehost`` / ``sourcelib``, ``ce_datacontenttype``, ``ce_time`` ending in
``+00:00``, as edx-event-bus-kafka writes and reads them.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple
from uuid import UUID

from pydantic import ValidationError

from flowbus.errors import EventHeaderError, MalformedHeaderError, MissingHeaderError
from flowbus.metadata import EventMetadata
from flowbus.prebuilt import FILLABLE, fill, uuid_from_text

SPECVERSION = "ce_specversion"
ID = "ce_id"
SOURCE = "ce_source"
TYPE = "ce_type"
TIME = "ce_time"
MINORVERSION = "ce_minorversion"
SOURCEHOST = "ce_sourcehost"
SOURCELIB = "ce_sourcelib"
PARTITIONKEY = "ce_partitionkey"
SENDER = "ce_sender"
DATASCHEMA = "ce_dataschema"
CONTENT_TYPE = "content-type"
DATACONTENTTYPE = "ce_datacontenttype"
#: Open edX's names of the two extensions (not CloudEvents attributes there: no prefix).
OPENEDX_SOURCEHOST = "sourcehost"
OPENEDX_SOURCELIB = "sourcelib"
TRACEPARENT = "traceparent"
AVRO_CONTENT_TYPE = "application/avro"
STRUCTURED_CONTENT_TYPE = "application/cloudevents"

#: Alternative header names accepted on read, as other producers (Open edX) write them.
_ALIASES = {SOURCEHOST: (OPENEDX_SOURCEHOST,), SOURCELIB: (OPENEDX_SOURCELIB,)}
#: Headers that are not ``ce_*`` and still read: the content type, the trace context and the
#: aliases. Any other header (a binary tracing header, an application's own) is ignored.
_READ_UNPREFIXED = frozenset(
    {CONTENT_TYPE, TRACEPARENT, *(alias for names in _ALIASES.values() for alias in names)}
)

#: Headers as confluent-kafka reads them (a list of pairs; a mapping is accepted too).
Headers = Sequence[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None]
#: Headers as confluent-kafka's ``produce`` takes them.
KafkaHeaders = list[tuple[str, str | bytes | None]]


class EventEnvelope(NamedTuple):
    """What the headers of one record say: its metadata and the transport extensions."""

    metadata: EventMetadata
    sender: str | None = None
    partitionkey: str | None = None
    dataschema: str | None = None
    traceparent: str | None = None
    content_type: str | None = None


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # isoformat()'s text with "Z" for its "+00:00", in less time (once per event); %
    # formatting, because f-strings with format specs take twice as long here.
    fields = (value.year, value.month, value.day, value.hour, value.minute, value.second)
    if value.microsecond:
        return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (*fields, value.microsecond)  # noqa: UP031
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % fields  # noqa: UP031


def format_sourcelib(sourcelib: tuple[int, ...]) -> str:
    return ".".join(map(str, sourcelib))


@functools.cache
def _opentelemetry() -> (
    tuple[Callable[[], Any], Callable[[], Any], Callable[[dict[str, str]], None]] | None
):
    # Looked up once: a failed import is not cached by Python and costs a search of
    # sys.path on every call, i.e. on every event sent.
    try:
        from opentelemetry.context import get_current
        from opentelemetry.propagate import inject
        from opentelemetry.trace import get_current_span
    except ImportError:
        return None
    return get_current, get_current_span, inject


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the active OpenTelemetry span, if OpenTelemetry is in use."""
    opentelemetry = _opentelemetry()
    if opentelemetry is None:
        return None
    get_current, get_current_span, inject = opentelemetry
    if not get_current():
        return None  # an empty context holds no span (the usual case: one dict lookup)
    if not get_current_span().get_span_context().is_valid:
        return None  # no active span, no traceparent: skip the propagators (per event)
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get(TRACEPARENT)


def to_headers(
    metadata: EventMetadata,
    *,
    partitionkey: str | None = None,
    sender: str | None = None,
    dataschema: str | None = None,
    traceparent: str | None = None,
    openedx: bool = False,
) -> KafkaHeaders:
    """The binary-mode headers of one event (as the Open edX event bus writes them, with
    flowbus's transport extensions, when ``openedx``)."""
    constant = _constant_headers(
        metadata.specversion,
        metadata.source,
        metadata.event_type,
        metadata.minorversion,
        metadata.sourcehost,
        metadata.sourcelib,
        openedx,
    )
    time = metadata.time.isoformat() if openedx else format_time(metadata.time)
    headers: KafkaHeaders = [
        constant.specversion,
        (ID, str(metadata.id).encode()),
        constant.source,
        constant.type,
        (TIME, time.encode()),
        *constant.after_time,
    ]
    if partitionkey is not None:
        headers.append((PARTITIONKEY, partitionkey.encode()))
    if sender is not None:
        headers.append((SENDER, sender.encode()))
    if dataschema is not None:
        headers.append((DATASCHEMA, dataschema.encode()))
    if traceparent is not None:
        headers.append((TRACEPARENT, traceparent.encode()))
    return headers


class _ConstantHeaders(NamedTuple):
    """The headers a process writes alike for every event of one type, encoded once."""

    specversion: tuple[str, bytes]
    source: tuple[str, bytes]
    type: tuple[str, bytes]
    #: content-type, ce_minorversion, ce_sourcehost, ce_sourcelib (Open edX: content-type,
    #: ce_datacontenttype, ce_minorversion, sourcehost, sourcelib)
    after_time: tuple[tuple[str, bytes], ...]


@functools.lru_cache(maxsize=256)
def _constant_headers(
    specversion: str,
    source: str,
    event_type: str,
    minorversion: int,
    sourcehost: str,
    sourcelib: tuple[int, ...],
    openedx: bool,
) -> _ConstantHeaders:
    content_type = (CONTENT_TYPE, AVRO_CONTENT_TYPE.encode())
    minor = (MINORVERSION, str(minorversion).encode())
    host, lib = sourcehost.encode(), format_sourcelib(sourcelib).encode()
    after_time = (
        (content_type, (DATACONTENTTYPE, content_type[1]), minor,
         (OPENEDX_SOURCEHOST, host), (OPENEDX_SOURCELIB, lib))
        if openedx
        else (content_type, minor, (SOURCEHOST, host), (SOURCELIB, lib))
    )  # fmt: skip
    return _ConstantHeaders(
        (SPECVERSION, specversion.encode()),
        (SOURCE, source.encode()),
        (TYPE, event_type.encode()),
        after_time,
    )


def header_pairs(headers: Headers | None) -> list[tuple[str, bytes]]:
    """Headers as (name, bytes) pairs, whatever form confluent-kafka gave them in."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    return [(k, v.encode() if isinstance(v, str) else v) for k, v in pairs if v is not None]


#: Header name as written -> the name it is read as (lower case), or ``None``: not read.
#: Bounded, since the names come from the wire.
_READ_NAMES: dict[str, str | None] = {}
_READ_NAMES_MAX = 512
_UNSEEN = object()


def _read_name(name: str) -> str | None:
    key = name.lower()
    read = key if key.startswith("ce_") or key in _READ_UNPREFIXED else None
    if len(_READ_NAMES) < _READ_NAMES_MAX:
        _READ_NAMES[name] = read
    return read


def _header_map(headers: Headers | None) -> dict[str, str]:
    found: dict[str, str] = {}
    if type(headers) is list:  # as confluent-kafka gives them: skip the ABC check
        pairs: Iterable[tuple[str, bytes | str | None]] = headers
    else:
        pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    read_names: dict[str, Any] = _READ_NAMES
    for name, raw in pairs:
        key = read_names.get(name, _UNSEEN)
        if key is _UNSEEN:
            key = _read_name(name)
        if key is None or raw is None:
            continue
        if isinstance(raw, bytes):
            try:
                value = raw.decode()
            except UnicodeDecodeError as exc:
                raise MalformedHeaderError(name, "not valid UTF-8") from exc
        else:
            value = raw
        if found.setdefault(key, value) != value:
            raise MalformedHeaderError(name, "present twice with different values")
    return found


def _required(found: dict[str, str], name: str) -> str:
    value = found.get(name)
    if value is not None:
        return value
    for alias in _ALIASES.get(name, ()):
        if alias in found:
            return found[alias]
    raise MissingHeaderError(name)


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise MalformedHeaderError(TIME, f"not an RFC 3339 timestamp: {value!r}") from exc
    if parsed.tzinfo is None:
        raise MalformedHeaderError(TIME, f"no UTC offset: {value!r}")
    return parsed


@functools.lru_cache(maxsize=64)  # a producer fleet writes few distinct versions
def _parse_sourcelib(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in value.split("."))
    except ValueError as exc:
        raise MalformedHeaderError(SOURCELIB, f"not dotted integers: {value!r}") from exc


_TEMPLATE_ID = UUID(int=0)
_TEMPLATE_TIME = datetime(1970, 1, 1, tzinfo=UTC)


@functools.lru_cache(maxsize=256)
def _constant_metadata(
    event_type: str,
    minorversion: int,
    source: str,
    sourcehost: str,
    sourcelib: str,
    specversion: str,
) -> EventMetadata:
    """Metadata with these constant attributes (and a placeholder id and time), validated;
    raises :class:`MalformedHeaderError` naming the first bad header."""
    try:
        return EventMetadata(
            id=_TEMPLATE_ID,
            event_type=event_type,
            minorversion=minorversion,
            source=source,
            sourcehost=sourcehost,
            sourcelib=_parse_sourcelib(sourcelib),
            time=_TEMPLATE_TIME,
            specversion=specversion,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "metadata"
        header = {"event_type": TYPE}.get(field, f"ce_{field}")
        raise MalformedHeaderError(header, error["msg"]) from exc


class _Constant(NamedTuple):
    """What the headers a producer writes alike for every event of a type say."""

    metadata: EventMetadata  # validated, with a placeholder id and time
    sender: str | None
    dataschema: str | None
    content_type: str | None


class _Layout(NamedTuple):
    """Where the headers of one name sequence are; its constants seen so far."""

    constants: Callable[[Sequence[Any]], Any]  # the (name, raw) pairs of constant headers
    id_at: int
    time_at: int
    partitionkey_at: int | None
    traceparent_at: int | None
    known: dict[Any, _Constant]


#: Header names in record order -> their layout (``None``: read the slow way, e.g. a
#: name that repeats). Records of one producer share a few layouts; both maps are bounded,
#: since names and values come from the wire.
_LAYOUTS: dict[tuple[str, ...], _Layout | None] = {}
_LAYOUTS_MAX = 64
_KNOWN_MAX = 256
_VARYING = frozenset({ID, TIME, PARTITIONKEY, TRACEPARENT})


def _layout_of(names: tuple[str, ...]) -> _Layout | None:
    read = [_READ_NAMES[name] if name in _READ_NAMES else _read_name(name) for name in names]
    present = [key for key in read if key is not None]
    layout = None
    if len(set(present)) == len(present) and ID in present and TIME in present:
        constant_at = [i for i, key in enumerate(read) if key is not None and key not in _VARYING]
        layout = _Layout(
            constants=operator.itemgetter(*constant_at) if constant_at else _nothing,
            id_at=read.index(ID),
            time_at=read.index(TIME),
            partitionkey_at=read.index(PARTITIONKEY) if PARTITIONKEY in read else None,
            traceparent_at=read.index(TRACEPARENT) if TRACEPARENT in read else None,
            known={},
        )
    if len(_LAYOUTS) < _LAYOUTS_MAX:
        _LAYOUTS[names] = layout
    return layout


def _nothing(headers: Sequence[Any]) -> tuple[()]:
    return ()


def _text_at(headers: Sequence[tuple[str, Any]], at: int | None) -> str | None:
    if at is None:
        return None
    name, raw = headers[at]
    if type(raw) is bytes:
        try:
            return raw.decode()
        except UnicodeDecodeError as exc:
            raise MalformedHeaderError(name, "not valid UTF-8") from exc
    return raw  # type: ignore[no-any-return]


def from_headers(headers: Headers | None) -> EventEnvelope:
    """Rebuild an event's metadata from its headers, strictly.

    Raises :class:`MissingHeaderError` or :class:`MalformedHeaderError` (both
    :class:`EventHeaderError`) naming the header and the reason.
    """
    if type(headers) is list:  # as confluent-kafka gives them
        names = tuple([pair[0] for pair in headers])
        layout = _LAYOUTS.get(names, _UNSEEN)
        if layout is _UNSEEN:
            layout = _layout_of(names)
        if layout is not None:
            assert isinstance(layout, _Layout)
            constants = layout.constants(headers)
            constant = layout.known.get(constants)
            if constant is not None:
                id_text = _text_at(headers, layout.id_at)
                time_text = _text_at(headers, layout.time_at)
                if id_text is not None and time_text is not None:
                    return _envelope(
                        constant,
                        id_text,
                        time_text,
                        _text_at(headers, layout.partitionkey_at),
                        _text_at(headers, layout.traceparent_at),
                    )
            envelope, constant = _read_all(headers)
            if len(layout.known) < _KNOWN_MAX:
                layout.known[constants] = constant
            return envelope
    return _read_all(headers)[0]


def _read_all(headers: Headers | None) -> tuple[EventEnvelope, _Constant]:
    """Every header read and checked; the envelope, and what of it is constant."""
    found = _header_map(headers)
    content_type = found.get(CONTENT_TYPE)
    if content_type and content_type.startswith(STRUCTURED_CONTENT_TYPE):
        raise MalformedHeaderError(
            CONTENT_TYPE, f"structured-mode CloudEvent ({content_type}); binary mode expected"
        )
    minor = _required(found, MINORVERSION)
    if not minor.isdigit():
        raise MalformedHeaderError(MINORVERSION, f"not a non-negative integer: {minor!r}")
    id_text = _required(found, ID)
    time_text = _required(found, TIME)
    constant = _Constant(
        # What a producer writes alike for all events of a type is validated once.
        _constant_metadata(
            _required(found, TYPE),
            int(minor),
            _required(found, SOURCE),
            _required(found, SOURCEHOST),
            _required(found, SOURCELIB),
            _required(found, SPECVERSION),
        ),
        found.get(SENDER),
        found.get(DATASCHEMA),
        content_type,
    )
    envelope = _envelope(
        constant, id_text, time_text, found.get(PARTITIONKEY), found.get(TRACEPARENT)
    )
    return envelope, constant


def _envelope(
    constant: _Constant,
    id_text: str,
    time_text: str,
    partitionkey: str | None,
    traceparent: str | None,
) -> EventEnvelope:
    try:
        event_id = uuid_from_text(id_text)
    except ValueError:
        try:
            event_id = UUID(id_text)
        except ValueError:
            raise MalformedHeaderError(ID, "not a UUID") from None
    template = constant.metadata
    values = dict(template.__dict__)
    values["id"] = event_id
    time = _parse_time(time_text)
    values["time"] = time if time.tzinfo is UTC else time.astimezone(UTC)
    metadata = (
        fill(EventMetadata, values, template.__pydantic_fields_set__)
        if FILLABLE
        else EventMetadata(**values)
    )
    return EventEnvelope(
        metadata,
        constant.sender,
        partitionkey,
        constant.dataschema,
        traceparent,
        constant.content_type,
    )


__all__ = [
    "EventEnvelope",
    "EventHeaderError",
    "MalformedHeaderError",
    "MissingHeaderError",
    "current_traceparent",
    "from_headers",
    "header_pairs",
    "to_headers",
]
