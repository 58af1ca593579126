"""``flowbus dlq``: list, show and replay the records of a dead-letter topic.

Reading never commits and never joins a consumer group. Payloads are printed only by
``show --data`` (decoded as a worker decodes them) or ``show --hex``: they may hold
personal data. A pointer record (the original was too large for the dead-letter topic) is
marked as such; replaying it re-publishes the original, read back from its topic and
checked against the pointer's size and SHA-256.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import click

from flowbus import cloudevents
from flowbus.exit_codes import ExitCode
from flowbus.json_output import BYTES_ENCODING, echo_json, json_option
from flowbus.settings import FlowbusSettings, get_settings

from . import dead_letter
from .cli_params import (
    PartitionOffset,
    broker_timeout_option,
    iso_time_option,
    options,
    partition_offsets_option,
    position_argument,
)
from .dead_letter_records import (
    DeadLetterFilter,
    DeadLetterRecord,
    DeadLetterTopic,
    Republisher,
    resolve_pointer,
)
from .kafka_clients import reader_config, republisher_config
from .record_view import RecordView, view_record

EXIT_STATUS_HELP = """
\b
Exit status (the table of `flowbus --help`):
  0  done (also when no record matches, and for --dry-run)
  1  the broker is unreachable or failed, a record could not be replayed, or
     (replay --local) a record failed again (its reason is printed)
  2  bad arguments or configuration: unknown topic, no such record, ...
"""


@dataclasses.dataclass(frozen=True)
class TopicChoice:
    """The dead-letter topic a subcommand reads, from --source or --topic."""

    name: str
    timeout: float

    def reader(self, settings: FlowbusSettings) -> DeadLetterTopic:
        return DeadLetterTopic(self.name, reader_config(settings), timeout=self.timeout)


#: --source / --topic / --dlq-suffix / --timeout; see :func:`_dlq_topic`.
_topic_options = options(
    click.option("--source", metavar="TOPIC", help="Event topic whose dead letters to read."),
    click.option("--topic", "dlq_name", metavar="TOPIC", help="The dead-letter topic itself."),
    click.option(
        "--dlq-suffix",
        default=dead_letter.DEFAULT_SUFFIX,
        show_default=True,
        help="Dead-letter topic = source topic + this suffix (as `flowbus consume`).",
    ),
    broker_timeout_option,
)


def _dlq_topic(
    source: str | None, dlq_name: str | None, dlq_suffix: str, timeout: float
) -> TopicChoice:
    if (source is None) == (dlq_name is None):
        raise click.UsageError("give either --source TOPIC or --topic DLQ_TOPIC (one of them)")
    prefix = get_settings().topic_prefix
    if dlq_name is not None:
        return TopicChoice(f"{prefix}{dlq_name}", timeout)
    return TopicChoice(dead_letter.dead_letter_topic(f"{prefix}{source}", dlq_suffix), timeout)


#: --event-type / --since / --until / --record; see :func:`_selection`.
_filter_options = options(
    click.option("--event-type", metavar="GLOB", help="Only this ce_type (glob: caluma.*)."),
    click.option(
        "--since",
        metavar="ISO-TIME",
        callback=iso_time_option,
        help="Only records dead-lettered at or after this time (UTC if no offset).",
    ),
    click.option(
        "--until",
        metavar="ISO-TIME",
        callback=iso_time_option,
        help="Only records dead-lettered before this time (UTC if no offset).",
    ),
    click.option(
        "--record",
        "records",
        metavar="P:O",
        multiple=True,
        callback=partition_offsets_option,
        help="Only the record at PARTITION:OFFSET of the dead-letter topic (repeatable).",
    ),
)


def _selection(
    event_type: str | None,
    since: datetime | None,
    until: datetime | None,
    records: tuple[PartitionOffset, ...],
) -> DeadLetterFilter:
    if since is not None and until is not None and since >= until:
        raise click.BadParameter("must be after --since", param_hint="--until")
    return DeadLetterFilter(
        event_type=event_type,
        since=since,
        until=until,
        positions=frozenset((p.partition or 0, p.offset) for p in records),
    )


def _select(
    dlq_topic: TopicChoice, selection: DeadLetterFilter
) -> tuple[list[DeadLetterRecord], int, int]:
    """The matching records, how many were read, and how many had no readable time."""
    matching: list[DeadLetterRecord] = []
    total = timeless = 0
    for record in dlq_topic.reader(get_settings()).records():
        total += 1
        if record.dead_lettered_at is None:
            timeless += 1
        if selection.matches(record):
            matching.append(record)
    return matching, total, timeless


def _report_counts(
    dlq_topic: TopicChoice, selection: DeadLetterFilter, shown: int, total: int, timeless: int
) -> None:
    click.echo(f"{shown} of {total} record(s) in '{dlq_topic.name}' match.", err=True)
    if timeless and (selection.since or selection.until):
        click.echo(
            f"Note: {timeless} record(s) have no readable {dead_letter.TIME} header; "
            "a time filter leaves them out.",
            err=True,
        )


def _time_text(value: datetime | None) -> str:
    return cloudevents.format_time(value) if value is not None else "?"


def _row(record: DeadLetterRecord) -> dict[str, Any]:
    return {
        "dlq_offset": record.position,
        "dead_lettered": _time_text(record.dead_lettered_at),
        "ce_type": record.event_type or "?",
        "ce_id": record.event_id or "?",
        "reason": record.reason or "?",
        "error_type": record.error_type or "?",
        "origin": record.origin,
        "pointer": record.is_pointer,
    }


def _print_table(rows: Iterable[dict[str, Any]]) -> None:
    rows = list(rows)
    header = {
        "dlq_offset": "DLQ OFFSET",
        "dead_lettered": "DEAD-LETTERED",
        "ce_type": "CE_TYPE",
        "ce_id": "CE_ID",
        "reason": "REASON",
        "error_type": "ERROR",
        "origin": "ORIGIN",
    }
    columns = list(header)
    widths = {c: max(len(str(r[c])) for r in [header, *rows]) for c in columns}
    for row in [header, *rows]:
        cells = [str(row[c]).ljust(widths[c]) for c in columns[:-1]]
        last = f"{row[columns[-1]]}{' (pointer)' if row.get('pointer') else ''}"
        click.echo("  ".join([*cells, last]))


def _hexdump(data: bytes) -> Iterable[str]:
    for start in range(0, len(data), 16):
        chunk = data[start : start + 16]
        hex_part = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        yield f"  {start:08x}  {hex_part:<47}  {text}"


@click.group()
def dlq() -> None:
    """List, show and replay the records of a dead-letter topic.

    Name the topic with --source TOPIC (the event topic; its dead-letter topic is
    TOPIC + --dlq-suffix) or --topic DLQ_TOPIC. Topic names are given without
    FLOWBUS_TOPIC_PREFIX: it is prepended. Reading never commits offsets.
    """


@dlq.command("list", epilog=EXIT_STATUS_HELP)
@_topic_options
@_filter_options
@json_option("One JSON object per line.")
def list_records(
    source: str | None,
    dlq_name: str | None,
    dlq_suffix: str,
    timeout: float,
    event_type: str | None,
    since: datetime | None,
    until: datetime | None,
    records: tuple[PartitionOffset, ...],
    as_json: bool,
) -> None:
    """One row per dead-letter record: where it is, when and why it was dead-lettered.

    A pointer record (its value too large for the dead-letter topic, so left out) has
    "(pointer)" after its origin, and "pointer": true in --json.
    """
    dlq_topic = _dlq_topic(source, dlq_name, dlq_suffix, timeout)
    selection = _selection(event_type, since, until, records)
    found, total, timeless = _select(dlq_topic, selection)
    if as_json:
        for record in found:
            echo_json(_row(record))
    elif found:
        _print_table(_row(record) for record in found)
    _report_counts(dlq_topic, selection, len(found), total, timeless)


@dlq.command("show", epilog=EXIT_STATUS_HELP)
@_topic_options
@click.argument("position", metavar="[PARTITION:]OFFSET", callback=position_argument)
@click.option(
    "--data",
    "show_data",
    is_flag=True,
    help="Also show the payload decoded, as a worker decodes it (may hold PII).",
)
@click.option(
    "--hex", "show_hex", is_flag=True, help="Also show the payload as a hex dump (may hold PII)."
)
@json_option(
    f"One JSON object; with --data its 'event' is as `flowbus tail --json` shows it, "
    f"with --hex its 'value' is {BYTES_ENCODING}."
)
def show(
    source: str | None,
    dlq_name: str | None,
    dlq_suffix: str,
    timeout: float,
    position: PartitionOffset,
    show_data: bool,
    show_hex: bool,
    as_json: bool,
) -> None:
    """Every header of one record, its error message and value size.

    The payload is shown only with --data (decoded as a worker decodes it: the event's
    metadata and data, or why it does not decode) or --hex (a hex dump). For a pointer
    record (no value: the original was too large for the dead-letter topic) the
    original's size, SHA-256 and position are shown.
    """
    dlq_topic = _dlq_topic(source, dlq_name, dlq_suffix, timeout)
    record = dlq_topic.reader(get_settings()).record(position.partition, position.offset)
    view = _decoded(record) if show_data else None
    if as_json:
        echo_json(_show_json(record, view, show_hex))
        return
    info = record.dead_letter_info
    fields = [
        ("Record", record.location),
        ("Origin", record.origin),
        ("Reason", record.reason or "?"),
        ("Error", record.error_type or "?"),
        ("Attempts", info.get("attempts") or "?"),
        ("Receivers", info.get("failed-receivers") or "-"),
        ("Group", record.group or "?"),
        ("Dead-lettered", _time_text(record.dead_lettered_at)),
        ("Key", _key_text(record.key)),
        ("Value size", "null" if record.value is None else f"{len(record.value)} bytes"),
        *_pointer_fields(record),
    ]
    for label, value in fields:
        click.echo(f"{label + ':':<15}{value}")
    click.echo("Headers:")
    for name, raw in record.headers:
        text = "null" if raw is None else raw.decode(errors="replace")
        click.echo(f"  {name}: {'(below)' if name == dead_letter.ERROR_MESSAGE else text}")
    click.echo("Error message:")
    for line in (record.error_message or "(none)").splitlines() or [""]:
        click.echo(f"  {line}")
    if show_data:
        click.echo("Event:")
        if view is None:
            click.echo(f"  null{_POINTER_VALUE_NOTE if record.is_pointer else ''}")
        else:
            for line in view.text_lines():
                click.echo(f"  {line}")
    if show_hex:
        click.echo("Value:")
        if record.value is None:
            click.echo(f"  null{_POINTER_VALUE_NOTE if record.is_pointer else ''}")
        for line in _hexdump(record.value or b""):
            click.echo(line)


def _decoded(record: DeadLetterRecord) -> RecordView | None:
    """The original message decoded as the worker decodes it (None: no value here)."""
    if record.value is None:
        return None
    import flowbus.catalog  # noqa: F401  (the catalog's signals must be known here)
    from flowbus.avro.serializer import EventDeserializer
    from flowbus.receivers import import_receiver_modules

    settings = get_settings()
    import_receiver_modules(settings.receiver_modules)
    deserializer = EventDeserializer.from_settings(settings)
    return view_record(record.as_original_record(), deserializer, timestamp_ms=record.timestamp_ms)


def _show_json(record: DeadLetterRecord, view: RecordView | None, show_hex: bool) -> dict[str, Any]:
    info = record.dead_letter_info
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "original_topic": record.original_topic,
        "original_partition": record.original_partition,
        "original_offset": record.original_offset,
        "reason": record.reason,
        "error_type": record.error_type,
        "error_message": record.error_message,
        "attempts": _as_count(info.get("attempts")),
        "failed_receivers": [r for r in (info.get("failed-receivers") or "").split(",") if r],
        "group": record.group,
        "dead_lettered_at": record.dead_lettered_at,
        "key": None if record.key is None else record.key.decode("utf-8", "backslashreplace"),
        "value_size": None if record.value is None else len(record.value),
        "pointer": record.is_pointer,
        "original_size": record.original_size,
        "original_sha256": record.original_sha256,
        "headers": [
            [name, None if raw is None else raw.decode(errors="replace")]
            for name, raw in record.headers
        ],
        "event": None if view is None else view.to_json(),
        "value": record.value if show_hex else None,
    }


def _as_count(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


_POINTER_VALUE_NOTE = " (a pointer record: the value is on the original topic, see Pointer)"


def _pointer_fields(record: DeadLetterRecord) -> list[tuple[str, str]]:
    if not record.is_pointer:
        return []
    size = record.original_size
    return [
        (
            "Pointer",
            f"yes: no value here; the original is at {record.origin} (while retention "
            "keeps it; `dlq replay` reads it back and checks it)",
        ),
        ("Original size", "?" if size is None else f"{size} bytes"),
        ("SHA-256", record.original_sha256 or "?"),
    ]


def _key_text(key: bytes | None) -> str:
    if key is None:
        return "null"
    try:
        return repr(key.decode())
    except UnicodeDecodeError:
        return f"0x{key.hex()}"


@dlq.command("replay", epilog=EXIT_STATUS_HELP)
@_topic_options
@_filter_options
@click.option("--all", "replay_all", is_flag=True, help="Replay every record (no filter given).")
@click.option("--dry-run", is_flag=True, help="List what would be replayed, change nothing.")
@click.option(
    "--local",
    is_flag=True,
    help="Handle the records in this process (as a worker would) instead of re-publishing.",
)
@click.option(
    "--group", help="With --local: the consumer group handling reports (default: the record's)."
)
@click.option(
    "--receivers",
    "receiver_modules",
    multiple=True,
    help="With --local: module whose receivers to connect (repeatable).",
)
@json_option(
    'One JSON object instead of a line per record: {"dry_run", "selected", "replayed", '
    '"records": [{"record", "event_type", "event_id", "outcome", ...}]}.'
)
def replay(
    source: str | None,
    dlq_name: str | None,
    dlq_suffix: str,
    timeout: float,
    event_type: str | None,
    since: datetime | None,
    until: datetime | None,
    records: tuple[PartitionOffset, ...],
    replay_all: bool,
    dry_run: bool,
    local: bool,
    group: str | None,
    receiver_modules: tuple[str, ...],
    as_json: bool,
) -> None:
    """Re-publish dead-lettered messages to their original topic, or handle them --local.

    Each record's original key, value and headers (the flowbus-dlq-* headers removed)
    are written to the topic it came from, waiting for each acknowledgement; the first
    failure stops the replay. With --local the records are instead handled in this
    process by the worker's message handler (receivers connected from
    FLOWBUS_RECEIVER_MODULES and --receivers, failed receivers retried); what fails again
    is reported, not dead-lettered again. A pointer record's original is read back from its
    topic and position and checked against the pointer's size and SHA-256 first; if it is
    gone (retention) or differs, that record fails. The dead-letter records stay where they are:
    replaying twice delivers twice. Without a filter (--event-type, --since, --until,
    --record) --all is required.
    """
    dlq_topic = _dlq_topic(source, dlq_name, dlq_suffix, timeout)
    selection = _selection(event_type, since, until, records)
    if not (event_type or since or until or records or replay_all):
        raise click.UsageError(
            "no filter given: pass --event-type, --since, --until or --record, "
            "or --all to replay every record"
        )
    if not local and (group is not None or receiver_modules):
        raise click.UsageError("--group and --receivers only go with --local")
    chosen, total, timeless = _select(dlq_topic, selection)
    _report_counts(dlq_topic, selection, len(chosen), total, timeless)
    unknown = [r.position for r in chosen if not r.original_topic]
    if unknown:
        click.echo(
            f"Error: record(s) {', '.join(unknown)} have no {dead_letter.ORIGINAL_TOPIC} "
            "header, so where they came from is unknown; leave them out (--record, "
            "--event-type, --since/--until) to replay the others",
            err=True,
        )
        raise click.exceptions.Exit(ExitCode.FAILURE)
    outcomes = _Outcomes(as_json)
    if dry_run:
        for record in chosen:
            where = "here" if local else record.original_topic
            outcomes.add(
                f"would replay {_describe(record)}{_pointer_note(record)} -> {where}",
                record, "would replay", destination=where,
            )  # fmt: skip
        outcomes.done(
            f"Dry run: {len(chosen)} record(s) would be replayed; nothing changed.",
            dry_run=True, selected=len(chosen), replayed=0,
        )  # fmt: skip
        return
    if local:
        failed = _handle_locally(chosen, group, receiver_modules, dlq_topic.timeout, outcomes)
    else:
        _republish(chosen, dlq_topic.timeout, outcomes)
        failed = 0
    outcomes.done(
        f"Replayed {len(chosen) - failed} of {len(chosen)} record(s).",
        dry_run=False, selected=len(chosen), replayed=len(chosen) - failed,
    )  # fmt: skip
    if failed:
        raise click.exceptions.Exit(ExitCode.FAILURE)


class _Outcomes:
    """What ``dlq replay`` did per record: a line each, or one JSON object at the end."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.records: list[dict[str, Any]] = []

    def add(self, line: str, record: DeadLetterRecord, outcome: str, **details: Any) -> None:
        if not self.as_json:
            click.echo(line)
            return
        self.records.append(
            {"record": record.position, "event_type": record.event_type,
             "event_id": record.event_id, "outcome": outcome, **details}
        )  # fmt: skip

    def done(self, line: str, **summary: Any) -> None:
        if self.as_json:
            echo_json({**summary, "records": self.records})
        else:
            click.echo(line)


def _describe(record: DeadLetterRecord) -> str:
    return f"{record.position} ({record.event_type or '?'} {record.event_id or '?'})"


def _pointer_note(record: DeadLetterRecord) -> str:
    return f" (pointer: original read from {record.origin})" if record.is_pointer else ""


def _with_original(record: DeadLetterRecord, timeout: float) -> DeadLetterRecord:
    """``record``, or for a pointer record the pointer with its original read back."""
    return resolve_pointer(record, reader_config(get_settings()), timeout=timeout)


def _republish(records: list[DeadLetterRecord], timeout: float, outcomes: _Outcomes) -> None:
    if not records:
        return
    with Republisher(republisher_config(get_settings()), timeout=timeout) as republisher:
        for index, pointer_or_record in enumerate(records, 1):
            record = _with_original(pointer_or_record, timeout)
            landed = republisher.republish(record)
            outcomes.add(
                f"{_counter(index, records)}replayed {_describe(record)}"
                f"{_pointer_note(pointer_or_record)} -> "
                f"{landed.topic}[{landed.partition}]@{landed.offset}",
                record, "replayed",
                topic=landed.topic, partition=landed.partition, offset=landed.offset,
            )  # fmt: skip


def _counter(index: int, records: list[DeadLetterRecord]) -> str:
    """How far the replay is, at the start of each record's line: ``[12/450] ``."""
    return f"[{index}/{len(records)}] "


#: How long ``replay --locally`` keeps trying one record (infrastructure failures retry).
LOCAL_TIMEOUT_S = 120.0


def _handle_locally(
    records: list[DeadLetterRecord],
    group: str | None,
    receiver_modules: tuple[str, ...],
    timeout: float,
    outcomes: _Outcomes,
) -> int:
    """Handle each record here; returns how many failed again."""
    if not records:
        return 0
    import flowbus.catalog  # noqa: F401  (the catalog's signals must be known here)
    from flowbus.receivers import import_receiver_modules

    from .engine import Engine
    from .handler import MessageHandler
    from .in_memory import Finished, InMemoryDeadLetterSink, run_until_finished
    from .middleware import default_middlewares
    from .retry import ReceiverRetryPolicy

    import_receiver_modules([*get_settings().receiver_modules, *receiver_modules])
    failed = 0
    for index, pointer_or_record in enumerate(records, 1):
        counter = _counter(index, records)
        record = _with_original(pointer_or_record, timeout)
        name = group or record.group or "flowbus-dlq-replay"
        chain = default_middlewares(retry=ReceiverRetryPolicy(), receiver_timeout=None)
        finished = Finished()
        engine = Engine(
            MessageHandler(name, middlewares=chain),
            InMemoryDeadLetterSink(),
            on_finished=finished,
        ).start()
        try:
            done = run_until_finished(
                engine, [record.as_original_record()], timeout=LOCAL_TIMEOUT_S
            )
        finally:
            engine.close()
        if not done:
            failed += 1
            why = "; ".join(engine.degraded())
            outcomes.add(
                f"{counter}NOT HANDLED {_describe(record)}: {why}", record, "not handled",
                error=why,
            )  # fmt: skip
            continue
        [context] = finished.contexts
        letter = context.dead_letter
        if letter is None:
            outcomes.add(
                f"{counter}handled {_describe(record)}{_pointer_note(pointer_or_record)} "
                f"({context.attempts} attempt(s))",
                record, "handled", attempts=context.attempts,
            )  # fmt: skip
            continue
        failed += 1
        error = str(letter.error).splitlines()[0] if str(letter.error) else ""
        outcomes.add(
            f"{counter}FAILED {_describe(record)}: {letter.reason.value}: "
            f"{type(letter.error).__name__}: {error[:200]}",
            record, "failed", reason=letter.reason.value,
            error=f"{type(letter.error).__name__}: {error[:200]}",
        )  # fmt: skip
    return failed
